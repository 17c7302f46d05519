"""dicom-send: send a file/archive, or every DICOM file of the destination, to a DICOM peer.

One report row per file/archive; exit 0 only if every DICOM image was sent.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gears.common.report import report_name, write_report

from . import config as settings
from . import inputs, session, tls
from .sender import Peer, PeerError, Sender, echo
from .tagging import NotSendable, TaggedFile, is_dicom, tag_copy

log = logging.getLogger(__name__)

GEAR = "dicom-send"
COLUMNS = ["Acquisition ID", "FW Path", "Filename", "Images in Series", "Images Sent", "Status"]


def status_of(images: int, sent: int) -> str:
    if images > 0 and sent >= images:
        return "Complete"
    return "Failed" if sent == 0 else "Incomplete"


@dataclass
class Row:
    acquisition_id: str
    fw_path: str
    filename: str
    images: int = 0
    sent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "Acquisition ID": self.acquisition_id,
            "FW Path": self.fw_path,
            "Filename": self.filename,
            "Images in Series": self.images,
            "Images Sent": self.sent,
            "Status": status_of(self.images, self.sent),
        }


def prepare(
    path: Path, name: str, work: Path, cfg: settings.SendConfig
) -> tuple[list[TaggedFile], int]:
    """Unpack ``path`` and write tagged copies; return them and the count of unsendable DICOM.

    Raises ValueError when the input is refused or holds no DICOM at all.
    """
    unpacked = inputs.unpack(path, work / "extract", name)
    if unpacked.error:
        raise ValueError(unpacked.error)
    tagged: list[TaggedFile] = []
    ignored = 0
    unsendable = 0
    for index, candidate in enumerate(unpacked.files):
        member = unpacked.member_names.get(candidate, candidate.name)
        if not is_dicom(candidate):
            ignored += 1
            continue
        try:
            tagged.append(
                tag_copy(candidate, work / "tagged" / f"{index:06d}.dcm", cfg.sent_tag, member)
            )
        except (NotSendable, OSError, ValueError) as exc:
            unsendable += 1
            log.error("%s: cannot be prepared for sending: %s", member, exc)
        if candidate != path:
            candidate.unlink(missing_ok=True)  # the extracted member is no longer needed
    if ignored:
        log.info("%s: %d non-DICOM file(s) ignored", name, ignored)
    if not tagged and not unsendable:
        raise ValueError(f"{name} contains no DICOM file: nothing to send")
    return tagged, unsendable


def send_one(
    path: Path, row: Row, work: Path, cfg: settings.SendConfig, peer: Peer, peer_error: str | None
) -> None:
    """Prepare and send one file/archive, filling ``row``; the work area is emptied after."""
    try:
        tagged, unsendable = prepare(path, row.filename, work, cfg)
        row.images = len(tagged) + unsendable
        if peer_error:
            log.error("%s: not sent: %s", row.filename, peer_error)
            return
        result = Sender(peer, work / "converted").send(tagged)
        row.sent = len(result.sent)
        for version, cipher in sorted(set(result.tls)):
            log.info("TLS: %s, %s", version, cipher)
        log.info(
            "%s: %d of %d image(s) sent in %d association(s)",
            row.filename,
            row.sent,
            row.images,
            result.associations,
        )
    except ValueError as exc:
        log.error("%s", exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(context: Any) -> int:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # our log says what matters
    config = context.config
    try:
        cfg = settings.load(config.opts, config.get_input_path)
        ssl_context = tls.client_context(cfg.tls) if cfg.tls.enabled else None
    except settings.ConfigError as exc:
        log.error("configuration: %s", exc)
        return 1
    peer = Peer(cfg.destination, cfg.port, cfg.called_ae, cfg.calling_ae, ssl_context)
    client = context.client
    destination = config.destination or {}
    work_root = Path(context.work_dir)

    peer_error = None
    try:
        echo(peer)
    except PeerError as exc:
        peer_error = str(exc)
        log.error("%s", peer_error)

    rows: list[Row] = []
    labels: list[str | None] = []
    attach_to: str | None = None
    file_input = config.get_input("file")
    if file_input:
        path = Path(config.get_input_path("file"))
        name = config.get_input_filename("file") or path.name
        hierarchy = file_input.get("hierarchy") or {}
        row = Row(
            str(hierarchy.get("id") or "") if hierarchy.get("type") == "acquisition" else "",
            name,
            name,
        )
        if client is not None and hierarchy.get("id") and hierarchy.get("type"):
            try:
                scope = session.scope_of(client, hierarchy["type"], hierarchy["id"])
                labels, attach_to, base = _where(scope)
                row.fw_path = f"{base}/files/{name}"
            except Exception as exc:  # the report still works without labels
                log.warning("cannot look up where %s lives in Flywheel: %s", name, exc)
        if not labels:
            labels = [Path(name).stem]
        send_one(path, row, work_root / "item", cfg, peer, peer_error)
        rows.append(row)
    else:
        if client is None:
            log.error("no file input and no api-key input: cannot list the destination's files")
            return 1
        try:
            scope = session.scope_of(client, destination.get("type", ""), destination.get("id", ""))
        except Exception as exc:
            log.error("cannot list the destination %s: %s", destination, exc)
            return 1
        labels, attach_to, _ = _where(scope)
        remotes = session.dicom_files(scope)
        if not remotes:
            log.error("no DICOM file in %s %s: nothing to send", scope.type, scope.label)
        for remote in remotes:
            row = Row(remote.acquisition_id, remote.fw_path, remote.name, images=remote.images)
            rows.append(row)
            if peer_error:
                log.error("%s: not sent: %s", remote.name, peer_error)
                continue
            work = work_root / "item"
            try:
                local = session.download(
                    client, remote, work / "download" / remote.name, cfg.file_download_retry_time
                )
            except Exception as exc:
                log.error("%s: download failed: %s", remote.name, exc)
                shutil.rmtree(work, ignore_errors=True)
                continue
            row.images = 0
            send_one(local, row, work, cfg, peer, None)

    name = report_name(GEAR, labels)
    report = [row.as_dict() for row in rows]
    try:
        write_report(context.output_dir, name, COLUMNS, report, client, attach_to)
    except Exception as exc:  # the report is in output/; a failed attach is said, not fatal
        log.error("report %s not written or not attached to %s: %s", name, attach_to, exc)
    complete = bool(rows) and all(status_of(r.images, r.sent) == "Complete" for r in rows)
    total = sum(r.images for r in rows)
    sent = sum(r.sent for r in rows)
    if complete:
        log.info("all %d image(s) sent to %s", sent, peer.describe())
        return 0
    log.error("%d of %d image(s) sent to %s: not everything was sent", sent, total, peer.describe())
    return 1


def _where(scope: Any) -> tuple[list[str | None], str | None, str]:
    """Report labels, the session to attach the report to, and the container's FW path."""
    if scope.type == "acquisition" and scope.acquisitions:
        acquisition = scope.acquisitions[0]
        return (
            [acquisition.session.label, acquisition.label],
            acquisition.session.id,
            acquisition.fw_path,
        )
    if scope.type == "session" and scope.sessions:
        one = scope.sessions[0]
        return [one.label], one.id, one.fw_path
    return [scope.label], (scope.sessions[0].id if len(scope.sessions) == 1 else None), scope.label
