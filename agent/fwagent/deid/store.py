"""Which de-identified copy belongs to which spooled instance, next to the agent's state.

Its own table in state.sqlite (``CREATE TABLE IF NOT EXISTS``, through its own
connection, as the pull side keeps its own), so the receiver's schema is untouched. A copy
is current for an instance only if it was made from the same version of it (the
instance's ``received_at``: a re-sent SOP instance replaces the spooled file and makes its
earlier copy stale). Copies live in ``spool/deid/<series>/<sop>-<version>/<new sop>.dcm``,
so the file name in the zip is the de-identified SOP uid and a newer version never shares
a file with an older one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from fwmapping.paths import inside, safe_component

from ..state import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS deid_instances (
    sop_uid      TEXT PRIMARY KEY,
    series_uid   TEXT NOT NULL,
    received_at  REAL NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deid_instances_series ON deid_instances(series_uid);
"""


@dataclass(frozen=True)
class Copy:
    sop_uid: str  # the original SOP uid (the spooled instance's key)
    series_uid: str
    received_at: float  # the version of the instance it was made from
    path: str
    size: int


class DeidStore:
    """Thread-safe (one connection, one lock), like :class:`fwagent.state.State`."""

    def __init__(self, state_path: Path, spool_root: Path) -> None:
        self.root = Path(os.path.realpath(Path(spool_root) / "deid"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_db(state_path, SCHEMA)
        # a lost last row (OS crash) only means that copy is made again
        self._db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def dest_dir(self, series_uid: str, sop_uid: str, received_at: float) -> Path:
        """Where the copy of this version of the instance goes (inside spool/deid)."""
        version = f"{safe_component(sop_uid)}-{round(received_at * 1_000_000)}"
        return inside(self.root, safe_component(series_uid), safe_component(version))

    def instance(self, sop_uid: str) -> tuple[str, str, float] | None:
        """(series uid, spooled path, received_at) of a spooled instance, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT series_uid, path, received_at FROM instances WHERE sop_uid=?", (sop_uid,)
            ).fetchone()
        return (row["series_uid"], row["path"], float(row["received_at"])) if row else None

    def get(self, sop_uid: str) -> Copy | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM deid_instances WHERE sop_uid=?", (sop_uid,)
            ).fetchone()
        return Copy(**dict(row)) if row else None

    def current(self, sop_uid: str, received_at: float) -> Copy | None:
        """The copy made from exactly this version, if it is still whole on disk."""
        copy = self.get(sop_uid)
        if copy is None or copy.received_at != received_at:
            return None
        try:
            if Path(copy.path).stat().st_size != copy.size:
                return None
        except OSError:
            return None
        return copy

    def record(self, copy: Copy) -> None:
        """Keep ``copy`` unless a copy of a newer version is recorded; drop the loser's file."""
        with self._lock:
            row = self._db.execute(
                "SELECT received_at, path FROM deid_instances WHERE sop_uid=?", (copy.sop_uid,)
            ).fetchone()
            if row is not None and float(row["received_at"]) > copy.received_at:
                loser = copy.path
            else:
                loser = row["path"] if row is not None and row["path"] != copy.path else ""
                self._db.execute(
                    "INSERT OR REPLACE INTO deid_instances(sop_uid, series_uid, received_at,"
                    " path, size) VALUES (?,?,?,?,?)",
                    (copy.sop_uid, copy.series_uid, copy.received_at, copy.path, copy.size),
                )
                self._db.commit()
        if loser:
            _remove_copy(Path(loser))

    def forget(self, done: list[tuple[str, float]]) -> int:
        """Drop the copies of these (sop uid, received_at) versions: they were uploaded,
        opted out or abandoned. Copies of newer versions stay."""
        paths: list[str] = []
        with self._lock:
            for sop_uid, received_at in done:
                row = self._db.execute(
                    "SELECT path FROM deid_instances WHERE sop_uid=? AND received_at=?",
                    (sop_uid, received_at),
                ).fetchone()
                if row is None:
                    continue
                self._db.execute("DELETE FROM deid_instances WHERE sop_uid=?", (sop_uid,))
                paths.append(row["path"])
            self._db.commit()
        for path in paths:
            _remove_copy(Path(path))
        return len(paths)

    def recover(self, spooled: set[tuple[str, float]]) -> int:
        """After a restart: drop copies whose instance version is no longer ``spooled``
        ((sop uid, received_at) pairs from the agent's state), and files no row points to
        (a kill between writing a copy and recording it)."""
        with self._lock:
            rows = self._db.execute("SELECT sop_uid, received_at, path FROM deid_instances")
            kept: set[str] = set()
            for row in rows.fetchall():
                if (row["sop_uid"], float(row["received_at"])) in spooled:
                    kept.add(str(Path(row["path"]).parent))
                else:
                    self._db.execute(
                        "DELETE FROM deid_instances WHERE sop_uid=?", (row["sop_uid"],)
                    )
            self._db.commit()
        removed = 0
        for series_dir in list(self.root.iterdir()):
            for version_dir in list(series_dir.iterdir()) if series_dir.is_dir() else []:
                if str(version_dir) not in kept:
                    shutil.rmtree(version_dir, ignore_errors=True)
                    removed += 1
            if series_dir.is_dir() and not any(series_dir.iterdir()):
                series_dir.rmdir()
        return removed


def _remove_copy(path: Path) -> None:
    """Remove a copy and its version folder (and the series folder once empty)."""
    shutil.rmtree(path.parent, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.parent.rmdir()
