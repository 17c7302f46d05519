"""Durable before 0x0000: fsync helpers and the group committer.

An instance is acknowledged only after its file is fsynced, then renamed into the spool,
then both the directory it was renamed into is fsynced and its state row is committed
durably (SQLite WAL with ``synchronous=FULL``; PostgreSQL's commit is durable by itself;
those two at the same time). A power cut at any point therefore loses only instances not
yet answered 0x0000 (a row whose file's rename was lost is such an instance: the scanner
resends it, and the pipeline quarantines the row it cannot read).

Group commit: concurrent associations share the directory fsyncs and the state commit. A
handler hands its (directory, row write) to the :class:`Committer`; whoever commits next
takes every job pending, fsyncs each distinct directory once, runs all row writes in one
transaction (one commit, one WAL sync), then releases them::

    committer = Committer(state)
    fsync_file(tmp)
    os.replace(tmp, dest)
    previous = committer.commit(dest.parent, lambda: state.record_instance(...))

``FW_BENCH_UNSAFE_NO_FSYNC=1`` (benchmarks only, never in production: acknowledged images
can be lost on power loss) turns the fsyncs off and SQLite to ``synchronous=NORMAL``, so
the bench can print what durability costs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

UNSAFE_ENV = "FW_BENCH_UNSAFE_NO_FSYNC"
ENABLED = os.environ.get(UNSAFE_ENV, "") != "1"
# what State sets on its SQLite connection (FULL: the WAL is synced at every commit)
SQLITE_SYNCHRONOUS = "FULL" if ENABLED else "NORMAL"
if not ENABLED:
    log.warning("%s=1: fsync is OFF, acknowledged images can be lost on power loss", UNSAFE_ENV)


class Counters:
    """Syncs done by this process (the bench and the metrics read them)."""

    def __init__(self) -> None:
        self.file = 0
        self.directory = 0
        self.commits = 0  # state commits by the committer (each one WAL sync)
        self.instances = 0  # rows committed by the committer
        self._lock = threading.Lock()

    def add(self, **by: int) -> None:
        with self._lock:
            for name, value in by.items():
                setattr(self, name, getattr(self, name) + value)


COUNTS = Counters()


def fsync_file(path: Path | str) -> None:
    """Flush ``path``'s data and size to the disk."""
    if not ENABLED:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    COUNTS.add(file=1)
    _metric("file")


def fsync_dir(path: Path | str) -> None:
    """Make the names created, renamed or removed in directory ``path`` durable."""
    if not ENABLED:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    COUNTS.add(directory=1)
    _metric("directory")


def make_dirs_durable(*paths: Path) -> None:
    """Create ``paths`` if needed and make each one's entry in its parent durable (once, at
    start-up: the spool's own folders)."""
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        fsync_dir(path)
        fsync_dir(path.parent)


def _metric(kind: str) -> None:
    from . import metrics

    metrics.FSYNCS.labels(kind=kind).inc()


def _commit_metric() -> None:
    from . import metrics

    metrics.STATE_COMMITS.inc()


class Batchable(Protocol):
    def batch(self) -> Any:
        """A context in which several writes commit together, durably, at its end."""


@dataclass(eq=False)
class _Job:
    directory: str
    write: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


# one thread syncs folders while the committing handler commits the rows
_SYNCER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync-dirs")


class Committer:
    """Group commit without a thread of its own: the first handler to arrive commits for
    everyone waiting (it is the "leader"); handlers arriving meanwhile queue up and the
    next leader commits them all at once. One association alone pays no hand-off between
    threads; concurrent associations share the syncs."""

    def __init__(self, state: Batchable) -> None:
        self.state = state
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._leading = False

    def commit(self, directory: Path | str, write: Callable[[], Any]) -> Any:
        """Fsync ``directory`` and run ``write`` (the state row) in a durable commit,
        shared with the other jobs pending; return what ``write`` returned (or raise what
        it raised). Returns once both are on disk."""
        job = _Job(str(directory), write)
        with self._cond:
            self._pending.append(job)
            while not job.done.is_set():
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                batch, self._pending = self._pending, []
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result

    def stop(self) -> None:
        """Nothing to stop (no thread); kept so owners can say they are done with it."""

    def _commit(self, jobs: list[_Job]) -> None:
        """The folder fsyncs and the state commit run at the same time (both are needed
        before any answer; the file system and SQLite each wait for the disk): about one
        sync's latency instead of two. Jobs whose folder failed to sync get that error."""
        try:
            syncing = _SYNCER.submit(self._sync_dirs, jobs)
            try:
                self._write(jobs)
            finally:
                syncing.result()  # a job whose folder failed carries that error
        except BaseException as exc:  # noqa: BLE001 - a job must never wait forever
            for job in jobs:
                if job.error is None:
                    job.error = exc
            log.exception("group commit failed")
        finally:
            for job in jobs:
                job.done.set()

    def _sync_dirs(self, jobs: list[_Job]) -> None:
        """Fsync each distinct directory once; a job whose directory failed is answered
        with that error (its row may be recorded: the file is then uploaded all the same)."""
        for directory in dict.fromkeys(job.directory for job in jobs):
            try:
                fsync_dir(directory)
            except OSError as exc:
                for job in jobs:
                    if job.directory == directory:
                        job.error = exc

    def _write(self, jobs: list[_Job]) -> None:
        """All rows in one durable commit; if that fails, each row on its own (so one bad
        row fails only its own C-STORE)."""
        try:
            with self.state.batch():
                results = [job.write() for job in jobs]
        except Exception:  # noqa: BLE001 - retried one by one below
            log.debug("group commit of %d rows failed; committing one by one", len(jobs))
            for job in jobs:
                try:
                    with self.state.batch():
                        job.result = job.write()
                    COUNTS.add(commits=1, instances=1)
                    _commit_metric()
                except Exception as exc:  # noqa: BLE001 - the handler answers a failure
                    job.error = exc
            return
        for job, result in zip(jobs, results, strict=True):
            job.result = result
        COUNTS.add(commits=1, instances=len(jobs))
        _commit_metric()
