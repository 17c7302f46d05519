"""``POST /api/upload/uid|reaper|label``: files placed by the metadata that comes with them."""

from __future__ import annotations

from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from fwlite import upload
from fwlite.models import form_json
from fwlite.state import StoreDep
from fwlite.store import StoreError

router = APIRouter(prefix="/api")


@router.post("/upload/{kind}")
async def upload_by(kind: str, request: Request, store: StoreDep) -> list[dict[str, Any]]:
    form = await request.form()
    raw = form.get("metadata")
    if isinstance(raw, UploadFile):
        raw = (await raw.read()).decode("utf-8", errors="replace")
    if not raw:
        raise StoreError(400, "upload needs a 'metadata' form field")
    metadata = form_json(raw, "metadata")
    parts: dict[str, BinaryIO] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) and key != "metadata":
            parts[value.filename or key] = value.file
    stored = upload.place(store, kind, metadata, parts)
    # Core answers /upload/* with File documents whose _id is {file_id, version}
    return [{**f, "_id": {"file_id": f["file_id"], "version": f["version"]}} for f in stored]
