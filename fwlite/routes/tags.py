"""Tags of a container: add one or many, rename, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from fwlite.models import Tag
from fwlite.routes.common import CollType
from fwlite.state import StoreDep
from fwlite.store import Store

router = APIRouter(prefix="/api/{coll}/{cid}/tags")


def change_tags(
    store: Store, ctype: str | None, cid: str, add: list[str], remove: list[str]
) -> dict[str, Any]:
    with store.lock:
        doc = store.require(cid, ctype)
        tags = [t for t in doc.get("tags", []) if t not in remove]
        doc["tags"] = list(dict.fromkeys([*tags, *add]))
        store.save(doc)
    return {"modified": 1}


@router.post("")
async def add_tag(
    ctype: CollType, cid: str, tag: Annotated[Tag, Body()], store: StoreDep
) -> dict[str, Any]:
    return change_tags(store, ctype, cid, [tag], [])


@router.patch("")
async def add_tags(
    ctype: CollType, cid: str, tags: Annotated[list[Tag], Body()], store: StoreDep
) -> dict[str, Any]:
    return change_tags(store, ctype, cid, tags, [])


@router.delete("")
async def delete_tags(
    ctype: CollType, cid: str, tags: Annotated[list[Tag], Body()], store: StoreDep
) -> dict[str, Any]:
    return change_tags(store, ctype, cid, [], tags)


@router.put("/{value}")
async def rename_tag(
    ctype: CollType, cid: str, value: str, new: Annotated[Tag, Body()], store: StoreDep
) -> dict[str, Any]:
    return change_tags(store, ctype, cid, [new], [value])


@router.delete("/{value}")
async def delete_tag(ctype: CollType, cid: str, value: str, store: StoreDep) -> dict[str, Any]:
    return change_tags(store, ctype, cid, [], [value])
