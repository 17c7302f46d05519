"""``GET /api/files``: every file the key can see, with Core's finder filter and paging
(``filter``, ``limit``, ``after_id``), answered as Core's page object ``{count, total,
results}``. Read-only.

The agent's Q/R index lists the DICOM files changed since its last look through it
(``type=dicom,modified>=...``) instead of walking the hierarchy.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from fwlite import containers, filters
from fwlite.models import Paging
from fwlite.state import StoreDep

router = APIRouter()


@router.get("/api/files")
async def all_files(
    paging: Annotated[Paging, Query()], request: Request, store: StoreDep
) -> dict[str, Any]:
    """The same paging model as the container finders (``sort``/``skip``/``page`` unused)."""
    cond = filters.compile_filter(paging.filter)
    limit = paging.limit or 0
    group = getattr(request.state, "fwlite_group", None)  # a restricted key sees its group
    lineages: dict[str, dict[str, str | None]] = {}
    results: list[dict[str, Any]] = []
    for container_id, doc in store.iter_files(paging.after_id or None):
        if container_id not in lineages:
            parent = store.get(container_id)
            if parent is None:
                continue
            lineages[container_id] = store.lineage(parent)
        if group is not None and lineages[container_id]["group"] != group:
            continue
        entry = containers.render_file(doc, lineages[container_id])
        if cond(entry):
            results.append(entry)
            if limit and len(results) >= limit:
                break
    return {"count": len(results), "total": len(results), "results": results}
