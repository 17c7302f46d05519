"""What the poller remembers between polls, in the agent's state (own tables; SQLite or
PostgreSQL as ``state_url`` says, with the same statements).

``pull_series``: one row per series seen on the peer (decide.SeriesState).
``pull_studies``: the study instance count at the last poll (to skip unchanged studies).
``pull_meta``: first-start baseline flag, last poll time/cost/error.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fwagent.db import Database
from fwagent.pull.decide import ABANDONED, STATES, SeriesState
from fwagent.state import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS pull_series (
    series_uid     TEXT PRIMARY KEY,
    study_uid      TEXT NOT NULL,
    state          TEXT NOT NULL,
    count          INTEGER,
    uploaded_count INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    reason         TEXT NOT NULL DEFAULT '',
    first_seen     REAL NOT NULL DEFAULT 0,
    last_seen      REAL NOT NULL DEFAULT 0,
    study_date     TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS pull_series_study ON pull_series(study_uid);
CREATE TABLE IF NOT EXISTS pull_studies (
    study_uid TEXT PRIMARY KEY,
    count     INTEGER
);
CREATE TABLE IF NOT EXISTS pull_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_FIELDS = [f.name for f in dataclasses.fields(SeriesState)]


_UPSERT_SERIES = (
    f"INSERT INTO pull_series({', '.join(_FIELDS)}) VALUES ({', '.join('?' for _ in _FIELDS)})"
    " ON CONFLICT(series_uid) DO UPDATE SET "
    + ", ".join(f"{f}=excluded.{f}" for f in _FIELDS if f != "series_uid")
)


class PullStore:
    """A separate connection to the agent's state (SQLite WAL lets it share the file)."""

    def __init__(self, path: Path, url: str = "") -> None:
        self._lock = threading.RLock()
        self._db = open_db(path, SCHEMA, url)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[Database]:
        with self._lock, self._db.transaction() as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator[Database]:
        with self._lock, self._db.read() as db:
            yield db

    def series(self) -> dict[str, SeriesState]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM pull_series").fetchall()
        return {r["series_uid"]: SeriesState(**{k: r[k] for k in _FIELDS}) for r in rows}

    def save(self, *states: SeriesState) -> None:
        with self._tx() as db:
            db.executemany(_UPSERT_SERIES, [tuple(getattr(s, f) for f in _FIELDS) for s in states])

    def forget(self, series_uids: list[str]) -> None:
        with self._tx() as db:
            db.executemany(
                "DELETE FROM pull_series WHERE series_uid=?", [(u,) for u in series_uids]
            )
            db.execute(
                "DELETE FROM pull_studies WHERE study_uid NOT IN"
                " (SELECT DISTINCT study_uid FROM pull_series)"
            )

    def study_counts(self) -> dict[str, int | None]:
        with self._read() as db:
            rows = db.execute("SELECT study_uid, count FROM pull_studies").fetchall()
        return {r["study_uid"]: r["count"] for r in rows}

    def save_study_counts(self, counts: dict[str, int | None]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO pull_studies(study_uid, count) VALUES (?, ?)"
                " ON CONFLICT(study_uid) DO UPDATE SET count=excluded.count",
                list(counts.items()),
            )

    def forget_study_count(self, study_uid: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM pull_studies WHERE study_uid=?", (study_uid,))

    def get(self, key: str, default: str = "") -> str:
        with self._read() as db:
            row = db.execute("SELECT value FROM pull_meta WHERE key=?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def put(self, **values: Any) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO pull_meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [(k, str(v)) for k, v in values.items()],
            )

    def summary(self) -> dict[str, Any]:
        """The `pull` part of `fwagent status`: counts by state, every abandoned or
        retrying series with its reason, and the last poll."""
        states = self.series()
        counts = dict.fromkeys(STATES, 0)
        for s in states.values():
            counts[s.state] = counts.get(s.state, 0) + 1
        problems = [
            {
                "series_uid": s.series_uid,
                "study_uid": s.study_uid,
                "state": s.state,
                "failures": s.failures,
                "images": s.count,
                "reason": s.reason,
            }
            for s in sorted(states.values(), key=lambda s: (s.state != ABANDONED, s.first_seen))
            if s.state in (ABANDONED, "retrying")
        ]
        waiting = [
            {"series_uid": s.series_uid, "images": s.count, "reason": s.reason}
            for s in states.values()
            if s.state == "waiting"
        ]
        with self._read() as db:
            meta = {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM pull_meta")}
        return {
            "series": counts,
            "abandoned_and_retrying": problems,
            "waiting": waiting,
            "last_poll": meta,
        }
