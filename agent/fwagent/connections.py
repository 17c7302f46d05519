"""Who may open an association, checked before pynetdicom spends an association on it.

pynetdicom's threaded server plus, for each accepted TCP connection, in that connection's
own thread (never in the accept loop, so one slow peer cannot hold up the others):

- TCP_NODELAY, and the TLS handshake;
- the whole A-ASSOCIATE-RQ (6-byte PDU header and its body, at most :data:`MAX_RQ_BYTES`)
  must arrive within :data:`HELLO_SECONDS` of the connection (TLS handshake included), else
  the connection is closed: idle or half-sent requests never occupy one of pynetdicom's
  ``maximum_associations`` (pynetdicom itself would wait on a half-sent PDU for ever). The
  request is handed on unread: peeked (``MSG_PEEK``) on plain TCP; on TLS read and served
  again first by :class:`PrefixedSSLSocket`; anything but an A-ASSOCIATE-RQ is dropped;
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
MAX_RQ_BYTES = 64 * 1024  # an A-ASSOCIATE-RQ is a few KB; a longer one is dropped
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
    log_prefix: str = ""  # "qr: " for the Q/R service
    limit_setting: str = "push.max_associations_per_host"  # named in the refusal log
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
                "%sdropped connection from %s: %d connections from it have sent no association"
                " request", self.log_prefix, host, pending,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="host_limit").inc()
            return None
        deadline = time.monotonic() + self.hello_seconds
        sock: socket.socket = request
        if self.ssl_context is not None:
            try:
                sock = _handshake(self.ssl_context, request, deadline)
            except (ssl.SSLError, OSError) as exc:
                log.warning("%srefused TLS connection from %s: %s", self.log_prefix, host, exc)
                metrics.REFUSED.labels(reason="tls").inc()
                return None
        try:
            rq = _read_request(sock, deadline)
        except NotAssociationRequest as exc:
            log.warning("%sdropped connection from %s: %s", self.log_prefix, host, exc)
            metrics.REFUSED.labels(reason="protocol").inc()
            _close(sock)
            return None
        except (TimeoutError, OSError) as exc:
            log.warning(
                "%sclosed connection from %s: no complete association request within %.0f s"
                " (%s)", self.log_prefix, host, self.hello_seconds, exc,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="idle").inc()
            _close(sock)
            return None
        calling = rq[26:42].decode("ascii", "replace").strip()
        if self.allowed_hosts and host not in self.allowed_hosts:
            # counted and logged before the answer goes out: a peer that reads it may look
            log.warning(
                "%srejected association from %s (AE %r): host not in allowed_hosts",
                self.log_prefix, host, calling,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="host").inc()
            _refuse(sock, rq, REJECT_HOST)
            _close(sock)
            return None
        active = self._active_from(host)
        if active >= self.max_per_host:
            log.warning(
                "%srejected association from %s (AE %r): %d associations already open from"
                " this host (%s)", self.log_prefix, host, calling, active, self.limit_setting,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="host_limit").inc()
            _refuse(sock, rq, REJECT_LIMIT)
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


class NotAssociationRequest(ConnectionError):
    """The first PDU is not an A-ASSOCIATE-RQ, or longer than :data:`MAX_RQ_BYTES`."""


class PrefixedSSLSocket(ssl.SSLSocket):
    """An SSLSocket that first serves again the bytes the gate already read from it.

    pynetdicom checks ``pending()`` as well as ``select`` before it reads a TLS socket, so
    the prefix counts as pending. Made by an SSLContext whose ``sslsocket_class`` is this
    class (the documented way to have ``wrap_socket`` return a subclass)."""

    prefix: bytes = b""

    def pending(self) -> int:
        return len(self.prefix) + super().pending()

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if self.prefix and not flags:
            data, self.prefix = self.prefix[:buflen], self.prefix[buflen:]
            return data
        return super().recv(buflen, flags)


def _handshake(context: ssl.SSLContext, request: socket.socket, deadline: float) -> ssl.SSLSocket:
    """The server side of the TLS handshake, all of it before ``deadline`` (a per-read
    timeout alone would let a peer that sends a byte now and then hold the thread)."""
    context.sslsocket_class = PrefixedSSLSocket
    sock = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            break
        except ssl.SSLWantReadError:
            readable, writable = [sock], []
        except ssl.SSLWantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(readable, writable, [], remaining)):
            _close(sock)
            raise TimeoutError("TLS handshake not done in time")
    sock.setblocking(True)
    return sock


def _read_request(sock: socket.socket, deadline: float) -> bytes:
    """The whole A-ASSOCIATE-RQ PDU (header and body) once it has arrived, before
    ``deadline``; left unread on plain TCP (peeked), kept as the socket's prefix on TLS."""
    if isinstance(sock, ssl.SSLSocket):
        header = _recv_exactly(sock, 6, deadline)
        _check_header(header)
        rq = header + _recv_exactly(sock, struct.unpack(">I", header[2:])[0], deadline)
        if isinstance(sock, PrefixedSSLSocket):
            sock.prefix = rq
        return rq
    header = _peek_exactly(sock, 6, deadline)
    _check_header(header)
    return _peek_exactly(sock, 6 + struct.unpack(">I", header[2:])[0], deadline)


def _check_header(header: bytes) -> None:
    pdu_type, _, length = struct.unpack(">BBI", header)
    if pdu_type != A_ASSOCIATE_RQ:
        raise NotAssociationRequest(f"not an association request (PDU type {pdu_type:#04x})")
    if length > MAX_RQ_BYTES:
        raise NotAssociationRequest(f"association request of {length} bytes")


def _peek_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    """The first ``count`` bytes waiting on ``sock``, without reading them: the kernel
    waits for all of them (MSG_WAITALL) up to a receive timeout set to the deadline."""
    sock.settimeout(None)  # blocking, so the kernel does the waiting
    data = b""
    try:
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(data)} of {count} bytes")
            seconds, micros = int(remaining), int(remaining % 1 * 1e6)
            timeout = struct.pack("ll", seconds, micros or (0 if seconds else 1000))  # 0 0: none
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            try:
                data = sock.recv(count, socket.MSG_PEEK | socket.MSG_WAITALL)
            except BlockingIOError:  # the receive timeout, nothing arrived
                continue
            if len(data) < count and (not data or _peer_closed(sock)):
                raise ConnectionError("peer closed the connection")
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
    return data


def _peer_closed(sock: socket.socket) -> bool:
    """Has the peer shut its side down (so no more bytes will come)?"""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(mask & (select.POLLRDHUP | select.POLLHUP) for _, mask in poller.poll(0))


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    chunks = []
    while count > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{count} bytes still missing")
        sock.settimeout(remaining)
        chunk = sock.recv(min(count, 65536))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _refuse(sock: socket.socket, rq: bytes, reject: tuple[int, int, int]) -> None:
    """Answer the A-ASSOCIATE-RQ ``rq`` (read all of it first, so closing does not reset
    the connection before the peer reads our answer) with an A-ASSOCIATE-RJ."""
    if isinstance(sock, PrefixedSSLSocket):
        sock.prefix = b""
    else:
        _recv_exactly(sock, len(rq), time.monotonic() + 1.0)  # peeked: take it off now
    sock.sendall(reject_pdu(*reject))
    try:  # let the peer read the answer and close first (it does, on A-ASSOCIATE-RJ)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        sock.recv(1024)
    except OSError:
        pass


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
