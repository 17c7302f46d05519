"""What the poller remembers between polls, in the agent's state.sqlite (own tables).

``pull_series``: one row per series seen on the peer (decide.SeriesState).
``pull_studies``: the study instance count at the last poll (to skip unchanged studies).
``pull_meta``: first-start baseline flag, last poll time/cost/error.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

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


class PullStore:
    """A separate connection to state.sqlite (WAL lets it share the file with State)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._db = open_db(path, SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def series(self) -> dict[str, SeriesState]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM pull_series").fetchall()
        return {r["series_uid"]: SeriesState(**{k: r[k] for k in _FIELDS}) for r in rows}

    def save(self, *states: SeriesState) -> None:
        columns = ", ".join(_FIELDS)
        marks = ", ".join("?" for _ in _FIELDS)
        with self._lock:
            self._db.executemany(
                f"INSERT OR REPLACE INTO pull_series({columns}) VALUES ({marks})",
                [tuple(getattr(s, f) for f in _FIELDS) for s in states],
            )
            self._db.commit()

    def forget(self, series_uids: list[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM pull_series WHERE series_uid=?", [(u,) for u in series_uids]
            )
            self._db.execute(
                "DELETE FROM pull_studies WHERE study_uid NOT IN"
                " (SELECT DISTINCT study_uid FROM pull_series)"
            )
            self._db.commit()

    def study_counts(self) -> dict[str, int | None]:
        with self._lock:
            rows = self._db.execute("SELECT study_uid, count FROM pull_studies").fetchall()
        return {r["study_uid"]: r["count"] for r in rows}

    def save_study_counts(self, counts: dict[str, int | None]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO pull_studies(study_uid, count) VALUES (?, ?)",
                list(counts.items()),
            )
            self._db.commit()

    def forget_study_count(self, study_uid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pull_studies WHERE study_uid=?", (study_uid,))
            self._db.commit()

    def get(self, key: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM pull_meta WHERE key=?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def put(self, **values: Any) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO pull_meta(key, value) VALUES (?, ?)",
                [(k, str(v)) for k, v in values.items()],
            )
            self._db.commit()

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
        with self._lock:
            meta = {
                r["key"]: r["value"]
                for r in self._db.execute("SELECT key, value FROM pull_meta").fetchall()
            }
        return {
            "series": counts,
            "abandoned_and_retrying": problems,
            "waiting": waiting,
            "last_poll": meta,
        }
