"""``GET /api/files``: every file the key can see, with Core's finder filter and paging
(``filter``, ``limit``, ``after_id``), answered as Core's page object ``{count, total,
results}``. Read-only.

The agent's Q/R index lists the DICOM files changed since its last look through it
(``type=dicom,modified>=...``) instead of walking the hierarchy.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from fwlite import containers, filters
from fwlite.state import StoreDep
from fwlite.store import StoreError

router = APIRouter()


@router.get("/api/files")
async def all_files(request: Request, store: StoreDep) -> dict[str, Any]:
    cond = filters.compile_filter(request.query_params.get("filter"))
    try:
        limit = int(request.query_params.get("limit") or 0)
    except ValueError:
        raise StoreError(400, "'limit' must be an integer") from None
    after_id = request.query_params.get("after_id") or ""
    rows = store.db.execute(
        "SELECT container, doc FROM files WHERE file_id > ? ORDER BY file_id", (after_id,)
    ).fetchall()
    lineages: dict[str, dict[str, str | None]] = {}
    results: list[dict[str, Any]] = []
    for container_id, doc in rows:
        if container_id not in lineages:
            parent = store.get(container_id)
            if parent is None:
                continue
            lineages[container_id] = store.lineage(parent)
        entry = containers.render_file(json.loads(doc), lineages[container_id])
        if cond(entry):
            results.append(entry)
            if limit and len(results) >= limit:
                break
    return {"count": len(results), "total": len(results), "results": results}
