"""Series completion -> map -> policy -> placement -> package -> upload -> mark done -> free.

The PULL side reuses it: instances its C-MOVE/C-GET brings in land through
:class:`fwagent.receiver.StorageSCP` (``source="pull"``) in the same spool and state; then
either call ``state.mark_complete(series_uid)`` and ``pipeline.wake()`` (the sweeper picks it
up at once), or ``pipeline.process_series(series_uid)`` to do it synchronously (it returns
the final state: ``uploaded``, ``opted_out``, ``failed``, ...). Untouched, a series is
taken after ``push.series_quiet_seconds`` without new instances.

Nothing is removed from the spool before Flywheel confirmed the upload. A failed upload
parks its series as ``failed`` with the reason and its own next attempt (jittered exponential
backoff, then every ``flywheel.failed_retry_seconds``: see :mod:`fwagent.retry`); a sweep
makes one attempt per due series, in a few upload workers, so one failing or slow series
never holds the others, and a series is never dropped.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from fwmapping import (
    FOLLOWED,
    NotDicomError,
    acquisition_uid,
    header_info,
    map_dataset,
    policy_allows,
    read_header,
)
from fwmapping.flywheel_errors import describe, is_permanent
from fwmapping.paths import inside

from . import metrics
from .config import AgentConfig
from .deid.mapping import map_deidentified
from .deid.service import Deidentifier, DeidError
from .package import zip_name, zip_series
from .retry import next_retry
from .spool import Spool
from .state import (
    ABANDONED,
    FAILED,
    OPTED_OUT,
    UPLOADED,
    InstanceRow,
    SeriesRow,
    State,
)
from .upload import (
    acquisition_id,
    earlier_members,
    find_acquisition,
    make_client,
    resolve,
    upload_acquisition,
    where,
)

log = logging.getLogger("fwagent.pipeline")

# series uploaded at once: a slow or hanging upload (up to the SDK's 60 s timeouts per
# request) holds one worker, not the queue
WORKERS = 4


class Pipeline:
    def __init__(
        self,
        config: AgentConfig,
        state: State,
        spool: Spool,
        client_factory: Callable[[], Any] | None = None,
        deid: Deidentifier | None = None,
    ) -> None:
        self.config = config
        self.deid = deid  # with a de-id profile: package and map de-identified copies
        self.state = state
        self.spool = spool
        self.mapping = config.mapping_config()
        self._client_factory = client_factory or (lambda: make_client(config.flywheel.api_key))
        self._client: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self._busy: set[str] = set()  # studies with a series in a worker
        self._busy_lock = threading.Lock()
        # series counted in fwagent_failed_uploads_total since they last left "failed": a
        # series parked again and again is one failed series, not one per long wait
        self._counted_failed: set[str] = set()

    # ---- sweeper ---------------------------------------------------------------------

    def start(self, interval: float = 0.2) -> None:
        self._stop.clear()
        self._busy.clear()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="upload")
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.name = "pipeline"
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:  # uploads in flight finish (bounded), queued ones wait
            self._pool.shutdown(wait=False, cancel_futures=True)
            with self._busy_lock:
                pending = list(self._futures)
            futures_wait(pending, max(0.0, deadline - time.monotonic()))
            self._pool = None

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the loop alive whatever happens
                log.exception("pipeline sweep failed")
            self._wake.wait(interval)
            self._wake.clear()

    def wake(self, series_uid: str | None = None) -> None:
        """Sweep now instead of at the next interval (e.g. a PULL retrieve completed)."""
        self._wake.set()

    def run_once(self) -> int:
        """One attempt for each series that is due: in the upload workers once started
        (series of one study one after the other: they share a session), else here, in
        turn. Returns how many were taken on."""
        due = self.state.due_series(self.config.push.series_quiet_seconds)
        metrics.QUEUE_DEPTH.set(self.state.queue_depth())
        taken = 0
        for series_uid in due:
            if self._stop.is_set():
                break
            if self._pool is None:
                self.process_series(series_uid, self.config.push.series_quiet_seconds)
            elif not self._hand_over(series_uid):
                continue
            taken += 1
        return taken

    def _hand_over(self, series_uid: str) -> bool:
        """Give the series to a free upload worker; False if none is free or a series of
        its study is already in one."""
        row = self.state.series(series_uid)
        study = (row.study_uid if row else "") or series_uid
        with self._busy_lock:
            if self._pool is None or study in self._busy or len(self._busy) >= WORKERS:
                return False
            self._busy.add(study)
            future = self._pool.submit(self._work, series_uid, study)
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return True

    def _forget(self, future: Future[None]) -> None:
        with self._busy_lock:
            self._futures.discard(future)

    def _work(self, series_uid: str, study: str) -> None:
        try:
            self.process_series(series_uid, self.config.push.series_quiet_seconds)
        except Exception:  # process_series parks failures itself; this is a last guard
            log.exception("series %s: upload worker failed", series_uid)
        finally:
            with self._busy_lock:
                self._busy.discard(study)
            self._wake.set()  # the next series of the study need not wait for the interval

    # ---- one series ------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def process_series(self, series_uid: str, quiet_seconds: float | None = None) -> str:
        """Judge and upload one series now; return its state afterwards. Claiming it is
        atomic in the state (a lease: see :meth:`State.claim`), so a series is never
        processed twice at once, by this process or another replica. With
        ``quiet_seconds`` (the sweeper), only if it is still due when claimed."""
        claimed = self.state.claim(series_uid, quiet_seconds)
        if claimed is None:
            row = self.state.series(series_uid)
            return row.state if row else ""
        claimed_at, instances = claimed
        started = time.monotonic()
        try:
            with self.state.holding(series_uid):  # renew the lease while we work
                return self._process(series_uid, claimed_at, instances, started)
        except Exception as exc:  # anything unexpected parks it as failed, never lost
            log.exception("series %s: unexpected error", series_uid)
            self._fail(series_uid, claimed_at, exc)
            return FAILED
        finally:
            shutil.rmtree(self.spool.work_dir(series_uid), ignore_errors=True)

    def _process(
        self, series_uid: str, claimed_at: float, instances: list[InstanceRow], started: float
    ) -> str:

        previous = self.state.series(series_uid)
        was_uploaded = previous is not None and previous.uploaded_count > 0
        groups: dict[str, list[InstanceRow]] = {}
        headers: dict[str, Any] = {}
        good: list[InstanceRow] = []
        for inst in instances:
            key = inst.acq_uid
            if key and key in headers:
                groups[key].append(inst)
                good.append(inst)
                continue
            try:
                ds = read_header(inst.path)
            except NotDicomError as exc:
                self._quarantine(inst, str(exc))
                continue
            except OSError as exc:
                self._quarantine(inst, f"cannot read spooled file: {exc}")
                continue
            if not str(ds.get("StudyInstanceUID", "") or "").strip():  # spooled before 18.3
                self._quarantine(inst, "no StudyInstanceUID: cannot be placed in Flywheel")
                continue
            if not key:
                key = acquisition_uid(ds)
            headers.setdefault(key, ds)
            groups.setdefault(key, []).append(inst)
            good.append(inst)
        if not good:
            final = UPLOADED if was_uploaded else ABANDONED
            self._finish(series_uid, final, claimed_at, [], error="no readable instances")
            log.warning("series %s: nothing left to upload (all instances quarantined)", series_uid)
            return final
        first = next(iter(headers.values()))
        if not policy_allows(first, self.mapping):
            removed = self._finish(series_uid, OPTED_OUT, claimed_at, good, placement="opted_out")
            self._free(removed)
            self.state.bump("opted_out_series")
            metrics.OPTED_OUT.labels(calling_ae=_scanner(previous)).inc()
            self._counted_failed.discard(series_uid)
            log.info("series %s: opted out by policy (%d instances deleted)", series_uid, len(good))
            return OPTED_OUT

        try:
            sources = self._sources(groups, headers)
        except DeidError as exc:  # nothing of the series is uploaded
            self._fail(series_uid, claimed_at, exc)
            return FAILED
        destinations = []
        placement = ""
        for key, (paths, header) in sources.items():
            if header is headers[key]:
                metadata = map_dataset(header, self.mapping)
            else:
                metadata = map_deidentified(headers[key], header, self.mapping)
            try:
                placed, dest = self._upload_once(series_uid, metadata, paths, header, was_uploaded)
            except Exception as exc:
                self._fail(series_uid, claimed_at, exc)
                return FAILED
            placement = placed["routing"].get("resolved", "")
            if placement == FOLLOWED:  # where the session is now, not what the string said
                placement = "existing session followed"
            destinations.append(dest)
        removed = self._finish(
            series_uid,
            UPLOADED,
            claimed_at,
            good,
            placement=placement,
            destination="; ".join(destinations),
        )
        self._free(removed)
        elapsed = time.monotonic() - started
        metrics.UPLOAD_LATENCY.observe(elapsed)
        metrics.UPLOADED.labels(placement=placement, calling_ae=_scanner(previous)).inc()
        self._counted_failed.discard(series_uid)
        metrics.UPLOADED_INSTANCES.inc(len(good))
        log.info(
            "series %s: %d instances uploaded to %s (%s) in %.2fs",
            series_uid, len(good), "; ".join(destinations), placement, elapsed,
        )  # fmt: skip
        return UPLOADED

    def _sources(
        self, groups: dict[str, list[InstanceRow]], headers: dict[str, Any]
    ) -> dict[str, tuple[list[Path], Any]]:
        """What is packaged and mapped for each acquisition: the spooled instances and
        their header, or, with a de-id profile, the de-identified copies and their header
        (routing and policy read the original either way). Raises DeidError."""
        if self.deid is not None:
            return self.deid.sources(groups)
        return {
            key: ([Path(m.path) for m in members], headers[key]) for key, members in groups.items()
        }

    def _upload_once(
        self,
        series_uid: str,
        metadata: dict[str, Any],
        paths: list[Path],
        header: Any,
        was_uploaded: bool,
    ) -> tuple[dict[str, Any], str]:
        """One attempt (the caller parks the series with its backoff if it raises)."""
        try:
            client = self.client()
            placed = resolve(client, metadata)
        except Exception:
            self._client = None  # a fresh client next time (e.g. after an outage)
            raise
        work = self.spool.work_dir(series_uid)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        members = list(paths)
        if was_uploaded:
            members += self._earlier_members(
                client, series_uid, placed, work, {p.name for p in paths}
            )
        zip_path = zip_series(members, inside(work, zip_name(placed)))
        upload_acquisition(
            client, placed, zip_path, header_info(header, self.mapping), self.mapping
        )
        self._remember_acquisition(client, series_uid, placed)
        return placed, where(placed)

    def _remember_acquisition(self, client: Any, series_uid: str, placed: dict[str, Any]) -> None:
        """Record the acquisition this upload went to, so a late instance finds the earlier
        zip by id (a UID may hold the finder filter's own separators)."""
        try:
            found = acquisition_id(client, placed)
        except Exception as exc:  # noqa: BLE001 - the upload is done; the lookup can wait
            log.warning("series %s: cannot look up its acquisition: %s", series_uid, describe(exc))
            return
        if found:
            self.state.record_acquisition(series_uid, str(placed["acquisition"]["uid"]), found)

    def _earlier_members(
        self, client: Any, series_uid: str, placed: dict[str, Any], work: Path, have: set[str]
    ) -> list[Path]:
        """Instances of the zip uploaded before (a late instance re-uploads the whole
        series) that we do not hold a newer copy of: the acquisition by the id recorded
        then, else (spools from before that was recorded) by its uid."""
        acq_uid = str(placed["acquisition"]["uid"])
        row = self.state.series(series_uid)
        acquisition = find_acquisition(
            client, acq_uid, row.acquisition_ids().get(acq_uid) if row else None
        )
        if acquisition is None:
            return []
        return earlier_members(client, acquisition, zip_name(placed), work, have)

    # ---- bookkeeping -----------------------------------------------------------------

    def _finish(
        self,
        series_uid: str,
        final: str,
        claimed_at: float,
        done: list[InstanceRow],
        placement: str = "",
        destination: str = "",
        error: str = "",
    ) -> list[str]:
        _, removed = self.state.finish(
            series_uid,
            final,
            claimed_at,
            done,
            placement=placement,
            destination=destination,
            error=error,
        )
        if self.deid is not None:
            gone = set(removed)
            self.deid.forget(inst for inst in done if inst.path in gone)
        return removed

    def _fail(self, series_uid: str, claimed_at: float, exc: BaseException) -> None:
        """Park the series as failed with its reason until its own next attempt."""
        row = self.state.series(series_uid)
        failures = (row.attempts if row else 0) + 1  # consecutive, since its last new image
        reason = describe(exc)
        retry = next_retry(failures, self.config.flywheel, is_permanent(exc))
        self.state.finish(series_uid, FAILED, claimed_at, [], error=reason, retry_in=retry.delay)
        if retry.parked:
            if series_uid not in self._counted_failed:
                self._counted_failed.add(series_uid)
                metrics.FAILED.labels(calling_ae=_scanner(row)).inc()
            log.error(
                "series %s: upload failed (attempt %d), parked; next attempt in %.0fs: %s",
                series_uid, failures, retry.delay, reason,
            )  # fmt: skip
        else:
            log.warning(
                "series %s: upload attempt %d failed; next attempt in %.1fs: %s",
                series_uid, failures, retry.delay, reason,
            )  # fmt: skip

    def _quarantine(self, inst: InstanceRow, reason: str) -> None:
        dest = self.spool.to_quarantine(Path(inst.path), inst.sop_uid)
        self.state.quarantine(dest, reason, series_uid=inst.series_uid, sop_uid=inst.sop_uid)
        metrics.QUARANTINED.inc()
        log.warning("quarantined %s of series %s: %s", inst.sop_uid, inst.series_uid, reason)

    def _free(self, paths: list[str]) -> None:
        """Free uploaded files, except one a new copy of the same SOP instance (a
        duplicate, perhaps at another replica) was just recorded at."""
        recorded = self.state.recorded_paths(paths)
        self.spool.remove(p for p in paths if p not in recorded)


def _scanner(row: SeriesRow | None) -> str:
    """The ``calling_ae`` metric label of a series (the AE of its first instance)."""
    return metrics.scanner(row.calling_aet if row is not None else "")
