"""dicom-send: send a file/archive, or every DICOM file of the destination, to a DICOM peer.

One report row per file/archive; exit 0 only if every DICOM image was sent.

Files flow through a pipeline: a preparing thread downloads (session mode), unpacks, reads
each file once and tags it, while the main thread sends the previous one; a bounded queue
between them keeps memory flat on large sessions. One file that cannot be read, tagged
or sent is skipped with one log line naming it and the reason; everything else is sent,
and the report is always written.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwmapping import inside

from gears.common.report import report_name, write_report
from gears.runtime import EXIT_CONFIG, EXIT_FAILED

from . import config as settings
from . import inputs, session, tls
from .sender import Peer, PeerError, Sender, echo
from .tagging import NotSendable, Prepared, prepare

log = logging.getLogger(__name__)

GEAR = "dicom-send"
COLUMNS = ["Acquisition ID", "FW Path", "Filename", "Images in Series", "Images Sent", "Status"]
QUEUE_SIZE = 8  # prepared instances waiting to be sent (memory stays flat)
# Three threads hand each instance on (prepare -> send -> pynetdicom's network thread);
# with Python's default 5 ms switch interval a thread with work can wait that long for
# the interpreter while another computes. Shorter turns while the pipeline runs.
SWITCH_INTERVAL = 0.0005


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


@dataclass
class Source:
    """One input of one report row: a local file, or a remote one ``fetch`` downloads."""

    row: Row
    path: Path | None = None
    fetch: Callable[[Path], Path] | None = None


@dataclass
class Job:
    row: Row
    item: Prepared


_DONE = object()


class Pipeline:
    """Prepare (download, unpack, read once, tag) in a thread; send in the caller's."""

    def __init__(
        self, work: Path, cfg: settings.SendConfig, sender: Sender, peer_error: str | None
    ):
        self.work = work
        self.cfg = cfg
        self.sender = sender
        self.peer_error = peer_error
        self.jobs: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_SIZE)
        self.stop = threading.Event()

    def run(self, sources: list[Source]) -> None:
        producer = threading.Thread(target=self._produce, args=(sources,), name="prepare")
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        producer.start()
        try:
            self._consume()
        finally:
            sys.setswitchinterval(switch)
            self.stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    self._release(self.jobs.get(timeout=0.1))
            producer.join()
            self.sender.close()

    # -- sending (caller's thread) ---------------------------------------------------------

    def _consume(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:  # waiting for the next file: the association is watched
                self.sender.idle()
                job = self.jobs.get()
            if job is _DONE:
                return
            try:
                reason = self.peer_error or self.sender.send(job.item)
            except Exception as exc:  # one instance's trouble never stops the others
                log.debug("sending %s failed", job.item.name, exc_info=True)
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                job.item.release()
            if reason is None:
                job.row.sent += 1
            elif reason not in (self.peer_error, self.sender.down):
                log.error("%s: not sent: %s", job.item.name, reason)

    @staticmethod
    def _release(job: Any) -> None:
        if isinstance(job, Job):
            job.item.release()

    # -- preparing (its own thread) --------------------------------------------------------

    def _put(self, job: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.jobs.put(job, timeout=0.2)
                return True
            except queue.Full:
                continue
        self._release(job)
        return False

    def _produce(self, sources: list[Source]) -> None:
        try:
            for index, source in enumerate(sources):
                if self.stop.is_set():
                    break
                folder = inside(self.work, f"item-{index:06d}")
                try:
                    self._produce_one(source, folder, index)
                except Exception as exc:  # never a traceback, never the whole run
                    log.debug("preparing %s failed", source.row.filename, exc_info=True)
                    log.error("%s: not sent: %s: %s", source.row.filename, type(exc).__name__, exc)
                    source.row.images += 1
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            while not self.stop.is_set():
                try:
                    self.jobs.put(_DONE, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _produce_one(self, source: Source, folder: Path, index: int) -> None:
        row = source.row
        if source.fetch is not None:
            down = self.peer_error or self.sender.down
            if down:  # nothing would go out: do not download, keep the site's image count
                return
            try:
                local = source.fetch(inside(folder, "download"))
            except Exception as exc:
                log.error("%s: download failed: %s", row.filename, exc)
                return
        else:
            assert source.path is not None
            local = source.path
        row.images = 0
        ignored = 0
        problems = 0
        refused = False
        try:
            members = inputs.members(local, inside(folder, "members"), row.filename)
            for number, member in enumerate(members):
                if member.error:
                    problems += 1
                    log.error("%s: not sent: %s", member.name, member.error)
                    continue
                data = member.data if member.data is not None else member.path
                assert data is not None
                spill = inside(self.work, "tagged", f"{index:06d}-{number:06d}.dcm")
                try:
                    item = prepare(data, member.name, self.cfg.sent_tag, spill)
                except NotSendable as exc:
                    problems += 1
                    log.error("%s: not sent: %s", member.name, exc)
                    continue
                except Exception as exc:  # a file pydicom cannot read or write as it is
                    log.debug("preparing %s failed", member.name, exc_info=True)
                    problems += 1
                    log.error("%s: not sent: cannot be read or tagged: %s", member.name, exc)
                    continue
                finally:
                    member.discard(keep=source.path)
                if item is None:
                    ignored += 1
                    continue
                row.images += 1
                if not self._put(Job(row, item)):
                    return
        except inputs.ArchiveError as exc:
            refused = True
            log.error("%s", exc)
            if row.images:  # refused half-way (a member lied about its size)
                problems += 1
        row.images += problems
        if ignored:
            log.info("%s: %d non-DICOM file(s) ignored", row.filename, ignored)
        if not row.images and not refused:
            log.error("%s contains no DICOM file: nothing to send", row.filename)


def _sources_for_file(
    context: Any, client: Any
) -> tuple[list[Source], list[str | None], str | None]:
    config = context.config
    path = Path(config.get_input_path("file"))
    name = config.get_input_filename("file") or path.name
    hierarchy = config.get_input("file").get("hierarchy") or {}
    row = Row(
        str(hierarchy.get("id") or "") if hierarchy.get("type") == "acquisition" else "",
        name,
        name,
    )
    labels: list[str | None] = []
    attach_to = None
    if client is not None and hierarchy.get("id") and hierarchy.get("type"):
        try:
            scope = session.scope_of(client, hierarchy["type"], hierarchy["id"])
            labels, attach_to, base = _where(scope)
            row.fw_path = f"{base}/files/{name}"
        except Exception as exc:  # the report still works without labels
            log.warning("cannot look up where %s lives in Flywheel: %s", name, exc)
    return [Source(row, path=path)], labels or [Path(name).stem], attach_to


def _sources_for_destination(
    client: Any, destination: dict[str, Any], cfg: settings.SendConfig
) -> tuple[list[Source], list[str | None], str | None]:
    scope = session.scope_of(client, destination.get("type", ""), destination.get("id", ""))
    labels, attach_to, _ = _where(scope)
    remotes = session.dicom_files(scope, client)
    if not remotes:
        log.error("no DICOM file in %s %s: nothing to send", scope.type, scope.label)
    sources = []
    for remote in remotes:
        row = Row(remote.acquisition_id, remote.fw_path, remote.name, images=remote.images)

        def fetch(dest: Path, remote: session.RemoteFile = remote) -> Path:
            return session.download(client, remote, dest, cfg.file_download_retry_time)

        sources.append(Source(row, fetch=fetch))
    return sources, labels, attach_to


def run(context: Any) -> int:
    from fwmapping import dimse

    dimse.quiet_library_log(logging.CRITICAL)  # our log says what matters
    logging.getLogger("pydicom").setLevel(logging.ERROR)  # odd files: our one line per file
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
    config = context.config
    try:
        cfg = settings.load(config.opts, config.get_input_path)
        ssl_context = tls.client_context(cfg.tls) if cfg.tls.enabled else None
    except settings.ConfigError as exc:
        log.error("configuration: %s", exc)
        return EXIT_CONFIG
    client = context.client
    if not config.get_input("file") and client is None:
        log.error("no file input and no api-key input: cannot list the destination's files")
        return EXIT_CONFIG
    peer = Peer(cfg.destination, cfg.port, cfg.called_ae, cfg.calling_ae, ssl_context)
    work = Path(context.work_dir) / "dicom-send"

    peer_error = None
    try:
        echo(peer)
    except PeerError as exc:
        peer_error = str(exc)
        log.error("%s", peer_error)

    unusable = False  # a destination the gear cannot work with: EXIT_CONFIG
    if config.get_input("file"):
        sources, labels, attach_to = _sources_for_file(context, client)
    else:
        destination = config.destination or {}
        try:
            sources, labels, attach_to = _sources_for_destination(client, destination, cfg)
        except Exception as exc:
            unusable = isinstance(exc, ValueError) or getattr(exc, "status", None) == 404
            log.error("cannot list the destination %s: %s", destination, exc)
            sources, labels, attach_to = [], [str(destination.get("id") or "destination")], None

    sender = Sender(peer)
    try:
        Pipeline(work, cfg, sender, peer_error).run(sources)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [source.row for source in sources]
    for version, cipher in sorted(set(sender.tls)):
        log.info("TLS: %s, %s", version, cipher)
    for row in rows:
        log.info("%s: %d of %d image(s) sent", row.filename, row.sent, row.images)
    if sender.associations:
        log.info("%d association(s) with %s", sender.associations, peer.describe())

    written = _report(context, labels, rows, client, attach_to)
    if unusable:
        return EXIT_CONFIG
    complete = bool(rows) and all(status_of(r.images, r.sent) == "Complete" for r in rows)
    total = sum(r.images for r in rows)
    sent = sum(r.sent for r in rows)
    if complete and written:
        log.info("all %d image(s) sent to %s", sent, peer.describe())
        return 0
    if complete:
        return EXIT_FAILED
    log.error("%d of %d image(s) sent to %s: not everything was sent", sent, total, peer.describe())
    return EXIT_FAILED


def _report(
    context: Any, labels: list[str | None], rows: list[Row], client: Any, attach_to: str | None
) -> bool:
    """Write (and attach) the report; False only when it could not be written at all."""
    output = Path(context.output_dir)
    report = [row.as_dict() for row in rows]
    name = report_name(GEAR, labels)
    try:
        write_report(output, name, COLUMNS, report, client, attach_to)
        return True
    except Exception as exc:
        if (output / name).is_file():  # written; attaching it failed: said, not fatal
            log.error("report %s written but not attached to %s: %s", name, attach_to, exc)
            return True
        log.error("report %s could not be written: %s", name, exc)
    fallback = report_name(GEAR, [])
    try:
        write_report(output, fallback, COLUMNS, report)
        log.warning("report written as %s instead", fallback)
        return True
    except Exception as exc:
        log.error("report %s could not be written either: %s", fallback, exc)
        return False


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
