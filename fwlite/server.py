"""The HTTP side of fwlite: the subset of Flywheel Core's REST API under /api.

The routes live in fwlite.routes, one module per resource; this module wires them into
one app behind a gate (key or ticket, injected faults, the request log). Every handler is
``async`` and does its store work without awaiting in between, so the event loop
serializes writes; the store lock guards the rest. Errors are JSON
``{"message", "status_code"}`` with a 4xx status, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from fwlite.routes import ROUTERS
from fwlite.state import State, fault_body
from fwlite.store import StoreError
from fwlite.tickets import LIFETIME

log = logging.getLogger("fwlite")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "status_code": status}, status_code=status)


def invalid_request(exc: RequestValidationError) -> str:
    """One line for the first thing wrong with a request's body or parameters."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON"
    where, *field = [str(part) for part in first.get("loc", ())] or ["request"]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    name = ".".join(field)
    return f"invalid {where} '{name}': {message}" if name else f"invalid {where}: {message}"


def create_app(
    data_dir: Path,
    api_key: str,
    ticket_lifetime: float = LIFETIME,
    restricted: dict[str, str] | None = None,
) -> FastAPI:
    """``restricted``: API keys that may read one group only (key -> group id)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    state = State(data_dir, api_key, ticket_lifetime, restricted)
    app = FastAPI(
        title="fwlite",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        strict_content_type=False,  # a JSON body without a Content-Type is JSON, as before
    )
    app.state.fwlite = state

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        response: Response
        if (refused := state.refusal(request)) is not None:
            response = error(*refused)
        elif (status := state.take_fault(path, await fault_body(state.fault, request))) is not None:
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

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, invalid_request(exc))

    for router in ROUTERS:
        app.include_router(router)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> JSONResponse:
        return error(404, f"fwlite does not serve /api/{rest}")

    return app
