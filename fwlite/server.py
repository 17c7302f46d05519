"""The HTTP side of fwlite: the subset of Flywheel Core's REST API under /api.

Every handler is ``async`` and does its store work without awaiting in between, so the
event loop serializes writes; the store lock guards the rest. Errors are JSON
``{"message", "status_code"}`` with a 4xx status, never a traceback.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from fwlite import containers, filters, upload
from fwlite.store import CHILD_TYPE, TYPES, Store, StoreError

log = logging.getLogger("fwlite")

VERSION = "23.0.0"
PLURAL = {f"{t}s": t for t in TYPES}
COLLECTIONS = {**PLURAL, "containers": None}
FAULT_PATH = "/api/_fwlite/fault"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "status_code": status}, status_code=status)


class State:
    """Per-app state: the store, the key, the request log, a fault, download tickets."""

    def __init__(self, data_dir: Path, api_key: str) -> None:
        self.store = Store(data_dir)
        self.api_key = api_key
        self.log_path = data_dir / "requests.jsonl"
        self.fault: dict[str, Any] | None = None
        self.tickets: dict[str, tuple[str, str]] = {}

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        key = header.split(" ", 1)[1] if " " in header else header
        if key and secrets.compare_digest(key.strip(), self.api_key):
            return True
        ticket = request.query_params.get("ticket")
        return bool(ticket) and ticket in self.tickets

    def take_fault(self, path: str) -> int | None:
        fault = self.fault
        if fault is None or path == FAULT_PATH or not path.startswith(fault["path_prefix"]):
            return None
        if fault["count"] is not None:
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.fault = None
        return int(fault["status"])

    def record(self, request: Request, status: int) -> None:
        line = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "status": status,
        }
        with self.log_path.open("a") as out:
            out.write(json.dumps(line) + "\n")


def create_app(data_dir: Path, api_key: str) -> FastAPI:
    data_dir.mkdir(parents=True, exist_ok=True)
    state = State(data_dir, api_key)
    app = FastAPI(title="fwlite", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fwlite = state
    store = state.store

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        response: Response
        if not state.authorized(request):
            response = error(401, "invalid or missing API key")
        elif (status := state.take_fault(path)) is not None:
            response = error(status, f"fault injected by fwlite for {path}")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # a bug must still answer JSON, and say what
                log.exception("unhandled error on %s %s", request.method, path)
                response = error(500, f"internal error: {type(exc).__name__}: {exc}")
        state.record(request, response.status_code)
        return response

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error(exc.status, exc.message)

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise StoreError(400, "request body is not valid JSON") from None

    def int_param(request: Request, name: str) -> int | None:
        value = request.query_params.get(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError:
            raise StoreError(400, f"'{name}' must be an integer") from None

    def page(request: Request, ctype: str, parents: list[str] | None) -> list[dict[str, Any]]:
        """List with filter, limit, after_id (or sort/page/skip), as Core's finders expect."""
        cond = filters.compile_filter(request.query_params.get("filter"))
        limit = int_param(request, "limit") or None
        skip = int_param(request, "skip") or 0
        page_no = int_param(request, "page")
        after_id = request.query_params.get("after_id") or None
        sort = request.query_params.get("sort")
        if page_no and limit:
            skip += (page_no - 1) * limit
        docs = store.iter_type(ctype, after_id=after_id, parents=parents)
        if sort:
            found = [d for d in (containers.render(store, x) for x in docs) if cond(d)]
            for key in reversed(sort.split(",")):
                field, _, order = key.partition(":")
                found.sort(
                    key=sort_key(field.strip()), reverse=order.strip().lower() in ("desc", "-1")
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

    def sort_key(field: str) -> Callable[[dict[str, Any]], str]:
        return lambda doc: str(filters.lookup(doc, field) or "")

    def descendants(ctype: str, cid: str, child: str) -> list[str]:
        """Ids of the parents whose direct children of type ``child`` are wanted."""
        ids, current = [cid], ctype
        while CHILD_TYPE.get(current) != child:
            nxt = CHILD_TYPE.get(current)
            if nxt is None:
                raise StoreError(404, f"a {ctype} has no {child}s")
            ids = store.child_ids(nxt, ids)
            current = nxt
        return ids

    # -- site -------------------------------------------------------------------------

    @app.get("/api/version")
    async def version() -> dict[str, Any]:
        return {"release": VERSION, "flywheel_release": VERSION, "database": 100}

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {
            "signed_url": False,
            "features": {"signed_url": False, "multipart_signed_url": False},
            "site": {"id": "fwlite", "name": "fwlite", "api_url": "/api"},
        }

    @app.get("/api/auth/status")
    async def auth_status() -> dict[str, Any]:
        return {
            "origin": {"type": "user", "id": "admin@fwlite.local"},
            "user_id": "admin@fwlite.local",
            "user_is_admin": True,
            "is_device": False,
        }

    @app.get("/api/users/self")
    async def current_user() -> dict[str, Any]:
        return {
            "_id": "admin@fwlite.local",
            "email": "admin@fwlite.local",
            "firstname": "Site",
            "lastname": "Admin",
            "roles": ["site_admin"],
        }

    @app.put(FAULT_PATH)
    async def set_fault(request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        if not isinstance(body, dict) or not isinstance(body.get("status", 503), int):
            raise StoreError(
                400, "fault needs {'status': int, 'count': int|null, 'path_prefix': str}"
            )
        state.fault = {
            "status": body.get("status", 503),
            "count": body.get("count"),
            "path_prefix": body.get("path_prefix") or "/api",
        }
        return state.fault

    @app.delete(FAULT_PATH)
    async def clear_fault() -> dict[str, Any]:
        state.fault = None
        return {"cleared": True}

    # -- lookup / resolve -----------------------------------------------------------------

    def walk(path: list[str]) -> list[dict[str, Any]]:
        """Resolve a path of labels (or <id:X>) to the nodes along it."""
        nodes: list[dict[str, Any]] = []
        ctype = "group"
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
                raise StoreError(
                    404, f"{ctype} '{part}' not found at '{'/'.join(path[: index + 1])}'"
                )
            nodes.append(containers.render(store, found))
            parent, ctype, index = found, CHILD_TYPE.get(ctype), index + 1  # type: ignore[assignment]
        return nodes

    def path_of(body: Any) -> list[str]:
        if not isinstance(body, dict) or not isinstance(body.get("path"), list):
            raise StoreError(400, "body needs 'path': a list of names")
        return [str(p) for p in body["path"] if str(p) != ""]

    @app.post("/api/lookup")
    async def lookup_path(request: Request) -> dict[str, Any]:
        nodes = walk(path_of(await json_body(request)))
        if not nodes:
            raise StoreError(400, "lookup needs a non-empty path")
        return nodes[-1]

    @app.post("/api/resolve")
    async def resolve_path(request: Request) -> dict[str, Any]:
        nodes = walk(path_of(await json_body(request)))
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

    # -- uploads by metadata ------------------------------------------------------------

    @app.post("/api/upload/{kind}")
    async def upload_by(kind: str, request: Request) -> list[dict[str, Any]]:
        form = await request.form()
        raw = form.get("metadata")
        if isinstance(raw, UploadFile):
            raw = (await raw.read()).decode("utf-8", errors="replace")
        if not raw:
            raise StoreError(400, "upload needs a 'metadata' form field")
        try:
            metadata = json.loads(raw)
        except ValueError:
            raise StoreError(400, "metadata is not valid JSON") from None
        parts: dict[str, BinaryIO] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile) and key != "metadata":
                parts[value.filename or key] = value.file
        stored = upload.place(store, kind, metadata, parts)
        # Core answers /upload/* with File documents whose _id is {file_id, version}
        return [{**f, "_id": {"file_id": f["file_id"], "version": f["version"]}} for f in stored]

    # -- files by id ----------------------------------------------------------------------

    def by_file_id(file_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        found = store.file_by_id(file_id)
        if found is None:
            raise StoreError(404, f"file '{file_id}' not found")
        return store.require(found[0]), found[1]

    @app.get("/api/files/{file_id}")
    async def get_file_by_id(file_id: str) -> dict[str, Any]:
        container, entry = by_file_id(file_id)
        return containers.render_file(entry, store.lineage(container))

    @app.get("/api/files/{file_id}/info")
    async def get_file_info_by_id(file_id: str) -> Any:
        return by_file_id(file_id)[1].get("info", {})

    @app.patch("/api/files/{file_id}/info")
    async def modify_file_info_by_id(file_id: str, request: Request) -> dict[str, Any]:
        container, entry = by_file_id(file_id)
        entry["info"] = containers.modify_info(entry.get("info", {}), await json_body(request))
        store.save_file(container["_id"], entry)
        return {"modified": 1}

    # -- containers -----------------------------------------------------------------------

    def coll_type(coll: str) -> str | None:
        if coll not in COLLECTIONS:
            raise StoreError(404, f"no such endpoint: /api/{coll}")
        return COLLECTIONS[coll]

    @app.get("/api/{coll}")
    async def list_all(coll: str, request: Request) -> list[dict[str, Any]]:
        ctype = coll_type(coll)
        if ctype is None:
            raise StoreError(404, "list containers by type")
        return page(request, ctype, None)

    @app.post("/api/{coll}")
    async def add(coll: str, request: Request) -> dict[str, Any]:
        ctype = coll_type(coll)
        if ctype is None:
            raise StoreError(404, "add containers by type")
        return {"_id": containers.add_container(store, ctype, await json_body(request))}

    @app.get("/api/{coll}/{cid}")
    async def get_one(coll: str, cid: str) -> dict[str, Any]:
        return containers.render(store, store.require(cid, coll_type(coll)))

    @app.put("/api/{coll}/{cid}")
    async def modify(coll: str, cid: str, request: Request) -> dict[str, Any]:
        containers.update_container(store, coll_type(coll), cid, await json_body(request))
        return {"modified": 1}

    @app.delete("/api/{coll}/{cid}")
    async def delete(coll: str, cid: str) -> dict[str, Any]:
        store.require(cid, coll_type(coll))
        return {"deleted": store.delete_tree(cid)}

    @app.patch("/api/{coll}/{cid}/info")
    async def modify_info(coll: str, cid: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        with store.lock:
            doc = store.require(cid, coll_type(coll))
            doc["info"] = containers.modify_info(doc.get("info", {}), body)
            store.save(doc)
        return {"modified": 1}

    def tag_value(body: Any) -> str:
        value = body.get("value") if isinstance(body, dict) else body
        if not isinstance(value, str) or not value:
            raise StoreError(400, "a tag must be a non-empty string")
        return value

    def change_tags(coll: str, cid: str, add: list[str], remove: list[str]) -> dict[str, Any]:
        with store.lock:
            doc = store.require(cid, coll_type(coll))
            tags = [t for t in doc.get("tags", []) if t not in remove]
            doc["tags"] = list(dict.fromkeys([*tags, *add]))
            store.save(doc)
        return {"modified": 1}

    @app.post("/api/{coll}/{cid}/tags")
    async def add_tag(coll: str, cid: str, request: Request) -> dict[str, Any]:
        return change_tags(coll, cid, [tag_value(await json_body(request))], [])

    @app.patch("/api/{coll}/{cid}/tags")
    async def add_tags(coll: str, cid: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, list):
            raise StoreError(400, "body must be a list of tags")
        return change_tags(coll, cid, [tag_value(t) for t in body], [])

    @app.delete("/api/{coll}/{cid}/tags")
    async def delete_tags(coll: str, cid: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, list):
            raise StoreError(400, "body must be a list of tags")
        return change_tags(coll, cid, [], [tag_value(t) for t in body])

    @app.put("/api/{coll}/{cid}/tags/{value}")
    async def rename_tag(coll: str, cid: str, value: str, request: Request) -> dict[str, Any]:
        new = tag_value(await json_body(request))
        return change_tags(coll, cid, [new], [value])

    @app.delete("/api/{coll}/{cid}/tags/{value}")
    async def delete_tag(coll: str, cid: str, value: str) -> dict[str, Any]:
        return change_tags(coll, cid, [], [value])

    # -- files of a container ----------------------------------------------------------

    @app.post("/api/{coll}/{cid}/files")
    async def upload_files(coll: str, cid: str, request: Request) -> list[dict[str, Any]]:
        form = await request.form()
        container = store.require(cid, coll_type(coll))
        if container["container_type"] == "group":
            raise StoreError(400, "groups do not hold files")
        meta_raw = form.get("metadata")
        meta: Any = {}
        if isinstance(meta_raw, str) and meta_raw:
            try:
                meta = json.loads(meta_raw)
            except ValueError:
                raise StoreError(400, "metadata is not valid JSON") from None
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise StoreError(400, "no file in the upload")
        out = []
        for index, part in enumerate(uploads):
            spec = meta[index] if isinstance(meta, list) and index < len(meta) else meta
            spec = spec if isinstance(spec, dict) else {}
            fields = {
                k: spec.get(k) for k in ("type", "modality", "classification", "info", "tags")
            }
            name = part.filename or f"file{index}"
            entry = store.put_file(container, name, part.file, fields)
            out.append(containers.render_file(entry, store.lineage(container)))
        return out

    @app.get("/api/{coll}/{cid}/files/{name:path}/info")
    async def file_info(coll: str, cid: str, name: str) -> dict[str, Any]:
        container = store.require(cid, coll_type(coll))
        entry = store.require_file(cid, name)
        return containers.render_file(entry, store.lineage(container))

    @app.patch("/api/{coll}/{cid}/files/{name:path}/info")
    async def modify_file_info(coll: str, cid: str, name: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        with store.lock:
            store.require(cid, coll_type(coll))
            entry = store.require_file(cid, name)
            entry["info"] = containers.modify_info(entry.get("info", {}), body)
            store.save_file(cid, entry)
        return {"modified": 1}

    @app.get("/api/{coll}/{cid}/files/{name:path}")
    async def download(coll: str, cid: str, name: str, request: Request) -> Response:
        store.require(cid, coll_type(coll))
        entry = store.require_file(cid, name)
        ticket = request.query_params.get("ticket")
        if ticket == "":
            new = secrets.token_urlsafe(16)
            state.tickets[new] = (cid, name)
            return JSONResponse({"ticket": new})
        if ticket and state.tickets.get(ticket) != (cid, name):
            raise StoreError(401, "ticket does not match this file")
        return FileResponse(
            store.file_path(entry),
            media_type=entry.get("mimetype") or "application/octet-stream",
            filename=Path(name).name,
        )

    @app.put("/api/{coll}/{cid}/files/{name:path}")
    async def modify_file(coll: str, cid: str, name: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise StoreError(400, "body must be an object")
        with store.lock:
            store.require(cid, coll_type(coll))
            entry = store.require_file(cid, name)
            for key in ("type", "modality", "classification", "tags"):
                if key in body:
                    entry[key] = body[key]
            store.save_file(cid, entry)
        return {"modified": 1}

    @app.delete("/api/{coll}/{cid}/files/{name:path}")
    async def delete_file(coll: str, cid: str, name: str) -> dict[str, Any]:
        store.require(cid, coll_type(coll))
        store.delete_file(cid, name)
        return {"deleted": 1}

    @app.get("/api/{coll}/{cid}/{child}")
    async def list_children(coll: str, cid: str, child: str, request: Request) -> Any:
        doc = store.require(cid, coll_type(coll))
        if child == "files":
            return containers.render(store, doc).get("files", [])
        if child not in PLURAL:
            raise StoreError(404, f"no such endpoint: /api/{coll}/{{id}}/{child}")
        parents = descendants(doc["container_type"], cid, PLURAL[child])
        return page(request, PLURAL[child], parents)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> JSONResponse:
        return error(404, f"fwlite does not serve /api/{rest}")

    return app
