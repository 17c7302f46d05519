"""The DICOM side: C-ECHO first, then C-STORE from disk over as many associations as needed.

Every association (first or reconnect) is opened with the same TLS context and gets
TCP_NODELAY on its socket; files are sent with ``send_c_store(path)`` in pynetdicom's
chunked mode, so a file is never held in memory whole.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from . import contexts
from .tagging import TaggedFile, convert

log = logging.getLogger(__name__)


RECONNECTS = 2  # a dropped association is re-opened this many times without progress
RECONNECT_DELAY = 0.5
SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}


class PeerError(RuntimeError):
    """The peer cannot be reached or refuses us; one message says which and why."""


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    called_ae: str
    calling_ae: str = "flywheel"
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0

    def describe(self) -> str:
        tls = " over TLS" if self.ssl_context else ""
        return f"{self.called_ae}@{self.host}:{self.port}{tls}"


@dataclass
class SendResult:
    sent: list[TaggedFile] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # source name -> reason
    tls: list[tuple[str, str]] = field(default_factory=list)  # (version, cipher) per association
    associations: int = 0


@contextmanager
def chunked_from_disk() -> Iterator[None]:
    """pynetdicom's chunked mode (send straight from the file), only while we send."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def _nodelay(event: Any) -> None:
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _ae(peer: Peer) -> AE:
    ae = AE(ae_title=peer.calling_ae)
    ae.acse_timeout = peer.timeout
    ae.dimse_timeout = peer.timeout
    ae.network_timeout = peer.timeout
    ae.connection_timeout = min(peer.timeout, 15.0)
    return ae


def associate(peer: Peer, requested: list[Any]) -> Association:
    """Open one association (TLS and TCP_NODELAY every time)."""
    tls_args = (peer.ssl_context, peer.host) if peer.ssl_context else None
    return _ae(peer).associate(
        peer.host,
        peer.port,
        contexts=requested,
        ae_title=peer.called_ae,
        tls_args=tls_args,
        evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
    )


def _why_not(assoc: Association, peer: Peer) -> str:
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        reason = getattr(rsp, "reason_str", "") if rsp is not None else ""
        return f"{peer.describe()} rejected the association ({reason or 'no reason given'}); check called_ae and calling_ae"
    if assoc.is_aborted:
        hint = " (TLS handshake failed: check certificates and tls_security_profile)"
        return f"{peer.describe()} aborted the association" + (hint if peer.ssl_context else "")
    return (
        f"cannot connect to {peer.describe()}: nothing answers there or the connection was "
        "refused (check destination, port, firewall and TLS settings)"
    )


def echo(peer: Peer) -> None:
    """C-ECHO the peer; raise PeerError with one clear message if it cannot be used."""
    from pynetdicom.presentation import build_context

    try:  # pynetdicom reports a refused connection as an abort: ask TCP first
        socket.create_connection((peer.host, peer.port), timeout=min(peer.timeout, 15.0)).close()
    except OSError as exc:
        raise PeerError(
            f"cannot connect to {peer.describe()}: {exc.strerror or exc} "
            "(check destination, port and firewall)"
        ) from None
    try:
        assoc = associate(peer, [build_context(Verification)])
    except (OSError, ValueError) as exc:
        raise PeerError(f"cannot connect to {peer.describe()}: {exc}") from None
    if not assoc.is_established:
        reason = _why_not(assoc, peer)
        detail = _tls_probe(peer) if peer.ssl_context and not assoc.is_rejected else None
        raise PeerError(f"{reason}: {detail}" if detail else reason)
    try:
        if assoc.accepted_contexts:
            status = assoc.send_c_echo()
            if not status or status.get("Status") != 0x0000:
                log.warning(
                    "%s answered C-ECHO without success; trying to send anyway", peer.describe()
                )
        else:
            log.warning("%s does not offer C-ECHO; trying to send anyway", peer.describe())
    finally:
        if assoc.is_established:
            assoc.release()
    log.info("C-ECHO to %s: OK", peer.describe())


def _tls_probe(peer: Peer) -> str | None:
    """Why a TLS handshake with the peer fails (pynetdicom only logs it), or None."""
    assert peer.ssl_context is not None
    try:
        with (
            socket.create_connection((peer.host, peer.port), timeout=10) as raw,
            peer.ssl_context.wrap_socket(raw, server_hostname=peer.host) as wrapped,
        ):
            wrapped.recv(1)  # TLS 1.3 reports a refused client certificate only on read
    except ssl.SSLError as exc:
        return f"TLS: {exc.reason or exc}"
    except OSError as exc:
        return str(exc) or None
    return None


def _tls_info(assoc: Association) -> tuple[str, str] | None:
    sock = assoc.dul.socket.socket if assoc.dul.socket else None
    if isinstance(sock, ssl.SSLSocket):
        cipher = sock.cipher()
        return (sock.version() or "", cipher[0] if cipher else "")
    return None


class Sender:
    """Sends tagged files to one peer; ``convert_dir`` holds decompressed fallbacks."""

    def __init__(self, peer: Peer, convert_dir: Path, on_sent: Callable[[], None] | None = None):
        self.peer = peer
        self.convert_dir = convert_dir
        self.on_sent = on_sent

    def send(self, files: Iterable[TaggedFile]) -> SendResult:
        result = SendResult()
        files = list(files)
        pairs = {(f.sop_class, f.transfer_syntax) for f in files}
        with chunked_from_disk():
            for group in contexts.plan(pairs):
                classes = {abstract for abstract, _ in group}
                members = [f for f in files if f.sop_class in classes]
                self._send_group(group, members, result)
        return result

    def _send_group(
        self, group: list[tuple[str, list[str]]], files: list[TaggedFile], result: SendResult
    ) -> None:
        pending = list(files)
        failures_without_progress = 0
        while pending:
            assoc = associate(self.peer, contexts.build(group))
            if not assoc.is_established:
                failures_without_progress += 1
                reason = _why_not(assoc, self.peer)
                if failures_without_progress > RECONNECTS:
                    for item in pending:
                        result.failed[item.source_name] = reason
                    log.error("%s; %d file(s) not sent", reason, len(pending))
                    return
                log.warning("%s; retrying", reason)
                time.sleep(RECONNECT_DELAY)
                continue
            result.associations += 1
            info = _tls_info(assoc)
            if info:
                result.tls.append(info)
            accepted = {
                (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in assoc.accepted_contexts
            }
            progressed = False
            try:
                while pending and assoc.is_established:
                    item = pending[0]
                    try:
                        to_send = self._matching(item, accepted)
                    except ValueError as exc:
                        result.failed[item.source_name] = str(exc)
                        log.error("%s: %s", item.source_name, exc)
                        pending.pop(0)
                        continue
                    try:
                        status = assoc.send_c_store(to_send.path)
                    finally:
                        if to_send is not item:
                            to_send.path.unlink(missing_ok=True)
                    if not status:  # aborted, timed out or connection lost: reconnect
                        break
                    pending.pop(0)
                    progressed = True
                    code = int(status.get("Status", 0xFFFF))
                    if code in SUCCESS_OR_WARNING:
                        result.sent.append(item)
                        if self.on_sent:
                            self.on_sent()
                    else:
                        reason = f"peer answered C-STORE with status 0x{code:04X}"
                        result.failed[item.source_name] = reason
                        log.error("%s: %s", item.source_name, reason)
            finally:
                if assoc.is_established:
                    assoc.release()
            if pending:
                failures_without_progress = 0 if progressed else failures_without_progress + 1
                if failures_without_progress > RECONNECTS:
                    reason = f"association with {self.peer.describe()} lost"
                    for item in pending:
                        result.failed[item.source_name] = reason
                    log.error("%s; %d file(s) not sent", reason, len(pending))
                    return
                log.warning(
                    "association with %s lost; reconnecting (%d file(s) left)",
                    self.peer.describe(),
                    len(pending),
                )
                time.sleep(RECONNECT_DELAY)

    def _matching(self, item: TaggedFile, accepted: set[tuple[str, str]]) -> TaggedFile:
        """The file itself if its syntax was accepted, else an uncompressed copy, or raise."""
        if (item.sop_class, item.transfer_syntax) in accepted:
            return item
        for syntax in contexts.UNCOMPRESSED:
            if (item.sop_class, syntax) in accepted:
                target = self.convert_dir / (item.path.name + ".uncompressed")
                self.convert_dir.mkdir(parents=True, exist_ok=True)
                return convert(item, syntax, target)
        raise ValueError(f"peer accepts no transfer syntax for SOP class {item.sop_class}")
