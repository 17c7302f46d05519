"""``POST /api/lookup`` and ``/api/resolve``: find containers and files by a path of labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fwlite import containers
from fwlite.models import PathBody
from fwlite.state import StoreDep
from fwlite.store import CHILD_TYPE, Store, StoreError

router = APIRouter(prefix="/api")


def walk(store: Store, path: list[str]) -> list[dict[str, Any]]:
    """Resolve a path of labels (or <id:X>) to the nodes along it."""
    nodes: list[dict[str, Any]] = []
    ctype: str | None = "group"
    parent: dict[str, Any] | None = None
    index = 0
    while index < len(path):
        part = path[index]
        if part == "files" and parent is not None:
            if index + 1 >= len(path):
                break
            name = "/".join(path[index + 1 :])
            entry = store.require_file(parent["_id"], name)
            nodes.append(containers.render_file(entry, store.lineage(parent)))
            return nodes
        if ctype is None or parent is None and ctype != "group":
            raise StoreError(404, f"nothing at '{'/'.join(path)}'")
        if part.startswith("<id:") and part.endswith(">"):
            found = store.get(part[4:-1], ctype)
        elif ctype == "group":
            found = store.get(part, "group")
        else:
            assert parent is not None
            found = store.find_child(ctype, parent["_id"], part)
        if found is None:
            raise StoreError(404, f"{ctype} '{part}' not found at '{'/'.join(path[: index + 1])}'")
        nodes.append(containers.render(store, found))
        parent, ctype, index = found, CHILD_TYPE.get(ctype), index + 1
    return nodes


@router.post("/lookup")
async def lookup_path(body: PathBody, store: StoreDep) -> dict[str, Any]:
    nodes = walk(store, body.names())
    if not nodes:
        raise StoreError(400, "lookup needs a non-empty path")
    return nodes[-1]


@router.post("/resolve")
async def resolve_path(body: PathBody, store: StoreDep) -> dict[str, Any]:
    nodes = walk(store, body.names())
    children: list[dict[str, Any]] = []
    if not nodes:
        children = [containers.render(store, g) for g in store.children("group", None)]
    elif nodes[-1]["container_type"] != "file":
        last = nodes[-1]
        child = CHILD_TYPE.get(last["container_type"])
        if child:
            children = [containers.render(store, c) for c in store.children(child, last["_id"])]
        children.extend(last.get("files", []))
    return {"path": nodes, "children": children}
