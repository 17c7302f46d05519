"""Containers of every type: list (finders), add, get, update/move, delete, info, children.

Groups, projects, subjects, sessions and acquisitions share one set of routes under
``/api/<type>s`` (and ``/api/containers`` for any type), as Core's API is shaped;
the differences live in fwlite.containers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fwlite import containers, filters
from fwlite.models import ContainerBody, InfoUpdate, Paging
from fwlite.routes.common import PLURAL, CollType
from fwlite.state import StoreDep
from fwlite.store import CHILD_TYPE, Store, StoreError

router = APIRouter(prefix="/api/{coll}")
children = APIRouter(prefix="/api/{coll}/{cid}")

PagingQuery = Annotated[Paging, Query()]


def page(
    store: Store, paging: Paging, ctype: str, parents: list[str] | None
) -> list[dict[str, Any]]:
    """List with filter, limit, after_id (or sort/page/skip), as Core's finders expect."""
    cond = filters.compile_filter(paging.filter)
    limit = paging.limit or None
    skip = paging.skip or 0
    if paging.page and limit:
        skip += (paging.page - 1) * limit
    docs = store.iter_type(ctype, after_id=paging.after_id or None, parents=parents)
    if paging.sort:
        found = [d for d in (containers.render(store, x) for x in docs) if cond(d)]
        for key in reversed(paging.sort.split(",")):
            field, _, order = key.partition(":")
            found.sort(
                key=_sort_key(field.strip()), reverse=order.strip().lower() in ("desc", "-1")
            )
        return found[skip : skip + limit if limit else None]
    out: list[dict[str, Any]] = []
    for doc in docs:
        rendered = containers.render(store, doc)
        if not cond(rendered):
            continue
        if skip:
            skip -= 1
            continue
        out.append(rendered)
        if limit and len(out) >= limit:
            break
    return out


def _sort_key(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda doc: str(filters.lookup(doc, field) or "")


def descendants(store: Store, ctype: str, cid: str, child: str) -> list[str]:
    """Ids of the parents whose direct children of type ``child`` are wanted."""
    ids, current = [cid], ctype
    while CHILD_TYPE.get(current) != child:
        nxt = CHILD_TYPE.get(current)
        if nxt is None:
            raise StoreError(404, f"a {ctype} has no {child}s")
        ids = store.child_ids(nxt, ids)
        current = nxt
    return ids


@router.get("")
async def list_all(ctype: CollType, paging: PagingQuery, store: StoreDep) -> list[dict[str, Any]]:
    if ctype is None:
        raise StoreError(404, "list containers by type")
    return page(store, paging, ctype, None)


@router.post("")
async def add(ctype: CollType, body: ContainerBody, store: StoreDep) -> dict[str, Any]:
    if ctype is None:
        raise StoreError(404, "add containers by type")
    return {"_id": containers.add_container(store, ctype, body.fields())}


@router.get("/{cid}")
async def get_one(ctype: CollType, cid: str, store: StoreDep) -> dict[str, Any]:
    return containers.render(store, store.require(cid, ctype))


@router.put("/{cid}")
async def modify(ctype: CollType, cid: str, body: ContainerBody, store: StoreDep) -> dict[str, Any]:
    containers.update_container(store, ctype, cid, body.fields())
    return {"modified": 1}


@router.delete("/{cid}")
async def delete(ctype: CollType, cid: str, store: StoreDep) -> dict[str, Any]:
    store.require(cid, ctype)
    return {"deleted": store.delete_tree(cid)}


@router.patch("/{cid}/info")
async def modify_info(
    ctype: CollType, cid: str, update: InfoUpdate, store: StoreDep
) -> dict[str, Any]:
    with store.lock:
        doc = store.require(cid, ctype)
        doc["info"] = update.apply(doc.get("info", {}))
        store.save(doc)
    return {"modified": 1}


@children.get("/{child}")
async def list_children(
    coll: str, ctype: CollType, cid: str, child: str, paging: PagingQuery, store: StoreDep
) -> Any:
    doc = store.require(cid, ctype)
    if child == "files":
        return containers.render(store, doc).get("files", [])
    if child not in PLURAL:
        raise StoreError(404, f"no such endpoint: /api/{coll}/{{id}}/{child}")
    parents = descendants(store, doc["container_type"], cid, PLURAL[child])
    return page(store, paging, PLURAL[child], parents)
