"""What one fwlite app keeps between requests: the store, the key, the log, a fault, tickets."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from fwlite.store import Store
from fwlite.tickets import LIFETIME, Tickets

FAULT_PATH = "/api/_fwlite/fault"


async def fault_body(fault: dict[str, Any] | None, request: Request) -> bytes:
    """The request body, read only when the fault targets requests by their body (e.g.
    one project's uploads: ``body_contains`` its label); Starlette keeps it for the handler."""
    if fault is None or not fault.get("body_contains"):
        return b""
    return await request.body()


def fault_body_matches(fault: dict[str, Any], body: bytes) -> bool:
    needle = str(fault.get("body_contains") or "")
    return not needle or needle.encode() in body


# what a restricted key may GET besides its group's files: who the site is, and the file
# listing (filtered to the key's group by the route)
RESTRICTED_READS = frozenset(
    {"/api/version", "/api/config", "/api/auth/status", "/api/users/self", "/api/files"}
)
FILE_PATH = re.compile(r"^/api/[a-z]+/(?P<cid>[^/]+)/files/.+")


class State:
    """Per-app state; routes reach it through the ``AppState`` / ``StoreDep`` dependencies."""

    def __init__(
        self,
        data_dir: Path,
        api_key: str,
        ticket_lifetime: float = LIFETIME,
        restricted: dict[str, str] | None = None,
    ) -> None:
        self.store = Store(data_dir)
        self.api_key = api_key
        self.restricted = dict(restricted or {})  # key -> the one group it may read
        self.log_path = data_dir / "requests.jsonl"
        self.fault: dict[str, Any] | None = None
        self.tickets = Tickets(ticket_lifetime)

    def refusal(self, request: Request) -> tuple[int, str] | None:
        """None when the request may go on, else (401 or 403, why it is refused).

        A non-empty ``ticket`` decides alone: it opens its one download, once, and nothing
        else, whatever key comes with it. Everything else needs the API key, or a
        restricted key (``--restricted-key KEY:GROUP``), which may only read: the site's
        identity routes, ``GET /api/files`` (answered for its group only, see
        ``request.state.fwlite_group``) and the files of its group's containers.
        """
        ticket = request.query_params.get("ticket")
        if ticket:
            refused = self.tickets.redeem(ticket, request.method, request.url.path)
            return None if refused is None else (401, refused)
        header = request.headers.get("authorization", "")
        key = (header.split(" ", 1)[1] if " " in header else header).strip().encode()
        if key and secrets.compare_digest(key, self.api_key.encode()):
            return None
        group = next(
            (
                g
                for k, g in self.restricted.items()
                if key and secrets.compare_digest(key, k.encode())
            ),
            None,
        )
        if group is None:
            return 401, "invalid or missing API key"
        request.state.fwlite_group = group
        return self._restricted_refusal(request, group)

    def _restricted_refusal(self, request: Request, group: str) -> tuple[int, str] | None:
        path = request.url.path
        if request.method == "GET" and path in RESTRICTED_READS:
            return None
        match = FILE_PATH.match(path)
        if request.method == "GET" and match:
            doc = self.store.get(match["cid"])
            if doc is not None and self.store.lineage(doc)["group"] == group:
                return None
        return 403, f"this key may read group {group!r} only, not {request.method} {path}"

    def take_fault(self, path: str, body: bytes = b"") -> int | None:
        fault = self.fault
        if fault is None or path == FAULT_PATH or not path.startswith(fault["path_prefix"]):
            return None
        if not fault_body_matches(fault, body):
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


async def _state(request: Request) -> State:
    state: State = request.app.state.fwlite
    return state


async def _store(request: Request) -> Store:
    store: Store = request.app.state.fwlite.store
    return store


AppState = Annotated[State, Depends(_state)]
StoreDep = Annotated[Store, Depends(_store)]
