"""The Storage SCP: C-STORE into the durable spool, C-ECHO for monitoring.

Used for ``push`` and, by the pull side, on ``pull.port`` as the C-MOVE destination::

    scp = StorageSCP(Spool(config.spool_dir), state, min_free_bytes=..., sent_tag=...)
    scp.start("FWAGENT", "127.0.0.1", 11112, tls=config.push.tls,
              allowed_calling_aets=(), allowed_hosts=())
    ...
    scp.stop()

Every storage SOP class is accepted, standard, retired or private (pynetdicom's
unrestricted storage service), in every transfer syntax; other services (C-ECHO aside) are
refused at negotiation. Who may connect is checked first (:mod:`fwagent.connections`).

For each instance: the bytes as they arrive (dataset unchanged) stream into a file in
``spool/tmp`` (:mod:`fwagent.chunked`; its File Meta is rewritten from the dataset's own
SOP Class/Instance UIDs when the command said otherwise); the file is fsynced, renamed into
``spool/instances/<sop>.dcm`` (a duplicate SOP instance replaces the earlier copy), the
folder fsynced and the row committed durably (:mod:`fwagent.durable`, group commit), and
only then is 0x0000 answered (0xB007 when the dataset's SOP class differs from the one the
C-STORE named). Below the free-space floor: 0xA700 (Out
of Resources). A dataset that cannot be parsed, is cut short (:mod:`fwagent.completeness`)
or lacks the SOP Instance, Series or Study Instance UID Flywheel needs is kept in
``spool/quarantine`` with its reason and answered 0xC000 (the association carries on).
Files carrying the dicom-send private tag are answered success and dropped. The spool's
layout is :mod:`fwagent.spool`, the File Meta and header parse :mod:`fwagent.dicomfile`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from fwmapping import SentTag, dimse, is_sent_by_flywheel
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from . import chunked, metrics, pdu
from .completeness import incomplete_file
from .config import TlsConfig
from .connections import GatedServer
from .dicomfile import (
    acquisition_key,
    encode_file_meta,
    header_text,
    series_description,
)
from .durable import Committer, fsync_file
from .spool import Spool
from .state import State
from .tls import server_ssl_context

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH_SOP_CLASS = 0xB007  # warning: stored, but not the SOP class the C-STORE named


class StorageSCP:
    """One listening Storage SCP writing into the spool and the state database."""

    def __init__(
        self,
        spool: Spool,
        state: State,
        *,
        min_free_bytes: int = 0,
        sent_tag: SentTag | None = None,
        source: str = "push",
        on_stored: Callable[[str, str], None] | None = None,
        calling_ae: str = "",
    ) -> None:
        self.spool = spool
        # the scanner recorded for each instance: the association's calling AE title, or
        # this one (the pull side records its peer, also for C-GET where we are the caller)
        self.calling_ae = calling_ae
        self.state = state
        self.min_free_bytes = min_free_bytes
        self.sent_tag = sent_tag or SentTag()
        self.source = source
        self.on_stored = on_stored
        self._server: GatedServer | None = None
        self.ae: dimse.AE | None = None
        self.committer = Committer(state)  # group commit (fwagent.durable)
        self._swept = 0.0

    @property
    def port(self) -> int | None:
        if self._server is None:
            return None
        return int(self._server.server_address[1])

    def start(
        self,
        ae_title: str,
        host: str,
        port: int,
        tls: TlsConfig | None = None,
        allowed_calling_aets: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_associations_per_host: int = 10,
    ) -> None:
        # any storage SOP class, private ones included, as storage (process-wide)
        dimse.allow_unrestricted_storage()
        chunked.enable()  # datasets stream to a file, never whole in memory
        ae = dimse.AE(ae_title=ae_title)
        ae.maximum_pdu_size = pdu.MAX_PDU  # bounded, and enforced (fwagent.pdu)
        ae.network_timeout = 120
        ae.dimse_timeout = 120
        ae.acse_timeout = 30
        ae.maximum_associations = 50
        for storage_class in dimse.storage_sop_classes():
            ae.add_supported_context(storage_class, dimse.ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(dimse.Verification, dimse.ALL_TRANSFER_SYNTAXES)
        ae.require_calling_aet = [a for a in allowed_calling_aets if a]
        handlers: list[Any] = [
            (dimse.evt.EVT_CONN_OPEN, dimse.on_open_fast),  # Nagle off, shorter idle sleeps
            (dimse.evt.EVT_CONN_OPEN, pdu.on_open_guard),  # no PDU over our maximum
            (dimse.evt.EVT_CONN_CLOSE, self._on_conn_close),
            self.store_handler(),
            (dimse.evt.EVT_C_ECHO, self._on_echo),
            (dimse.evt.EVT_REJECTED, self._on_rejected),
        ]
        ssl_context = server_ssl_context(tls) if tls is not None and tls.enabled else None
        server = dimse.serve(
            ae,
            (host, port),
            GatedServer,
            evt_handlers=handlers,
            ssl_context=ssl_context,
            name=f"scp-{ae_title}-{port}",
            allowed_hosts=frozenset(h for h in allowed_hosts if h),
            max_per_host=max(1, int(max_associations_per_host)),
        )
        self.ae = ae
        self._server = server
        log.info(
            "storage SCP %s listening on %s:%s%s", ae_title, host, self.port,
            " (TLS)" if ssl_context else "",
        )  # fmt: skip

    def stop(self) -> None:
        if self.ae is not None:
            dimse.stop(self.ae, self._server)  # aborts open associations, closes the socket
            self.ae = None
        self._server = None
        self.committer.stop()

    def store_handler(self) -> tuple[Any, Callable[[dimse.Event], int]]:
        """The (EVT_C_STORE, handler) pair storing into this SCP's spool: the pull side's
        C-GET association hands its incoming C-STOREs to it."""
        return (dimse.evt.EVT_C_STORE, self._on_store)

    # ---- handlers --------------------------------------------------------------------

    def _on_echo(self, event: dimse.Event) -> int:
        return SUCCESS

    def _on_conn_close(self, event: dimse.Event) -> None:
        """Now and then: partial received files of associations that broke off."""
        now = time.monotonic()
        if now - self._swept > 60:
            self._swept = now
            chunked.sweep_stale(self.spool.tmp)

    def _on_rejected(self, event: dimse.Event) -> None:
        calling = event.assoc.requestor.ae_title
        answer = event.assoc.acceptor.primitive
        why = (getattr(answer, "result_source", None), getattr(answer, "diagnostic", None))
        if why == (0x01, 0x03):
            reason, text = "ae_title", "calling AE title not in allowed_calling_aets"
        elif why == (0x01, 0x07):
            reason, text = "called_ae", "called AE title is not ours"
        elif why == (0x03, 0x02):
            reason, text = "limit", "too many associations open (local limit exceeded)"
        else:
            reason, text = "other", f"result source {why[0]}, diagnostic {why[1]}"
        log.warning("rejected association from AE %r: %s", calling, text)
        metrics.REFUSED.labels(reason=reason).inc()

    def _on_store(self, event: dimse.Event) -> int:
        try:
            return self._store(event)
        except Exception as exc:  # never let one instance kill the association
            log.exception("C-STORE failed: %s", exc)
            metrics.RECEIVE_ERRORS.inc()
            return OUT_OF_RESOURCES

    def _store(self, event: dimse.Event) -> int:
        if self.min_free_bytes and self.spool.free_bytes() < self.min_free_bytes:
            log.error("spool below its free-space floor: answering Out of Resources")
            metrics.RECEIVE_ERRORS.inc()
            return OUT_OF_RESOURCES
        request = cast(dimse.C_STORE, event.request)
        received = Received(
            transfer_syntax=str(event.context.transfer_syntax),
            command_class=str(request.AffectedSOPClassUID or "").strip(),
            command_instance=str(request.AffectedSOPInstanceUID or "").strip(),
            context_class=str(event.context.abstract_syntax or "").strip(),
            calling=event.assoc.requestor.ae_title,
        )
        # the dataset as it arrived, in a file in spool/tmp (fwagent.chunked)
        received.path = chunked.received_file(event, self.spool.tmp, received.file_meta())
        try:
            return self._store_file(received)
        finally:
            if received.path is not None:  # not renamed into the spool: never acknowledged
                received.path.unlink(missing_ok=True)

    def _store_file(self, received: Received) -> int:
        path = cast(Path, received.path)
        deflated = UID(received.transfer_syntax).is_deflated
        reason: str | None = None
        try:
            with open(path, "rb") as fh:
                received.offset, *received.meta_uids = chunked.read_meta(fh)
            received.size = path.stat().st_size - received.offset
            if deflated:  # inflated to a scratch file, never in memory
                scratch = self.spool.temp_path()
                try:
                    reason = chunked.inflate(path, received.offset, scratch)
                    if reason:
                        return self._quarantine(received, reason)
                    header = chunked.read_deflated_header(scratch)
                    reason = incomplete_file(scratch, 0, ExplicitVRLittleEndian)
                finally:
                    scratch.unlink(missing_ok=True)
            else:
                header = chunked.read_header(path, received.offset, received.transfer_syntax)
        except Exception as exc:  # noqa: BLE001 - any parse failure means quarantine
            return self._quarantine(received, f"unreadable dataset: {exc}")
        received.read_uids(header)
        if not deflated:
            reason = incomplete_file(path, received.offset, received.transfer_syntax)
        reason = reason or received.missing_uids()
        if reason:
            return self._quarantine(received, reason)
        if self._is_sent(header):
            self.state.bump("dropped_sent_by_flywheel")
            metrics.DROPPED.inc()
            log.info("dropped %s: carries the dicom-send tag (no re-ingest)", received.sop_uid)
            return SUCCESS
        status = received.check_command()
        self._own_meta(received)
        dest = self.spool.instance_path(received.series_uid, received.sop_uid)
        scanner = self.calling_ae or received.calling
        acq_uid, description = acquisition_key(header), series_description(header)
        # durable before 0x0000: file fsynced, renamed, its folder fsynced and the row
        # committed (the last two shared with concurrent associations: fwagent.durable)
        ready = cast(Path, received.path)
        fsync_file(ready)
        os.replace(ready, dest)
        received.path = None
        previous = self.committer.commit(
            dest.parent,
            lambda: self.state.record_instance(
                received.sop_uid,
                received.series_uid,
                received.study_uid,
                dest,
                received.size,
                calling_aet=scanner,
                source=self.source,
                acq_uid=acq_uid,
                description=description,
            ),
        )
        if previous:
            self.spool.remove([previous])
        metrics.RECEIVED.labels(source=self.source, calling_ae=metrics.scanner(scanner)).inc()
        if self.on_stored is not None:
            self.on_stored(received.series_uid, received.sop_uid)
        return status

    def _own_meta(self, received: Received) -> None:
        """File Meta from the dataset's own SOP Class/Instance UIDs: rewrite the file when
        the one it has (built from the command) says otherwise (rare: a streamed copy)."""
        path = cast(Path, received.path)
        meta_class, meta_instance = received.meta_uids
        if (meta_class, meta_instance) == (
            received.sop_class or meta_class,
            received.sop_uid or meta_instance,
        ):
            return
        fixed = self.spool.temp_path()
        chunked.replace_meta(path, received.offset, received.file_meta(), fixed)
        path.unlink(missing_ok=True)
        received.path = fixed
        received.offset = len(received.file_meta())

    def _is_sent(self, header: Dataset) -> bool:
        return is_sent_by_flywheel(header, self.sent_tag)

    def _quarantine(self, received: Received, reason: str) -> int:
        sop_uid = received.sop_uid or received.command_instance
        dest = self.spool.quarantine_path(sop_uid)
        os.replace(cast(Path, received.path), dest)
        received.path = None
        self.state.quarantine(dest, reason, series_uid=received.series_uid, sop_uid=sop_uid)
        metrics.QUARANTINED.inc()
        metrics.RECEIVE_ERRORS.inc()
        log.warning(
            "quarantined %s from AE %r (answered 0xC000): %s", dest.name, received.calling, reason
        )
        return CANNOT_UNDERSTAND


class Received:
    """One C-STORE: the file holding its dataset and what the command and the dataset
    say it is."""

    def __init__(
        self,
        transfer_syntax: str,
        command_class: str,
        command_instance: str,
        context_class: str,
        calling: str,
    ) -> None:
        self.path: Path | None = None  # the file in spool/tmp until renamed into the spool
        self.offset = 0  # where the dataset starts in it
        self.meta_uids = ["", ""]  # SOP Class and Instance UIDs its File Meta names
        self.size = 0  # the dataset's bytes
        self.transfer_syntax = transfer_syntax
        self.command_class = command_class
        self.command_instance = command_instance
        self.context_class = context_class
        self.calling = calling
        self.sop_class = ""
        self.sop_uid = ""
        self.series_uid = ""
        self.study_uid = ""

    def read_uids(self, header: Dataset) -> None:
        self.sop_class = header_text(header, "SOPClassUID")
        self.sop_uid = header_text(header, "SOPInstanceUID")
        self.series_uid = header_text(header, "SeriesInstanceUID")
        self.study_uid = header_text(header, "StudyInstanceUID")

    def missing_uids(self) -> str | None:
        """Why this dataset cannot be placed in Flywheel (refused at receive, so nothing
        acknowledged can fail forever later), or None."""
        missing = [
            keyword
            for keyword, value in (
                ("SOPInstanceUID", self.sop_uid),
                ("SeriesInstanceUID", self.series_uid),
                ("StudyInstanceUID", self.study_uid),
            )
            if not value
        ]
        if missing:
            return f"no {' or '.join(missing)}: cannot be placed in Flywheel"
        return None

    def check_command(self) -> int:
        """0xB007 (stored, with a warning) if the dataset's SOP class is not the one the
        command or the presentation context named; a differing SOP instance is logged."""
        status = SUCCESS
        named = {self.command_class, self.context_class} - {""}
        if self.sop_class and named and named != {self.sop_class}:
            log.warning(
                "C-STORE from AE %r: dataset SOP class %s, command/context %s: stored as the"
                " dataset says, answered 0xB007",
                self.calling, self.sop_class, " / ".join(sorted(named)),
            )  # fmt: skip
            status = DOES_NOT_MATCH_SOP_CLASS
        if self.command_instance and self.command_instance != self.sop_uid:
            log.warning(
                "C-STORE from AE %r: dataset SOP instance %s, command %s: stored as %s",
                self.calling, self.sop_uid, self.command_instance, self.sop_uid,
            )  # fmt: skip
        return status

    def file_meta(self) -> bytes:
        """File Meta from the dataset's own UIDs (the command's where the dataset has none)."""
        return encode_file_meta(
            self.sop_class or self.command_class,
            self.sop_uid or self.command_instance,
            self.transfer_syntax,
            self.calling,
        )
