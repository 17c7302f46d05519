"""The Q/R SCP on the wire: the Q/R service's DIMSE (through :mod:`fwmapping.dimse`) lives here.

Association: only registered peers' AE titles (others rejected, "calling AE title not
recognised"); TCP_NODELAY on every socket; optional TLS. Services: C-ECHO, Patient and
Study Root C-FIND / C-MOVE / C-GET. What a peer may do is checked per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from fwmapping import dimse
from fwmapping.dimse import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    QueryRetrievePresentationContexts,
    StoragePresentationContexts,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
    build_context,
    evt,
)
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fwagent.config import QrConfig, QrPeerConfig
from fwagent.connections import GatedServer
from fwagent.tls import client_ssl_context, server_ssl_context

from . import query, retrieve
from .index import Index, Located
from .matching import IdentifierError

log = logging.getLogger(__name__)

PATIENT_ROOT_UIDS = {
    str(PatientRootQueryRetrieveInformationModelFind),
    str(PatientRootQueryRetrieveInformationModelMove),
    str(PatientRootQueryRetrieveInformationModelGet),
}
SUPPORTED = PATIENT_ROOT_UIDS | {
    str(StudyRootQueryRetrieveInformationModelFind),
    str(StudyRootQueryRetrieveInformationModelMove),
    str(StudyRootQueryRetrieveInformationModelGet),
}
# a calling AE title no peer can have (AE titles are at most 16 characters): with no peer
# registered every association is refused rather than every caller accepted
NOBODY = "-NO-PEERS-"

# pynetdicom picks, per proposed context, the first of OUR syntaxes the peer offers: explicit
# VR first (what the agent stores), then the rest; anything compressed we hold can be
# decompressed to an uncompressed one, nothing uncompressed can be compressed here
GET_SYNTAXES = list(
    dict.fromkeys([ExplicitVRLittleEndian, ImplicitVRLittleEndian, *ALL_TRANSFER_SYNTAXES])
)

# connections from one host before more are refused, as push.max_associations_per_host (the
# Q/R peers are few; one of them retrieving never needs more than a handful at once)
MAX_ASSOCIATIONS_PER_HOST = 10

CANCEL = 0xFE00
PENDING = 0xFF00
NOT_AUTHORIZED = 0x0124
IDENTIFIER_MISMATCH = 0xA900
OUT_OF_RESOURCES = 0xA700
UNABLE_TO_PROCESS = 0xC000


# what pynetdicom answers a RequestRefused with, per service
MOVE_REFUSED = 0xC514
GET_REFUSED = 0xC413


class RequestRefused(RuntimeError):
    """A retrieve pynetdicom must answer with a failure before any sub-operation (it
    answers an exception raised before the first yield with 0xC514 / 0xC413)."""


# what pynetdicom logs as errors (with a traceback when a handler raises before its first
# yield) for our deliberate answers, a RequestRefused or an unknown move destination,
# which we have already logged in plain words
_REFUSAL_NOISE = (
    "The C-MOVE request handler must yield the (address, port)",
    "The C-GET request handler yielded an invalid number of sub-operations",
    "Unknown Move Destination:",  # logged by us as a warning already, with the caller
)


class _QuietRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestRefused):
            return False
        return not (isinstance(record.msg, str) and record.msg.startswith(_REFUSAL_NOISE))


_QUIET = _QuietRefusals()


def status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


class QRServer:
    """The listening Q/R SCP. ``before_request`` runs before each find/retrieve (the
    service refreshes the index there when it is stale)."""

    def __init__(
        self,
        config: QrConfig,
        index: Index,
        fetcher: retrieve.Fetcher,
        before_request: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.index = index
        self.fetcher = fetcher
        self.before_request = before_request
        self.peers = {p.ae_title: p for p in config.peers}
        self.ae: AE | None = None
        self.server: GatedServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_associations = 20
        ae.acse_timeout = 30
        ae.dimse_timeout = 120
        ae.network_timeout = 120
        ae.add_supported_context(Verification)
        for context in QueryRetrievePresentationContexts:
            if str(context.abstract_syntax) in SUPPORTED:
                ae.add_supported_context(str(context.abstract_syntax))
        for context in StoragePresentationContexts:  # C-GET sends back on these
            ae.add_supported_context(
                str(context.abstract_syntax), GET_SYNTAXES, scu_role=False, scp_role=True
            )
        dimse.filter_service_log(_QUIET)
        ae.require_calling_aet = list(self.peers) or [NOBODY]
        ae.require_called_aet = True  # a peer configured with the wrong AE title is told so
        if not self.peers:
            log.warning("qr: no peers registered, every association will be refused")
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, dimse.on_open_nodelay),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        ssl_context = server_ssl_context(cfg.tls) if cfg.tls.enabled else None
        # the connection gate push has (connections.py): the whole A-ASSOCIATE-RQ within
        # seconds, at most MAX_ASSOCIATIONS_PER_HOST from one host
        self.server = dimse.serve(
            ae,
            (cfg.host, cfg.port),
            GatedServer,
            evt_handlers=handlers,
            ssl_context=ssl_context,
            name=f"qr-{cfg.ae_title}",
            max_per_host=MAX_ASSOCIATIONS_PER_HOST,
            log_prefix="qr: ",
            limit_setting=f"the Q/R service's limit of {MAX_ASSOCIATIONS_PER_HOST}",
        )
        self.ae = ae
        log.info(
            "qr: %s listening on %s:%s%s for %s",
            cfg.ae_title, cfg.host, self.port, " (TLS)" if ssl_context else "",
            ", ".join(self.peers) or "nobody",
        )  # fmt: skip

    @property
    def port(self) -> int:
        return int(self.server.server_address[1]) if self.server else self.config.port

    def stop(self) -> None:
        if self.ae is not None:
            dimse.stop(self.ae, self.server)  # aborts open associations, closes the socket
        self.ae = None
        self.server = None

    # -- handlers --------------------------------------------------------------------------
    def _peer(self, event: evt.Event) -> QrPeerConfig | None:
        return self.peers.get(str(event.assoc.requestor.ae_title).strip())

    @staticmethod
    def _on_rejected(event: evt.Event) -> None:
        requestor = event.assoc.requestor
        log.warning(
            "qr: refused association from %r at %s (not a registered peer, or wrong called AE)",
            requestor.ae_title, requestor.address,
        )  # fmt: skip

    @staticmethod
    def _on_echo(_event: evt.Event) -> int:
        return 0x0000

    def _on_find(self, event: evt.Event) -> Iterator[tuple[Any, Any]]:
        peer = self._peer(event)
        if peer is None or not peer.find:
            log.warning("qr: C-FIND from %s refused: not allowed for this peer", _caller(event))
            yield status(NOT_AUTHORIZED, "C-FIND is not allowed for this peer"), None
            return
        model = self._model(event)
        try:
            self.before_request()
            responses, truncated = query.find(
                self.index,
                event.identifier,
                model,
                self.config.ae_title,
                self.config.max_results,
            )
        except IdentifierError as exc:
            log.warning("qr: C-FIND from %s refused (0xA900): %s", peer.ae_title, exc)
            yield status(IDENTIFIER_MISMATCH, str(exc)), None
            return
        except Exception as exc:  # noqa: BLE001 - answered, never a dropped association
            log.exception("qr: C-FIND from %s failed", peer.ae_title)
            yield status(UNABLE_TO_PROCESS, f"{type(exc).__name__}: {exc}"), None
            return
        for response in responses:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, response
        if truncated:
            limit = self.config.max_results
            yield status(OUT_OF_RESOURCES, f"more than {limit} matches: narrow the query"), None
            return
        yield 0x0000, None

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        peer = self._peer(event)
        if peer is None or not peer.move:
            log.warning("qr: C-MOVE from %s refused: not allowed for this peer", _caller(event))
            raise RequestRefused("C-MOVE is not allowed for this peer")
        located = self._select(event, peer, MOVE_REFUSED)
        destination = self.peers.get(str(event.move_destination or "").strip())
        if destination is None:
            log.warning(
                "qr: C-MOVE from %s to unknown destination %r refused (0xA801)",
                peer.ae_title, str(event.move_destination or "").strip(),
            )  # fmt: skip
            yield None, None  # pynetdicom answers 0xA801, move destination unknown
            return
        accepted: list[tuple[str, str]] = []

        def on_accepted(sub: evt.Event) -> None:
            for cx in sub.assoc.accepted_contexts:
                accepted.append((str(cx.abstract_syntax), str(cx.transfer_syntax[0])))

        contexts = [build_context(sop, ts) for sop, ts in retrieve.wanted_contexts(located)]
        kwargs: dict[str, Any] = {
            "contexts": contexts,
            "evt_handlers": [
                (evt.EVT_CONN_OPEN, dimse.on_open_nodelay),
                (evt.EVT_ACCEPTED, on_accepted),
            ],
        }
        if self.config.tls.enabled:
            kwargs["tls_args"] = (client_ssl_context(self.config.tls), destination.host)
        yield destination.host, destination.port, kwargs
        yield len(located)  # 0: pynetdicom answers success without opening an association
        yield from self._send(event, located, _accepts(accepted))

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        peer = self._peer(event)
        if peer is None or not peer.get:
            log.warning("qr: C-GET from %s refused: not allowed for this peer", _caller(event))
            raise RequestRefused("C-GET is not allowed for this peer")
        located = self._select(event, peer, GET_REFUSED)
        accepted = [
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
            for cx in event.assoc.accepted_contexts
        ]
        yield len(located)
        yield from self._send(event, located, _accepts(accepted))

    def _select(self, event: evt.Event, peer: QrPeerConfig, refused: int) -> list[Located]:
        try:
            self.before_request()
            return query.select(self.index, event.identifier, self._model(event))
        except IdentifierError as exc:
            log.warning("qr: retrieve from %s refused (0x%04X): %s", peer.ae_title, refused, exc)
            raise RequestRefused(str(exc)) from None

    def _send(
        self, event: evt.Event, located: list[Located], accepts: retrieve.Accepts
    ) -> Iterator[tuple[int, Dataset | None]]:
        for item, ds in self.fetcher.datasets(located):
            if event.is_cancelled:
                yield CANCEL, None
                return
            if ds is None:
                yield PENDING, retrieve.failed_placeholder(item.sop_uid)
            else:
                yield PENDING, retrieve.fit(ds, accepts)

    @staticmethod
    def _model(event: evt.Event) -> str:
        sop_class = str(event.request.AffectedSOPClassUID)
        return query.PATIENT_ROOT if sop_class in PATIENT_ROOT_UIDS else query.STUDY_ROOT


def _caller(event: evt.Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _accepts(accepted: list[tuple[str, str]]) -> retrieve.Accepts:
    def accepts(sop_class: str, ts: str) -> bool:
        return (sop_class, ts) in accepted

    return accepts
