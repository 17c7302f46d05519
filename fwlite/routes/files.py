"""Files: by file id, and by name on their container (upload, info, download, type, delete)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from fwlite import containers
from fwlite.models import FileUpdate, InfoUpdate, form_json
from fwlite.routes.common import CollType
from fwlite.state import AppState, StoreDep
from fwlite.store import Store, StoreError

by_id = APIRouter(prefix="/api/files")
of_container = APIRouter(prefix="/api/{coll}/{cid}/files")

FILE_FIELDS = ("type", "modality", "classification", "info", "tags")


def _by_file_id(store: Store, file_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = store.file_by_id(file_id)
    if found is None:
        raise StoreError(404, f"file '{file_id}' not found")
    return store.require(found[0]), found[1]


def _edit(
    store: Store, ctype: str | None, cid: str, name: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Change one file's entry on its container, under the store lock."""
    with store.lock:
        store.require(cid, ctype)
        entry = store.require_file(cid, name)
        change(entry)
        store.save_file(cid, entry)
    return {"modified": 1}


@by_id.get("/{file_id}")
async def get_file_by_id(file_id: str, store: StoreDep) -> dict[str, Any]:
    container, entry = _by_file_id(store, file_id)
    return containers.render_file(entry, store.lineage(container))


@by_id.get("/{file_id}/info")
async def get_file_info_by_id(file_id: str, store: StoreDep) -> Any:
    return _by_file_id(store, file_id)[1].get("info", {})


@by_id.patch("/{file_id}/info")
async def modify_file_info_by_id(
    file_id: str, update: InfoUpdate, store: StoreDep
) -> dict[str, Any]:
    container, entry = _by_file_id(store, file_id)
    entry["info"] = update.apply(entry.get("info", {}))
    store.save_file(container["_id"], entry)
    return {"modified": 1}


@of_container.post("")
async def upload_files(
    ctype: CollType, cid: str, request: Request, store: StoreDep
) -> list[dict[str, Any]]:
    form = await request.form()
    container = store.require(cid, ctype)
    if container["container_type"] == "group":
        raise StoreError(400, "groups do not hold files")
    meta_raw = form.get("metadata")
    meta = form_json(meta_raw, "metadata") if isinstance(meta_raw, str) and meta_raw else {}
    uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not uploads:
        raise StoreError(400, "no file in the upload")
    out = []
    for index, part in enumerate(uploads):
        spec = meta[index] if isinstance(meta, list) and index < len(meta) else meta
        spec = spec if isinstance(spec, dict) else {}
        fields = {k: spec.get(k) for k in FILE_FIELDS}
        name = part.filename or f"file{index}"
        entry = store.put_file(container, name, part.file, fields)
        out.append(containers.render_file(entry, store.lineage(container)))
    return out


@of_container.get("/{name:path}/info")
async def file_info(ctype: CollType, cid: str, name: str, store: StoreDep) -> dict[str, Any]:
    container = store.require(cid, ctype)
    entry = store.require_file(cid, name)
    return containers.render_file(entry, store.lineage(container))


@of_container.patch("/{name:path}/info")
async def modify_file_info(
    ctype: CollType, cid: str, name: str, update: InfoUpdate, store: StoreDep
) -> dict[str, Any]:
    return _edit(store, ctype, cid, name, lambda e: e.update(info=update.apply(e.get("info", {}))))


@of_container.get("/{name:path}")
async def download(
    ctype: CollType,
    cid: str,
    name: str,
    request: Request,
    state: AppState,
    ticket: str | None = None,
) -> Response:
    """The file's bytes; ``?ticket=`` (empty, with the key) answers a ticket for this URL.

    A non-empty ticket was already checked and spent by the gate (fwlite.state).
    """
    store = state.store
    store.require(cid, ctype)
    entry = store.require_file(cid, name)
    if ticket == "":
        return JSONResponse({"ticket": state.tickets.issue(request.url.path)})
    return FileResponse(
        store.file_path(entry),
        media_type=entry.get("mimetype") or "application/octet-stream",
        filename=Path(name).name,
    )


@of_container.put("/{name:path}")
async def modify_file(
    ctype: CollType, cid: str, name: str, update: FileUpdate, store: StoreDep
) -> dict[str, Any]:
    return _edit(store, ctype, cid, name, lambda e: e.update(update.fields()))


@of_container.delete("/{name:path}")
async def delete_file(ctype: CollType, cid: str, name: str, store: StoreDep) -> dict[str, Any]:
    store.require(cid, ctype)
    store.delete_file(cid, name)
    return {"deleted": 1}
