"""Sockets and servers: TCP_NODELAY, and a listening server the caller owns.

Nagle plus delayed ACK otherwise cap a loopback transfer near 17 images/s (DESIGN.md 4),
so every association, ours as requestor or acceptor, gets TCP_NODELAY.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from contextlib import suppress
from typing import Any, TypeVar, cast

from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer

from . import reactor

log = logging.getLogger(__name__)


def nodelay(sock: socket.socket) -> None:
    """Turn Nagle off on a TCP socket (a closed or non-TCP socket is left alone)."""
    with suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _assoc_socket(assoc: Any) -> socket.socket | None:
    return getattr(getattr(assoc.dul, "socket", None), "socket", None)


def on_open_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: TCP_NODELAY on the association's socket."""
    sock = _assoc_socket(event.assoc)
    if sock is not None:
        nodelay(sock)


def on_open_fast(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: TCP_NODELAY and the shorter idle sleeps of
    :mod:`fwmapping.dimse.reactor`, for this association only."""
    on_open_nodelay(event)
    reactor.tune(event.assoc)


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded association server, owned by whoever made it with :func:`serve`
    and stopped by :meth:`shutdown` (not registered with its AE, so ``AE.shutdown()`` does
    not see it: stop it through :func:`stop`)."""

    def shutdown(self) -> None:
        socketserver.BaseServer.shutdown(self)
        self.server_close()


S = TypeVar("S", bound=Server)


def serve(
    ae: AE,
    address: tuple[str, int],
    server_class: type[S],
    *,
    evt_handlers: list[Any],
    ssl_context: Any = None,
    name: str = "scp",
    **attributes: Any,
) -> S:
    """Listen on ``address`` with ``server_class`` (a :class:`Server` subclass) in a daemon
    thread; return the server (``server.server_address[1]`` is the port). ``attributes``
    are set on the server before it accepts its first connection."""
    server = cast(
        S,
        ae.make_server(
            address, ssl_context=ssl_context, evt_handlers=evt_handlers, server_class=server_class
        ),
    )
    for key, value in attributes.items():
        setattr(server, key, value)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    server.fwmapping_thread = thread  # type: ignore[attr-defined]
    return server


def stop(ae: AE, server: Server | None, timeout: float = 10.0) -> None:
    """Abort ``ae``'s open associations, stop ``server`` and close its socket."""
    for assoc in ae.active_associations:
        assoc.abort()
    if server is None:
        return
    server.shutdown()
    thread = getattr(server, "fwmapping_thread", None)
    if thread is not None:
        thread.join(timeout=timeout)
