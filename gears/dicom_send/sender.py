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
from dataclasses import dataclass
from typing import Any

from fwmapping import dimse
from fwmapping.dimse import AE, Association, Checkpoint, Verification, build_context

from . import contexts
from .tagging import Prepared, convert

log = logging.getLogger(__name__)


RECONNECTS = 2  # a dropped association is re-opened this many times without progress
RECONNECT_DELAY = 0.5
# pynetdicom's network thread naps 1 ms whenever it finds nothing to do; on a busy send that
# nap is paid several times per C-STORE. A shorter nap (only on our own associations, only
# while they are open) keeps the link busy at the cost of some idle polling.
DUL_LOOP_DELAY = 0.0003
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
    assoc = _ae(peer).associate(
        peer.host,
        peer.port,
        contexts=requested,
        ae_title=peer.called_ae,
        tls_args=tls_args,
        evt_handlers=[(dimse.evt.EVT_CONN_OPEN, dimse.on_open_nodelay)],
    )
    dimse.keep_responses(assoc)
    dimse.set_network_nap(assoc, DUL_LOOP_DELAY)
    return assoc


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


class Sender:
    """Sends prepared instances to one peer, one at a time, over one association at a time.

    The association is opened when the first instance arrives and kept open; it is
    re-opened (with contexts for every SOP class and syntax seen so far, at most 128) when
    an instance needs a context it lacks, or when the peer dropped it. When the peer cannot
    be reached again after a few tries it is taken as down: the rest fail at once with the
    same reason instead of each waiting for its own time-outs.
    """

    def __init__(self, peer: Peer):
        self.peer = peer
        self.assoc: Association | None = None
        self.checkpoint: Checkpoint | None = None
        self.seen: set[tuple[str, str]] = set()
        self.requested: set[tuple[str, str]] = set()
        self.accepted: set[tuple[str, str]] = set()
        self.down: str | None = None
        self.associations = 0
        self.tls: list[tuple[str, str]] = []  # (TLS version, cipher) per association

    def send(self, item: Prepared) -> str | None:
        """Send one instance; None when the peer acknowledged it, else the reason it was not."""
        if self.down:
            return self.down
        pair = (item.sop_class, item.transfer_syntax)
        self.seen.add(pair)
        failures = 0
        while True:
            if self.assoc is None or not self.assoc.is_established or pair not in self.requested:
                reason = self._open(item.sop_class)
                if reason:
                    failures += 1
                    if failures > RECONNECTS:
                        self.down = reason
                        log.error("%s; nothing more is sent", reason)
                        return reason
                    log.warning("%s; retrying", reason)
                    time.sleep(RECONNECT_DELAY)
                    continue
            assert self.assoc is not None
            if self.checkpoint is not None:
                self.checkpoint.hold()
            try:
                to_send = self._matching(item)
            except ValueError as exc:
                return str(exc)
            payload = to_send.dataset if to_send.dataset is not None else to_send.path
            if payload is None:
                return "nothing to send (already released)"
            try:
                with dimse.chunked_send():
                    status = self.assoc.send_c_store(payload)
            finally:
                if to_send is not item:
                    to_send.release()
            if not status:  # aborted, timed out or connection lost: reconnect and resend
                self._drop()
                failures += 1
                if failures > RECONNECTS:
                    self.down = f"association with {self.peer.describe()} lost"
                    log.error("%s; nothing more is sent", self.down)
                    return self.down
                log.warning("association with %s lost; reconnecting", self.peer.describe())
                time.sleep(RECONNECT_DELAY)
                continue
            code = int(status.get("Status", 0xFFFF))
            if code in SUCCESS_OR_WARNING:
                return None
            return f"peer answered C-STORE with status 0x{code:04X}"

    def idle(self) -> None:
        """No C-STORE follows at once: let pynetdicom watch the association meanwhile."""
        if self.checkpoint is not None:
            self.checkpoint.let_go()

    def close(self) -> None:
        """Release the association (if any); the peer keeps everything it acknowledged."""
        self._drop()

    def _drop(self) -> None:
        self.idle()
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()
        self.assoc = None
        self.checkpoint = None
        self.requested = set()
        self.accepted = set()

    def _open(self, sop_class: str) -> str | None:
        """(Re)associate with contexts for everything seen, ``sop_class``'s group first."""
        self._drop()
        groups = contexts.plan(self.seen)
        group = next(g for g in groups if any(abstract == sop_class for abstract, _ in g))
        try:
            assoc = associate(self.peer, contexts.build(group))
        except (OSError, ValueError) as exc:
            return f"cannot connect to {self.peer.describe()}: {exc}"
        if not assoc.is_established:
            return _why_not(assoc, self.peer)
        self.assoc = assoc
        self.checkpoint = dimse.parkable(assoc)
        self.associations += 1
        info = dimse.tls_info(assoc)
        if info:
            self.tls.append(info)
        self.requested = {(abstract, syntax) for abstract, syntaxes in group for syntax in syntaxes}
        self.accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts
        }
        return None

    def _matching(self, item: Prepared) -> Prepared:
        """The instance itself if its syntax was accepted, else an uncompressed copy, or raise."""
        if (item.sop_class, item.transfer_syntax) in self.accepted:
            return item
        for syntax in contexts.UNCOMPRESSED:
            if (item.sop_class, syntax) in self.accepted:
                return convert(item, syntax)
        raise ValueError(f"peer accepts no transfer syntax for SOP class {item.sop_class}")
