"""The metrics listener of ``fwagent run`` (``metrics.host``:``metrics.port``):

- ``GET /metrics``: Prometheus exposition (prometheus-client's own WSGI app),
- ``GET /``: the status page (HTML, :mod:`fwagent.statuspage`),
- ``GET /status.json``: what ``fwagent status`` prints (:mod:`fwagent.report`).

The standard library's WSGI server in a thread per request; with ``metrics.basic_auth``
every path answers 401 with a ``WWW-Authenticate`` challenge unless the request carries the
configured user and password (compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app

from . import report, statuspage
from .config import AgentConfig
from .state import State

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
REALM = 'Basic realm="fwagent", charset="UTF-8"'


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)


class Credentials:
    """One user and password, checked in constant time."""

    def __init__(self, user: str, password: str) -> None:
        self._user = user.encode("utf-8")
        self._password = password.encode("utf-8")

    def check(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # both compares always run: the time taken says nothing about which part was wrong
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        return bool(sep) and user_ok and password_ok


class StatusApp:
    """The WSGI application behind the listener."""

    def __init__(
        self,
        config: AgentConfig,
        state: State,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.credentials = credentials
        self.clock = clock
        self.metrics_app = make_wsgi_app(REGISTRY)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = self._respond(environ, start_response)
        if environ.get("REQUEST_METHOD") == "HEAD":  # headers (and their length) only
            return []
        return body

    def _respond(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.credentials is not None and not self.credentials.check(
            environ.get("HTTP_AUTHORIZATION")
        ):
            return _reply(
                start_response, "401 Unauthorized", b"authentication required\n",
                "text/plain; charset=utf-8", [("WWW-Authenticate", REALM)],
            )  # fmt: skip
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path not in ("/", "/index.html", "/status.json", "/metrics"):
            return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")
        if method not in ("GET", "HEAD"):
            return _reply(
                start_response, "405 Method Not Allowed", b"GET only\n", "text/plain",
                [("Allow", "GET, HEAD")],
            )  # fmt: skip
        if path == "/metrics":
            return list(self.metrics_app(environ, start_response))
        try:
            data = report.status(self.config, self.state, now=self.clock())
        except Exception as exc:  # the page reports trouble, it does not go away
            log.exception("status page: cannot read the state database")
            body = f"cannot read the agent's state: {type(exc).__name__}: {exc}\n"
            return _reply(start_response, "500 Internal Server Error", body.encode(), "text/plain")
        if path == "/status.json":
            text = json.dumps(data, indent=2, sort_keys=True, default=str)
            return _reply(start_response, "200 OK", text.encode(), "application/json")
        page = statuspage.render(data, agent_title=self.config.push.ae_title)
        return _reply(start_response, "200 OK", page.encode("utf-8"), "text/html; charset=utf-8")


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
            *(headers or []),
        ],
    )
    return [body]


def read_password(path: str | Path) -> str:
    """The password in a password file: its first line, without the line break."""
    text = Path(path).read_text(encoding="utf-8")
    return text.splitlines()[0] if text else ""


def credentials_for(config: AgentConfig) -> Credentials | None:
    """The configured login, or None; ValueError (one line) when the password is unusable."""
    auth = config.metrics.basic_auth
    if not auth.user:
        return None
    try:
        password = read_password(auth.password_file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"metrics.basic_auth.password_file: cannot read it: {exc}") from None
    if not password:
        raise ValueError(f"metrics.basic_auth.password_file: {auth.password_file} is empty")
    return Credentials(auth.user, password)


class StatusServer:
    """The listener, served from a daemon thread until :meth:`stop`."""

    def __init__(self, config: AgentConfig, state: State) -> None:
        self.app = StatusApp(config, state, credentials_for(config))
        self._server = make_server(
            config.metrics.host,
            config.metrics.port,
            self.app,
            server_class=_Server,
            handler_class=_Handler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
