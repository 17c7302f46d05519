"""The spool directory: where received instances wait for their upload.

Layout under ``spool_dir``::

    instances/<sop>.dcm            acknowledged instances (each has a row in state); one
                                   folder for every series, so concurrent associations
                                   share its fsync (fwagent.durable); spools from before
                                   keep instances/<series>/<sop>.dcm until uploaded
    tmp/tmpXXXX.dcm, <random>.part an instance being received (renamed into instances/)
    quarantine/<sop>.<random>.dcm  what could not be placed, kept with its reason in state
    work/<series>/                 zips being built for an upload

Every path is built with :mod:`fwmapping.paths`, so no UID can name a file outside the
spool. :func:`recover_spool` puts the spool and the state back in step after a restart;
with a shared state (several replicas on one spool) it leaves the others' work alone.
:func:`lock_spool` keeps a second agent off a spool whose state is SQLite.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from fwmapping.paths import UnsafePathError, inside, safe_component

if TYPE_CHECKING:
    from .state import State


class Spool:
    """Layout of the spool directory."""

    def __init__(self, root: Path) -> None:
        # resolved once: paths proven by fwmapping.paths are resolved, and recovery compares
        # them with what it lists here (a symlinked or relative spool_dir must not make every
        # acknowledged file look like an orphan)
        self.root = Path(os.path.realpath(root))
        self.instances = self.root / "instances"
        self.tmp = self.root / "tmp"
        self.quarantine = self.root / "quarantine"
        self.work = self.root / "work"
        for path in (self.instances, self.tmp, self.quarantine, self.work):
            path.mkdir(parents=True, exist_ok=True)
        self._instances_real = Path(os.path.realpath(self.instances))

    def instance_path(self, series_uid: str, sop_uid: str) -> Path:
        """``instances/<sop>.dcm`` (SOP Instance UIDs are unique across series; a
        duplicate replaces its earlier copy). ``series_uid`` is not part of the path."""
        # a safe component is one plain name (never "..", no separator), and os.replace
        # renames over a link rather than through it: the instances folder, resolved once,
        # is the only proof needed (each costs a realpath per call)
        return self._instances_real / safe_component(sop_uid, ".dcm")

    def work_dir(self, series_uid: str) -> Path:
        """The series' folder under ``work`` (never ``work`` itself or anything above)."""
        return inside(self.work, safe_component(series_uid))

    def quarantine_path(self, sop_uid: str) -> Path:
        """A new file name in ``quarantine``: two bad copies of one SOP instance both stay."""
        name = f"{safe_component(sop_uid or 'unknown')}.{uuid.uuid4().hex[:8]}.dcm"
        return inside(self.quarantine, name)

    def holds(self, path: str | Path) -> bool:
        """``path`` is inside the spool (so the agent may remove it)."""
        try:
            inside(self.root, str(path))
        except UnsafePathError:
            return False
        return True

    def temp_path(self) -> Path:
        return self.tmp / f"{uuid.uuid4().hex}.part"

    def write_temp(self, *parts: bytes) -> Path:
        """A new file in ``tmp`` holding ``parts`` one after the other."""
        tmp = self.temp_path()
        with open(tmp, "wb") as fh:
            for part in parts:
                fh.write(part)
        return tmp

    def to_quarantine(self, path: Path, sop_uid: str) -> Path:
        """Move ``path`` into ``quarantine``; where it now is (where it was if it cannot
        be moved, e.g. already gone)."""
        dest = self.quarantine_path(sop_uid)
        try:
            os.replace(path, dest)
        except OSError:
            return path
        return dest

    def remove(self, paths: Iterable[str | Path]) -> None:
        """Delete the files that are inside the spool (never anything outside it)."""
        for path in paths:
            if self.holds(path):
                Path(path).unlink(missing_ok=True)

    def clean_tmp(self) -> int:
        """Remove partial files left by a kill (they were never acknowledged): ours and
        pynetdicom's chunked receive files (fwagent.chunked)."""
        count = 0
        for path in self.tmp.iterdir():
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
                count += 1
        return count

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free


# with a shared spool, a file this old without a row belongs to no replica alive: an
# instance is written in one go after the whole dataset arrived, a zip within an upload
SHARED_ORPHAN_AGE = 600.0


def lock_spool(spool: Spool) -> IO[str]:
    """One agent per spool on SQLite: an exclusive lock on ``spool_dir/agent.lock``, held
    while the agent runs and released by the kernel when it dies. A second agent started on
    the same spool would clean the first one's in-flight files as leftovers and write the
    same SQLite file from another host; it stops with one line instead."""
    handle = open(spool.root / "agent.lock", "a+")  # noqa: SIM115 - held until stop()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OSError(
            f"spool_dir {spool.root} is in use by another fwagent ({holder}); replicas"
            " sharing a spool need a shared state_url: postgresql://..."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _old(path: Path, min_age: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime >= min_age
    except OSError:
        return False


def recover_spool(spool: Spool, state: State) -> dict[str, int]:
    """After a restart: drop partial files and zips left half-written in spool/work,
    forget files that were never acknowledged (no row), re-queue series that were
    mid-upload.

    With shared state other replicas are at work in the same spool: only what is older
    than SHARED_ORPHAN_AGE goes, never the work folder of a series under a live lease,
    and only series whose uploader's lease expired are re-queued.
    """
    min_age = SHARED_ORPHAN_AGE if state.shared else 0.0
    now = time.time()
    partial = 0
    for path in spool.tmp.iterdir():  # ours (.part) and pynetdicom's chunked receive files
        if (path.is_file() or path.is_symlink()) and _old(path, min_age, now):
            path.unlink(missing_ok=True)
            partial += 1
    leased = {spool.work_dir(uid).name for uid in state.leased()} if state.shared else set()
    work = 0
    for leftover in spool.work.iterdir():
        if leftover.name in leased or not _old(leftover, min_age, now):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        work += 1
    known = {row.path for row in state.instances()}
    orphans = 0
    for path in spool.instances.rglob("*.dcm"):  # flat, and series folders of older spools
        # rows hold resolved paths; the spool_dir given may run through a link
        if (
            str(path) not in known
            and os.path.realpath(path) not in known
            and _old(path, min_age, now)
        ):
            path.unlink(missing_ok=True)
            orphans += 1
    for directory in spool.instances.iterdir():
        if directory.is_dir() and not any(directory.iterdir()) and _old(directory, min_age, now):
            with contextlib.suppress(OSError):  # another replica just wrote into it
                directory.rmdir()
    requeued = state.recover()
    return {"partial": partial, "work": work, "orphans": orphans, "requeued": requeued}
