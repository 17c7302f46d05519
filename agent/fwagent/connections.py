"""Who may open an association, checked before pynetdicom spends an association on it.

pynetdicom's threaded server plus, for each accepted TCP connection, in that connection's
own thread (never in the accept loop, so one slow peer cannot hold up the others):

- TCP_NODELAY, and the TLS handshake (bounded by :data:`HELLO_SECONDS`);
- a connection that sends nothing (no A-ASSOCIATE-RQ) within :data:`HELLO_SECONDS` is
  closed: idle sockets never occupy one of the ``maximum_associations``;
- a host not in ``allowed_hosts`` gets an A-ASSOCIATE-RJ (permanent, no reason given),
  and a host that already has ``max_per_host`` connections gets one that says "local limit
  exceeded" (transient), so scanner logs show "Association Rejected", not a dropped
  connection. A host with more than that many connections that have not even sent their
  request is dropped without an answer (it is not behaving like a DICOM peer).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from typing import Any

from fwmapping import dimse

from . import metrics

log = logging.getLogger("fwagent.receiver")

HELLO_SECONDS = 5.0  # a peer must send its A-ASSOCIATE-RQ (or TLS hello) within this
MAX_RQ_BYTES = 1 << 20  # an A-ASSOCIATE-RQ is a few KB; read no more than this to refuse it
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_RJ = 0x03
# (result, source, reason) of an A-ASSOCIATE-RJ, PS3.8 9.3.4
REJECT_HOST = (0x01, 0x01, 0x01)  # permanent, service user, no reason given
REJECT_LIMIT = (0x02, 0x03, 0x02)  # transient, service provider, local limit exceeded


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return struct.pack(">BBIBBBB", A_ASSOCIATE_RJ, 0, 4, 0, result, source, reason)


class GatedServer(dimse.Server):
    """pynetdicom's threaded server with the gate described in the module docstring."""

    allowed_hosts: frozenset[str] = frozenset()
    max_per_host: int = 10
    hello_seconds: float = HELLO_SECONDS
    # listen backlog (socketserver's default is 5: a burst of connections beyond it waits
    # for the client's SYN retransmit, 1 s and more, before it is even seen)
    request_queue_size = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: Counter[str] = Counter()
        self._pending_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept only; pynetdicom's own get_request would do the TLS handshake here, in
        the accept loop, where one silent peer would hold up every other."""
        assert self.socket is not None
        client, address = self.socket.accept()
        return client, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        host = str(client_address[0])
        with self._pending_lock:
            self._pending[host] += 1
            pending = self._pending[host]
        try:
            sock = self._admit(request, host, pending)
        except Exception as exc:  # noqa: BLE001 - a refused peer must not reach pynetdicom
            log.debug("connection from %s closed: %s", host, exc)
            sock = None
        finally:
            with self._pending_lock:
                self._pending[host] -= 1
                if self._pending[host] <= 0:
                    del self._pending[host]
        if sock is None:
            _close(request)
            return
        super().process_request_thread(sock, client_address)

    def _admit(self, request: socket.socket, host: str, pending: int) -> socket.socket | None:
        """The socket to hand to pynetdicom, or None if this connection was refused."""
        dimse.nodelay(request)
        if pending > self.max_per_host:
            log.warning(
                "dropped connection from %s: %d connections from it have sent no association"
                " request", host, pending,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="host_limit").inc()
            return None
        deadline = time.monotonic() + self.hello_seconds
        sock: socket.socket = request
        if self.ssl_context is not None:
            request.settimeout(self.hello_seconds)
            try:
                sock = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.warning("refused TLS connection from %s: %s", host, exc)
                metrics.REFUSED.labels(reason="tls").inc()
                return None
        if not _wait_readable(sock, deadline):
            log.warning(
                "closed connection from %s: no association request within %.0f s",
                host, self.hello_seconds,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="idle").inc()
            _close(sock)
            return None
        if self.allowed_hosts and host not in self.allowed_hosts:
            calling = _refuse(sock, deadline, REJECT_HOST)
            log.warning(
                "rejected association from %s (AE %r): host not in allowed_hosts", host, calling
            )
            metrics.REFUSED.labels(reason="host").inc()
            _close(sock)
            return None
        active = self._active_from(host)
        if active >= self.max_per_host:
            calling = _refuse(sock, deadline, REJECT_LIMIT)
            log.warning(
                "rejected association from %s (AE %r): %d associations already open from this"
                " host (push.max_associations_per_host)", host, calling, active,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="host_limit").inc()
            _close(sock)
            return None
        sock.settimeout(None)
        return sock

    def _active_from(self, host: str) -> int:
        count = 0
        for assoc in self.active_associations:
            info = getattr(assoc.requestor, "address_info", None)
            if info is not None and getattr(info, "address", None) == host:
                count += 1
        return count


def _wait_readable(sock: socket.socket, deadline: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    remaining = max(0.0, deadline - time.monotonic())
    readable, _, _ = select.select([sock], [], [], remaining)
    return bool(readable)


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    chunks = []
    while count > 0:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(min(count, 65536))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _refuse(sock: socket.socket, deadline: float, reject: tuple[int, int, int]) -> str:
    """Read the A-ASSOCIATE-RQ (all of it, so closing does not reset the connection before
    the peer reads our answer), answer A-ASSOCIATE-RJ; return the calling AE title."""
    header = _recv_exactly(sock, 6, deadline)
    pdu_type, _, length = struct.unpack(">BBI", header)
    if pdu_type != A_ASSOCIATE_RQ or length > MAX_RQ_BYTES:
        raise ConnectionError(f"not an association request (PDU type {pdu_type:#04x})")
    body = _recv_exactly(sock, length, deadline)
    sock.sendall(reject_pdu(*reject))
    try:  # let the peer read the answer and close first (it does, on A-ASSOCIATE-RJ)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        sock.recv(1024)
    except OSError:
        pass
    return body[20:36].decode("ascii", "replace").strip()


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
