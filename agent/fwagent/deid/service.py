"""The de-identification service: a recycled worker pool, the receiver hook, and what the
pipeline asks for.

    deid = Deidentifier(profile_path, spool_root, state_path)
    deid.start()                       # validates the profile (ProfileError), starts the pool
    scp = StorageSCP(..., on_stored=deid.on_stored)   # de-id starts as instances arrive
    paths, header = deid.sources(groups)[acq]          # the pipeline: copies + their header
    deid.forget(done)                  # after the series left the spool
    deid.stop()

Copies made on arrival are reused by the pipeline; anything missing or stale (a re-sent
instance, a restart, a crashed worker) is de-identified when the series is packaged, so
nothing depends on the hook having run. Any instance without a copy raises
:class:`DeidError`: the series is not uploaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from fwmapping import NotDicomError, read_header

from ..state import InstanceRow
from . import worker
from .pool import RecycledWorker, new_pool
from .profile import Profile, ProfileError, check_profile
from .store import Copy, DeidStore

log = logging.getLogger("fwagent.deid")

# one worker (one core for de-id, the other for receiving: the library is CPU-bound),
# replaced after this many instances: bounds the library's hash cache (see .pool)
TASKS_PER_WORKER = 2000
TASK_TIMEOUT = 300.0  # seconds one instance may take


class DeidError(RuntimeError):
    """Some instance has no de-identified copy; the message carries no header values."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = f"de-identification failed: {message}"  # what status shows


def validate(path: str | Path, pool: ProcessPoolExecutor | RecycledWorker | None = None) -> Profile:
    """Read the profile, apply the site rules, then flywheel-migration's own validation (in
    a worker process); ProfileError with one line naming the first problem."""
    profile = check_profile(path)
    own = new_pool(1) if pool is None else None
    runner = own or pool
    assert runner is not None
    try:
        errors = runner.submit(worker.validate, profile).result(timeout=TASK_TIMEOUT)
    except (BrokenProcessPool, FutureTimeout) as exc:
        raise ProfileError(f"{path}: the de-id worker could not load it ({exc!r})") from None
    finally:
        if own is not None:
            own.shutdown(wait=True)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProfileError(f"{path}: {errors[0]}{more}")
    return profile


class Deidentifier:
    def __init__(
        self,
        profile_path: str | Path,
        spool_root: Path,
        state_path: Path,
        tasks_per_worker: int = TASKS_PER_WORKER,
    ) -> None:
        self.profile_path = str(profile_path)
        self.spool_root = Path(spool_root)
        self.state_path = Path(state_path)
        self.tasks_per_worker = tasks_per_worker
        self.store: DeidStore | None = None
        self.profile: Profile | None = None  # as read and validated at start-up
        self._worker: RecycledWorker | None = None
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._pending: dict[tuple[str, float], Future[worker.Result]] = {}

    # ---- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Validate the profile (ProfileError) and start the workers."""
        self._worker = RecycledWorker(self.tasks_per_worker, TASK_TIMEOUT)
        try:
            self.profile = validate(self.profile_path, self._worker)  # the worker is warm
        except ProfileError:
            self.stop()
            raise
        self.store = DeidStore(self.state_path, self.spool_root)
        log.info("de-identification on: profile %s", self.profile_path)

    @property
    def recycled(self) -> int:
        """Workers replaced after their quota so far."""
        return self._worker.recycled if self._worker is not None else 0

    def stop(self) -> None:
        with self._lock:
            running, self._worker = self._worker, None
        if running is not None:
            running.stop()
        if self.store is not None:
            self.store.close()
            self.store = None

    def recover(self, spooled: Iterable[InstanceRow]) -> int:
        """After a restart: drop copies of instances no longer spooled (see DeidStore)."""
        return self._store().recover({(i.sop_uid, i.received_at) for i in spooled})

    def _store(self) -> DeidStore:
        if self.store is None:
            raise RuntimeError("de-identification is not started")
        return self.store

    # ---- work ------------------------------------------------------------------------

    def on_stored(self, series_uid: str, sop_uid: str) -> None:
        """The receiver's hook: start de-identifying the instance just spooled."""
        try:
            found = self._store().instance(sop_uid)
            if found is not None:
                series, path, received_at = found
                self._submit(sop_uid, series, path, received_at)
        except Exception as exc:  # noqa: BLE001 - the pipeline retries; never fail a C-STORE
            log.warning("de-id of an arriving instance not started (%s); done at upload", exc)

    def _submit(
        self, sop_uid: str, series_uid: str, path: str, received_at: float
    ) -> Future[worker.Result]:
        key = (sop_uid, received_at)
        dest = self._store().dest_dir(series_uid, sop_uid, received_at)
        task = worker.Task(path, str(dest))
        with self._lock:
            future = self._pending.get(key)
            if future is not None:
                return future
            if self._worker is None or self.profile is None:
                raise RuntimeError("de-identification is stopped")
            future = self._worker.submit(worker.deidentify, self.profile, task)
            self._pending[key] = future
        future.add_done_callback(lambda f: self._done(key, series_uid, f))
        return future

    def _done(self, key: tuple[str, float], series_uid: str, future: Future[worker.Result]) -> None:
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]
        if not future.cancelled() and future.exception() is None:
            self._record(key, series_uid, future)

    def _record(
        self, key: tuple[str, float], series_uid: str, future: Future[worker.Result]
    ) -> worker.Result:
        """Record a finished task's copy exactly once (its done-callback and the pipeline
        waiting on it both get here; whoever comes first records it)."""
        result = future.result()
        with self._record_lock:
            if getattr(future, "fwagent_recorded", False):
                return result
            future.fwagent_recorded = True  # type: ignore[attr-defined]
            for line in result.detail:
                log.debug("de-id %s: %s", key[0], line)
            if result.ok and self.store is not None:
                self.store.record(Copy(key[0], series_uid, key[1], result.path, result.size))
        return result

    def copies(self, instances: Iterable[InstanceRow]) -> dict[str, Copy]:
        """The de-identified copy of each instance (original SOP uid -> copy), making the
        missing ones now; DeidError if any instance has none."""
        store = self._store()
        found: dict[str, Copy] = {}
        waiting: list[tuple[InstanceRow, Future[worker.Result]]] = []
        for inst in instances:
            copy = store.current(inst.sop_uid, inst.received_at)
            if copy is not None:
                found[inst.sop_uid] = copy
            else:
                waiting.append(
                    (inst, self._submit(inst.sop_uid, inst.series_uid, inst.path, inst.received_at))
                )
        failures: list[str] = []
        for inst, future in waiting:
            result = self._result(inst, future)
            if result.ok:
                found[inst.sop_uid] = Copy(
                    inst.sop_uid, inst.series_uid, inst.received_at, result.path, result.size
                )
            else:
                failures.append(f"instance {inst.sop_uid}: {result.reason}")
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise DeidError(failures[0] + more)
        return found

    def _result(self, inst: InstanceRow, future: Future[worker.Result]) -> worker.Result:
        key = (inst.sop_uid, inst.received_at)
        for attempt in (1, 2):
            try:
                future.result()  # the worker side bounds each task by TASK_TIMEOUT
                return self._record(key, inst.series_uid, future)
            except BrokenProcessPool:
                if attempt == 2:
                    break
                with self._lock:
                    if self._pending.get(key) is future:
                        del self._pending[key]
                future = self._submit(inst.sop_uid, inst.series_uid, inst.path, inst.received_at)
            except CancelledError:
                return worker.Result(False, reason="de-identification stopped (agent stopping)")
            except TimeoutError:
                return worker.Result(False, reason=f"not de-identified within {TASK_TIMEOUT:.0f}s")
        return worker.Result(False, reason="the de-identification worker crashed on it")

    def sources(self, groups: dict[str, list[InstanceRow]]) -> dict[str, tuple[list[Path], Any]]:
        """For each acquisition: its de-identified copies and the header of the first, which
        is what gets packaged, mapped and put in file info."""
        copies = self.copies(inst for members in groups.values() for inst in members)
        out: dict[str, tuple[list[Path], Any]] = {}
        for key, members in groups.items():
            paths = sorted(Path(copies[m.sop_uid].path) for m in members)
            try:
                header = read_header(paths[0])
            except NotDicomError:
                raise DeidError("a de-identified copy is not readable DICOM") from None
            out[key] = (paths, header)
        return out

    def forget(self, done: Iterable[InstanceRow]) -> None:
        """These instances left the spool: their copies go too."""
        if self.store is not None:
            self.store.forget([(inst.sop_uid, inst.received_at) for inst in done])
