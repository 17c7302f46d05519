"""Durable agent state in SQLite (WAL): which instances are in the spool, which series
are in which state, what was quarantined.

A row in ``instances`` exists only after the file is complete on disk; the receiver
answers success only after the row is committed. WAL with ``synchronous=FULL``: a commit
survives ``kill -9`` and a power cut (:mod:`fwagent.durable`; PostgreSQL commits durably).

Series states::

    receiving -> complete -> uploading -> uploaded
                          \\-> opted_out      (deleted from the spool, counted)
                          \\-> failed         (retried later; never dropped)
                          \\-> abandoned      (nothing left to upload, e.g. all quarantined)

An instance arriving for a series in uploaded/opted_out/failed/abandoned moves it back to
``receiving`` so it is judged (and uploaded) again.

The same statements run on SQLite (``state_url`` empty: ``spool_dir/state.sqlite``, one
agent process) and on PostgreSQL (``state_url: postgresql://...``: several replicas sharing
``spool_dir`` and this state); :mod:`fwagent.db` holds the few dialect differences.
Who uploads a series is decided by a lease: :meth:`State.claim` sets ``owner`` (this
process's id) and ``lease_until`` in one conditional UPDATE, so exactly one replica wins;
the owner renews the lease while it works (:meth:`State.holding`); a series whose owner
died (lease expired) is due again and another replica takes it over. ``last_received``
only moves forward and moves on every instance, so "an instance arrived since the claim"
holds whichever replica's clock recorded it.

The schema is versioned (SQLite ``PRAGMA user_version``, PostgreSQL a one-row table, see
:mod:`fwagent.db`): :data:`MIGRATIONS` are applied in order, each in its own transaction
under the schema lock, so a spool written by an older release is upgraded in place and
replicas starting together migrate once; a database written by a newer release (a higher
version) is refused (:class:`NewerStateError`) rather than guessed at.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database, Pool, connect, redact

RECEIVING = "receiving"
COMPLETE = "complete"
UPLOADING = "uploading"
UPLOADED = "uploaded"
FAILED = "failed"
OPTED_OUT = "opted_out"
ABANDONED = "abandoned"
STATES = (RECEIVING, COMPLETE, UPLOADING, UPLOADED, FAILED, OPTED_OUT, ABANDONED)

# version 1: the schema every release before versioning wrote (user_version 0)
BASELINE = """
CREATE TABLE IF NOT EXISTS series (
    series_uid    TEXT PRIMARY KEY,
    study_uid     TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT 'push',
    calling_aet   TEXT NOT NULL DEFAULT '',
    first_seen    REAL NOT NULL,
    last_received REAL NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    placement     TEXT NOT NULL DEFAULT '',
    destination   TEXT NOT NULL DEFAULT '',
    uploaded_count INTEGER NOT NULL DEFAULT 0,
    uploaded_at   REAL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS series_state ON series(state, last_received);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid     TEXT PRIMARY KEY,
    series_uid  TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    received_at REAL NOT NULL,
    acq_uid     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE TABLE IF NOT EXISTS quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    series_uid  TEXT NOT NULL DEFAULT '',
    sop_uid     TEXT NOT NULL DEFAULT '',
    at          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

# Per scanner (issue 13), schema version 2 (added by a release before versioning when it
# opened a database, so a version-0 file may have them already):
# series.received_count (instances acknowledged, duplicates too), series.description (the
# first instance's SeriesDescription) and hourly counts per calling AE title in ``activity``.
SERIES_COLUMNS_ADDED = (
    ("received_count", "INTEGER NOT NULL DEFAULT 0"),
    ("description", "TEXT NOT NULL DEFAULT ''"),
)
# Shared state (issue 14), schema version 4: the upload lease, series.owner (the process
# holding it) and series.lease_until (epoch seconds; after it the lease is free), and an
# index to ask which instance rows point at a file.
LEASE_COLUMNS = (
    ("owner", "TEXT NOT NULL DEFAULT ''"),
    ("lease_until", "REAL NOT NULL DEFAULT 0"),
)
ACTIVITY_TABLE = """
CREATE TABLE IF NOT EXISTS activity (
    hour        INTEGER NOT NULL,
    calling_aet TEXT NOT NULL,
    received    INTEGER NOT NULL DEFAULT 0,
    uploaded    INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    opted_out   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, calling_aet)
)
"""

# what `fwagent status` reports per scanner (DESIGN.md section 5)
SCANNER_KEYS = (
    "received_instances",
    "uploaded_series",
    "failed_series",
    "opted_out_series",
    "unknown",
    "unsorted",
    "routed",
    "last_received",
)
ACTIVITY_KEEP_HOURS = 24 * 8  # hourly activity rows older than this are pruned


def _baseline(db: Database) -> None:
    for statement in BASELINE.split(";"):
        if statement.strip():
            db.execute(db.ddl(statement))


def _scanner_schema(db: Database) -> None:
    """Per scanner (issue 13): series.received_count, series.description, ``activity``."""
    db.add_columns("series", SERIES_COLUMNS_ADDED)
    db.execute(db.ddl(ACTIVITY_TABLE))


def _acquisitions_column(db: Database) -> None:
    """series.acquisitions: JSON {acquisition uid: Flywheel acquisition id} recorded at the
    first upload, so a late instance finds the earlier zip by id, whatever its UID holds."""
    db.add_columns("series", (("acquisitions", "TEXT NOT NULL DEFAULT '{}'"),))


def _lease_schema(db: Database) -> None:
    """Shared state (issue 14): series.owner, series.lease_until, instances by path."""
    db.add_columns("series", LEASE_COLUMNS)
    db.execute("CREATE INDEX IF NOT EXISTS instances_path ON instances(path)")


# ordered: MIGRATIONS[n - 1] takes a database from version n-1 to n
MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _baseline,
    _scanner_schema,
    _acquisitions_column,
    _lease_schema,
)
SCHEMA_VERSION = len(MIGRATIONS)


class NewerStateError(RuntimeError):
    """The state database was written by a newer release than this one."""


def migrate(db: Database, where: str = "state.sqlite") -> int:
    """Apply the migrations this database lacks, each with its version bump in one
    transaction under the schema lock (another process migrating at the same time waits,
    then finds it done). Returns the version before."""
    with db.exclusive():
        before = db.schema_version()
    if before > SCHEMA_VERSION:
        raise NewerStateError(
            f"{where} has state schema version {before}, newer than this fwagent knows"
            f" ({SCHEMA_VERSION}): it was written by a newer release; run that release"
            " (or restore the spool's backup) instead"
        )
    for version in range(before + 1, SCHEMA_VERSION + 1):
        with db.exclusive():
            if db.schema_version() < version:  # not done meanwhile by another process
                MIGRATIONS[version - 1](db)
                db.set_schema_version(version)
    return before


DEFAULT_LEASE_SECONDS = 30.0
# when a series is due for the pipeline (shared by due_series and claim): quiet long
# enough (pushed), retrieved (pulled), failed and due, or its uploader's lease expired
DUE = (
    "((state IN ('receiving', 'complete') AND last_received <= ? AND source != 'pull')"
    " OR (state = 'complete' AND source = 'pull')"
    " OR (state = 'failed' AND next_attempt <= ?)"
    " OR (state = 'uploading' AND lease_until < ?))"
)
# what any claim may take: not finished, not held by a PULL retrieval (a pulled series in
# ``receiving``), and not leased by a live owner
CLAIMABLE = (
    "(state IN ('complete', 'failed') OR (state = 'receiving' AND source != 'pull')"
    " OR (state = 'uploading' AND lease_until < ?))"
)


def process_id() -> str:
    """This process's owner id in leases: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    study_uid: str
    state: str
    source: str
    calling_aet: str
    first_seen: float
    last_received: float
    attempts: int
    next_attempt: float
    last_error: str
    placement: str
    destination: str
    uploaded_count: int
    uploaded_at: float | None
    updated_at: float
    received_count: int = 0
    description: str = ""
    acquisitions: str = "{}"
    owner: str = ""
    lease_until: float = 0.0

    def acquisition_ids(self) -> dict[str, str]:
        """{acquisition uid: Flywheel acquisition id} of earlier uploads of this series."""
        try:
            ids = json.loads(self.acquisitions or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in ids.items()} if isinstance(ids, dict) else {}


@dataclass(frozen=True)
class InstanceRow:
    sop_uid: str
    series_uid: str
    path: str
    size: int
    received_at: float
    acq_uid: str = ""


def open_db(path: Path, schema: str = "", url: str = "") -> Database:
    """A connection to the agent's state (``url`` empty: state.sqlite at ``path`` in WAL
    mode; the pull side shares it through its own connection), migrated to
    :data:`SCHEMA_VERSION`, ``schema`` (a part's own ``CREATE ... IF NOT EXISTS``) applied.
    Raises :class:`NewerStateError` for a database a newer release wrote."""
    db = connect(url, path)
    try:
        migrate(db, redact(url) or str(path))
        if schema:
            db.apply_schema(schema)
    except BaseException:
        db.close()
        raise
    return db


class State:
    """Thread-safe access to the agent's state (a pool of connections: see fwagent.db)."""

    def __init__(
        self,
        path: Path,
        url: str = "",
        owner: str = "",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.path = path
        self.url = url
        self.owner = owner or process_id()
        self.lease_seconds = lease_seconds
        where = redact(url) or str(path)
        self._pool = Pool(url, path, lambda db: migrate(db, where))
        self._activity_pruned_hour = -1
        self._batch = threading.local()  # .db: the transaction of batch() in this thread

    @property
    def shared(self) -> bool:
        """Other processes (replicas) use this state too."""
        return self._pool.shared

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _tx(self) -> Iterator[Database]:
        """One transaction on a connection of the pool (threads get their own); inside
        :meth:`batch`, that batch's transaction."""
        current = getattr(self._batch, "db", None)
        if current is not None:
            yield current
            return
        with self._pool.transaction() as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator[Database]:
        current = getattr(self._batch, "db", None)
        if current is not None:
            yield current
            return
        with self._pool.read() as db:
            yield db

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes of this thread that commit together, in one durable commit at the end
        (the receiver's group commit: one WAL sync for the instances of several
        associations)."""
        with self._pool.transaction() as db:
            self._batch.db = db
            try:
                yield
            finally:
                self._batch.db = None

    # ---- receiving -------------------------------------------------------------------

    def record_instance(
        self,
        sop_uid: str,
        series_uid: str,
        study_uid: str,
        path: Path,
        size: int,
        calling_aet: str = "",
        source: str = "push",
        now: float | None = None,
        acq_uid: str = "",
        description: str = "",
    ) -> str | None:
        """Record a received instance (a duplicate SOP uid replaces the earlier row).

        The series keeps the calling AE title and SeriesDescription of its first instance
        and counts every instance acknowledged for it; ``activity`` counts them per hour.

        Returns the previous path of that SOP instance if it was stored elsewhere (the
        caller removes it), else None.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            # any new instance re-opens the series; an upload in flight is finished by its
            # owner, which sees the newer last_received and re-queues it. One statement, so
            # replicas recording the same series at once neither collide nor undo each other.
            # The series row is locked first, as finish() does: no deadlock between them
            series = db.execute(
                "INSERT INTO series(series_uid, study_uid, state, source, calling_aet,"
                " first_seen, last_received, updated_at, received_count, description)"
                " VALUES (?,?,?,?,?,?,?,?,1,?)"
                " ON CONFLICT(series_uid) DO UPDATE SET"
                " state=CASE WHEN series.state = ? THEN series.state ELSE ? END,"
                " last_received=CASE WHEN excluded.last_received > series.last_received"
                "  THEN excluded.last_received ELSE series.last_received + 0.000001 END,"
                " updated_at=excluded.updated_at, attempts=0, next_attempt=0,"
                " received_count=series.received_count + 1,"
                " description=COALESCE(NULLIF(series.description, ''), excluded.description)"
                " RETURNING calling_aet",
                (
                    series_uid, study_uid, RECEIVING, source, calling_aet, now, now, now,
                    description, UPLOADING, RECEIVING,
                ),
            ).fetchone()  # fmt: skip
            old = db.execute(
                "SELECT path FROM instances WHERE sop_uid=?" + db.lock, (sop_uid,)
            ).fetchone()
            db.execute(
                "INSERT INTO instances(sop_uid, series_uid, path, size, received_at, acq_uid)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(sop_uid) DO UPDATE SET"
                " series_uid=excluded.series_uid, path=excluded.path, size=excluded.size,"
                " received_at=excluded.received_at, acq_uid=excluded.acq_uid",
                (sop_uid, series_uid, str(path), size, now, acq_uid),
            )
            self._count_activity(db, now, str(series["calling_aet"]), "received")
        if old is not None and old["path"] != str(path):
            return str(old["path"])
        return None

    def quarantine(self, path: Path, reason: str, series_uid: str = "", sop_uid: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO quarantine(path, reason, series_uid, sop_uid, at) VALUES (?,?,?,?,?)",
                (str(path), reason, series_uid, sop_uid, time.time()),
            )
            if sop_uid:
                db.execute("DELETE FROM instances WHERE sop_uid=?", (sop_uid,))

    def bump(self, name: str, by: int = 1) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO counters(name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def counters(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT name, value FROM counters").fetchall()
        return {r["name"]: int(r["value"]) for r in rows}

    # ---- series lifecycle ------------------------------------------------------------

    def due_series(self, quiet_seconds: float, now: float | None = None) -> list[str]:
        """Series that are ready for the pipeline: quiet long enough, or failed and due, or
        left by an uploader whose lease expired (a replica that died).

        Pulled series (source ``pull``) are never judged by quiet time: the pull side
        marks them ``complete`` once the retrieved count matches the peer's count.
        """
        now = time.time() if now is None else now
        with self._read() as db:
            rows = db.execute(
                f"SELECT series_uid FROM series WHERE {DUE} ORDER BY last_received",
                (now - quiet_seconds, now, now),
            ).fetchall()
        return [r["series_uid"] for r in rows]

    def mark_complete(self, series_uid: str) -> bool:
        """A pulled series was retrieved completely: hand it to the pipeline now."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE series SET state=?, updated_at=? WHERE series_uid=? AND state=?",
                (COMPLETE, time.time(), series_uid, RECEIVING),
            )
            return bool(cur.rowcount > 0)

    def hold(self, series_uid: str) -> bool:
        """Before a PULL retrieval: keep the pipeline off the series until ``mark_complete``
        (queued or failed goes back to ``receiving``, so no partial set is taken). False
        while an upload of it is in flight: retrieve later, after that upload ended."""
        with self._tx() as db:
            row = db.execute(
                "SELECT state FROM series WHERE series_uid=?" + db.lock, (series_uid,)
            ).fetchone()
            if row is not None and row["state"] == UPLOADING:
                return False
            db.execute(
                "UPDATE series SET state=?, updated_at=? WHERE series_uid=? AND state IN (?, ?)",
                (RECEIVING, time.time(), series_uid, COMPLETE, FAILED),
            )
        return True

    def claim(
        self, series_uid: str, quiet_seconds: float | None = None, now: float | None = None
    ) -> tuple[float, list[InstanceRow]] | None:
        """Take the upload lease of a series and move it to ``uploading``; return (its
        last_received, its instances), or None if it is finished or another live owner
        holds it. With ``quiet_seconds``, only if it is still due (the sweeper's view may
        be stale by the time it claims: another replica may have taken and finished it)."""
        now = time.time() if now is None else now
        params: tuple[float, ...]
        if quiet_seconds is None:
            condition, params = CLAIMABLE, (now,)
        else:
            condition, params = DUE, (now - quiet_seconds, now, now)
        with self._tx() as db:
            row = db.execute(
                "UPDATE series SET state=?, owner=?, lease_until=?, updated_at=?"
                f" WHERE series_uid=? AND {condition} RETURNING last_received",
                (UPLOADING, self.owner, now + self.lease_seconds, now, series_uid, *params),
            ).fetchone()
            if row is None:
                return None
            instances = db.execute(
                "SELECT * FROM instances WHERE series_uid=? ORDER BY sop_uid", (series_uid,)
            ).fetchall()
        return float(row["last_received"]), [InstanceRow(**dict(r)) for r in instances]

    def renew(self, series_uid: str, now: float | None = None) -> bool:
        """Extend this process's lease on a series; False if it is no longer ours."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "UPDATE series SET lease_until=? WHERE series_uid=? AND owner=? AND state=?",
                (now + self.lease_seconds, series_uid, self.owner, UPLOADING),
            )
            return bool(cur.rowcount > 0)

    @contextmanager
    def holding(self, series_uid: str) -> Iterator[None]:
        """Keep renewing the lease of a claimed series (every third of the lease) while the
        block runs, so a long upload keeps it and a dead process loses it."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(self.lease_seconds / 3):
                try:
                    if not self.renew(series_uid):
                        return
                except Exception:  # noqa: BLE001 - the database is away: try again
                    continue

        thread = threading.Thread(target=keep, name=f"lease-{series_uid[-12:]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def finish(
        self,
        series_uid: str,
        state: str,
        claimed_at: float,
        done: list[InstanceRow],
        placement: str = "",
        destination: str = "",
        error: str = "",
        retry_in: float = 0.0,
    ) -> tuple[bool, list[str]]:
        """End a pipeline pass. Instances in ``done`` leave the table (unless a newer copy
        of the same SOP instance arrived meanwhile); their paths are returned for removal.

        If instances arrived since the claim (last_received moved on), the series goes back
        to ``receiving`` instead, so the complete series is uploaded again. Returns True
        if the final state is ``state``. If this process lost the lease meanwhile (another
        replica took the series over), nothing changes and (False, []) is returned.
        """
        now = time.time()
        removed: list[str] = []
        with self._tx() as db:
            row = db.execute(
                "SELECT state, owner, last_received, attempts, uploaded_count, calling_aet"
                " FROM series WHERE series_uid=?" + db.lock,
                (series_uid,),
            ).fetchone()
            if row is None or row["state"] != UPLOADING or row["owner"] != self.owner:
                return False, removed
            for inst in done:
                cur = db.execute(
                    "DELETE FROM instances WHERE sop_uid=? AND received_at=? AND path=?",
                    (inst.sop_uid, inst.received_at, inst.path),
                )
                if cur.rowcount:
                    removed.append(inst.path)
            reopened = float(row["last_received"]) > claimed_at
            final = RECEIVING if reopened else state
            uploaded_count = int(row["uploaded_count"])
            uploaded_at = None
            if state == UPLOADED:
                uploaded_count += len(done)
                uploaded_at = now
            db.execute(
                "UPDATE series SET state=?, updated_at=?, last_error=?, placement=COALESCE(NULLIF(?, ''), placement),"
                " destination=COALESCE(NULLIF(?, ''), destination), uploaded_count=?,"
                " uploaded_at=COALESCE(?, uploaded_at), attempts=?, next_attempt=?,"
                " owner='', lease_until=0"
                " WHERE series_uid=?",
                (
                    final,
                    now,
                    error,
                    placement,
                    destination,
                    uploaded_count,
                    uploaded_at,
                    int(row["attempts"]) + (1 if state == FAILED else 0),
                    now + retry_in,
                    series_uid,
                ),
            )
            if final in (UPLOADED, FAILED, OPTED_OUT):
                self._count_activity(db, now, str(row["calling_aet"]), final)
        return final == state, removed

    def _count_activity(self, db: Database, now: float, aet: str, what: str) -> None:
        """One more event of kind ``what`` (received / uploaded / failed / opted_out) for
        this scanner in the hour of ``now``; rows older than ACTIVITY_KEEP_HOURS go."""
        column = {UPLOADED: "uploaded", FAILED: "failed", OPTED_OUT: "opted_out"}.get(what, what)
        assert column in ("received", "uploaded", "failed", "opted_out")
        hour = int(now // 3600)
        db.execute(
            f"INSERT INTO activity(hour, calling_aet, {column}) VALUES (?, ?, 1)"
            f" ON CONFLICT(hour, calling_aet) DO UPDATE SET {column} = activity.{column} + 1",
            (hour, aet),
        )
        if hour != self._activity_pruned_hour:
            db.execute("DELETE FROM activity WHERE hour < ?", (hour - ACTIVITY_KEEP_HOURS,))
            self._activity_pruned_hour = hour

    def record_acquisition(self, series_uid: str, acq_uid: str, acquisition_id: str) -> None:
        """Remember the Flywheel acquisition this series' ``acq_uid`` was uploaded to."""
        with self._tx() as db:
            row = db.execute(
                "SELECT acquisitions FROM series WHERE series_uid=?" + db.lock, (series_uid,)
            ).fetchone()
            if row is None:
                return
            try:
                ids = json.loads(row["acquisitions"] or "{}")
            except ValueError:
                ids = {}
            ids[acq_uid] = acquisition_id
            db.execute(
                "UPDATE series SET acquisitions=? WHERE series_uid=?",
                (json.dumps(ids, sort_keys=True), series_uid),
            )

    def recover(self) -> int:
        """At start-up: series left in ``uploading`` go back to ``complete``. With shared
        state only those whose lease expired (a live replica keeps its own)."""
        now = time.time()
        with self._tx() as db:
            if self.shared:
                cur = db.execute(
                    "UPDATE series SET state=?, owner='', lease_until=0, updated_at=?"
                    " WHERE state=? AND lease_until < ?",
                    (COMPLETE, now, UPLOADING, now),
                )
            else:
                cur = db.execute(
                    "UPDATE series SET state=?, owner='', lease_until=0, updated_at=?"
                    " WHERE state=?",
                    (COMPLETE, now, UPLOADING),
                )
            return int(cur.rowcount)

    def uploads_in_flight(self) -> list[dict[str, Any]]:
        """Series being uploaded: by which process (host:pid:id) and until when its lease
        holds (past it, another replica takes the series over)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT series_uid, owner, lease_until FROM series WHERE state=?"
                " ORDER BY lease_until",
                (UPLOADING,),
            ).fetchall()
        return [dict(r) for r in rows]

    def leased(self, now: float | None = None) -> set[str]:
        """Series some live process is uploading right now."""
        now = time.time() if now is None else now
        with self._read() as db:
            rows = db.execute(
                "SELECT series_uid FROM series WHERE state=? AND lease_until >= ?",
                (UPLOADING, now),
            ).fetchall()
        return {r["series_uid"] for r in rows}

    # ---- reading ---------------------------------------------------------------------

    def series(self, series_uid: str) -> SeriesRow | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM series WHERE series_uid=?", (series_uid,)).fetchone()
        return SeriesRow(**dict(row)) if row else None

    def all_series(self) -> list[SeriesRow]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM series ORDER BY first_seen").fetchall()
        return [SeriesRow(**dict(r)) for r in rows]

    def instances(self, series_uid: str | None = None) -> list[InstanceRow]:
        with self._read() as db:
            if series_uid is None:
                rows = db.execute("SELECT * FROM instances").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM instances WHERE series_uid=?", (series_uid,)
                ).fetchall()
        return [InstanceRow(**dict(r)) for r in rows]

    def recorded_paths(self, paths: list[str]) -> set[str]:
        """Which of ``paths`` an instance row points at now."""
        found: set[str] = set()
        with self._read() as db:
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                marks = ",".join("?" for _ in chunk)
                rows = db.execute(
                    f"SELECT path FROM instances WHERE path IN ({marks})", chunk
                ).fetchall()
                found.update(r["path"] for r in rows)
        return found

    def count_by_state(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM series GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({r["state"]: int(r["n"]) for r in rows})
        return counts

    def queue_depth(self) -> int:
        """Instances waiting in the spool."""
        with self._read() as db:
            row = db.execute("SELECT COUNT(*) AS n FROM instances").fetchone()
        return int(row["n"])

    def quarantined(self) -> list[dict[str, Any]]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM quarantine ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def failures(self) -> list[dict[str, Any]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT series_uid, state, attempts, last_error, updated_at FROM series"
                " WHERE last_error != '' AND state NOT IN (?, ?)",
                (UPLOADED, OPTED_OUT),
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- per scanner (calling AE title of a series' first instance) -------------------

    def scanner_counts(self, since: float | None = None) -> dict[str, dict[str, Any]]:
        """Per calling AE: series by outcome and placement, instances received, last
        received (epoch seconds). With ``since``: only what happened from then on (received
        instances by whole hours from ``activity``; series by when they were uploaded,
        failed or opted out).

        ``failed_series`` are series parked as failed or abandoned, and failed ones being
        retried right now (``uploading`` with the last error kept), so the count does not
        blink while a failing series is retried."""
        cutoff = 0.0 if since is None else since
        with self._read() as db:
            rows = db.execute(
                "SELECT calling_aet,"
                f" {_count('state = ? AND COALESCE(uploaded_at, 0) >= ?')} AS uploaded_series,"
                f" {_count(_FAILING + ' AND updated_at >= ?')} AS failed_series,"
                f" {_count('state = ? AND updated_at >= ?')} AS opted_out_series,"
                f" {_count(_PLACED.format('unknown'))} AS unknown,"
                f" {_count(_PLACED.format('unsorted'))} AS unsorted,"
                f" {_count(_PLACED.format('routed'))} AS routed,"
                " SUM(received_count) AS received_instances,"
                " MAX(last_received) AS last_received"
                " FROM series GROUP BY calling_aet",
                (
                    UPLOADED, cutoff, FAILED, ABANDONED, UPLOADING, cutoff, OPTED_OUT, cutoff,
                    cutoff, cutoff, cutoff,
                ),
            ).fetchall()  # fmt: skip
            received: dict[str, int] | None = None
            if since is not None:
                hour = int(since // 3600)
                received = {
                    r["calling_aet"]: int(r["n"])
                    for r in db.execute(
                        "SELECT calling_aet, SUM(received) AS n FROM activity WHERE hour >= ?"
                        " GROUP BY calling_aet",
                        (hour,),
                    )
                }
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            counts = {k: int(r[k] or 0) for k in SCANNER_KEYS if k != "last_received"}
            last = float(r["last_received"] or 0)
            if received is not None:
                counts["received_instances"] = received.get(r["calling_aet"], 0)
                if last < cutoff:
                    last = 0.0
                if not any(counts.values()) and not last:
                    continue
            out[str(r["calling_aet"])] = {**counts, "last_received": last or None}
        return out

    def recent_series(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` series by when they last received an instance."""
        with self._read() as db:
            rows = db.execute(
                "SELECT series_uid, calling_aet, source, state, placement, destination,"
                " description, received_count, last_received, uploaded_at, last_error"
                " FROM series ORDER BY last_received DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(r) for r in rows]

    def activity(self, since: float) -> dict[int, dict[str, int]]:
        """{hour (epoch seconds // 3600): {received, uploaded, failed, opted_out}} from
        ``since``'s hour on, summed over scanners."""
        with self._read() as db:
            rows = db.execute(
                "SELECT hour, SUM(received) AS received, SUM(uploaded) AS uploaded,"
                " SUM(failed) AS failed, SUM(opted_out) AS opted_out FROM activity"
                " WHERE hour >= ? GROUP BY hour",
                (int(since // 3600),),
            ).fetchall()
        return {
            int(r["hour"]): {k: int(r[k]) for k in ("received", "uploaded", "failed", "opted_out")}
            for r in rows
        }

    def summary(self) -> dict[str, Any]:
        """What ``fwagent status`` prints."""
        return {
            "series": self.count_by_state(),
            "instances_waiting": self.queue_depth(),
            "counters": self.counters(),
            "failures": self.failures(),
            "quarantine": self.quarantined(),
            "uploading": self.uploads_in_flight(),
        }


def _count(condition: str) -> str:
    """Rows meeting ``condition``, in SQL that SQLite and PostgreSQL both read."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


# a series parked as failed/abandoned, or being retried after a failure
_FAILING = "(state IN (?, ?) OR (state = ? AND last_error <> ''))"
# where an uploaded series landed; a followed session counts as routed
_PLACED = (
    "CASE placement WHEN 'existing session followed' THEN 'routed' ELSE placement END = '{}'"
    " AND COALESCE(uploaded_at, 0) >= ?"
)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
