"""fwlite's routes, one module per resource, in the order the app matches them.

Order matters: fixed paths (``/api/files/...``, ``/api/lookup``) come before the generic
``/api/{coll}/...`` routes that would otherwise take them.
"""

from __future__ import annotations

from fastapi import APIRouter

from fwlite.routes import containers, file_search, files, paths, site, tags, upload
from fwlite.routes.admin import faults

ROUTERS: tuple[APIRouter, ...] = (
    site.router,
    faults.router,
    paths.router,
    upload.router,
    files.by_id,
    file_search.router,
    containers.router,
    tags.router,
    files.of_container,
    containers.children,
)
