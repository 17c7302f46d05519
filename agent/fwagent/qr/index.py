"""The local SQLite index the Q/R service answers from.

One row per instance (the Flywheel file and zip member it lives in, and its header's
indexed attributes), and per series, study and patient one row recomputed whenever an
instance under it changes, so a C-FIND is one indexed SELECT whatever the site's size.
Rows are keyed by UID: a study or series is answered once however many files hold it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .attributes import (
    ALL_HEADER,
    COMPUTED,
    HEADER_KEYWORDS,
    IMAGE,
    PATIENT,
    SERIES,
    STUDY,
    vr_of,
)
from .matching import RANGE_VRS, shadow_value


def _shadowed(keywords: Iterable[str]) -> list[str]:
    return [f"_n_{k}" for k in keywords if vr_of(k) in RANGE_VRS]


def _cols(keywords: Iterable[str]) -> list[str]:
    keywords = list(keywords)
    return [*keywords, *_shadowed(keywords)]


PATIENT_COLS = _cols(HEADER_KEYWORDS[PATIENT])
STUDY_COLS = _cols(HEADER_KEYWORDS[STUDY])
SERIES_COLS = _cols(HEADER_KEYWORDS[SERIES])
INSTANCE_COLS = _cols(ALL_HEADER)


def _q(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources (
    file_id TEXT PRIMARY KEY, version INTEGER, parent_id TEXT, name TEXT, modified TEXT);
CREATE TABLE IF NOT EXISTS instances (
    file_id TEXT NOT NULL, member TEXT NOT NULL, ts TEXT, {_q(INSTANCE_COLS)},
    PRIMARY KEY (file_id, member));
CREATE INDEX IF NOT EXISTS instances_sop ON instances ("SOPInstanceUID");
CREATE INDEX IF NOT EXISTS instances_series ON instances ("SeriesInstanceUID");
CREATE INDEX IF NOT EXISTS instances_study ON instances ("StudyInstanceUID");
CREATE INDEX IF NOT EXISTS instances_patient ON instances ("PatientID");
CREATE TABLE IF NOT EXISTS series (
    {_q(SERIES_COLS)}, "StudyInstanceUID" TEXT, "NumberOfSeriesRelatedInstances" INTEGER,
    PRIMARY KEY ("SeriesInstanceUID"));
CREATE INDEX IF NOT EXISTS series_study ON series ("StudyInstanceUID");
CREATE TABLE IF NOT EXISTS studies (
    {_q([*PATIENT_COLS, *STUDY_COLS])}, "ModalitiesInStudy" TEXT,
    "NumberOfStudyRelatedSeries" INTEGER, "NumberOfStudyRelatedInstances" INTEGER,
    PRIMARY KEY ("StudyInstanceUID"));
CREATE INDEX IF NOT EXISTS studies_patient ON studies ("PatientID");
CREATE INDEX IF NOT EXISTS studies_date ON studies ("_n_StudyDate");
CREATE TABLE IF NOT EXISTS patients (
    {_q(PATIENT_COLS)}, "NumberOfPatientRelatedStudies" INTEGER,
    "NumberOfPatientRelatedSeries" INTEGER, "NumberOfPatientRelatedInstances" INTEGER,
    PRIMARY KEY ("PatientID"));
"""

# the relation each level is queried from, and the columns it can answer
RELATIONS = {
    PATIENT: "patients",
    STUDY: "studies",
    SERIES: 'series JOIN studies USING ("StudyInstanceUID")',
    IMAGE: "instances",
}
RELATION_COLUMNS = {
    PATIENT: {*HEADER_KEYWORDS[PATIENT], *COMPUTED[PATIENT]},
    STUDY: {*HEADER_KEYWORDS[PATIENT], *HEADER_KEYWORDS[STUDY], *COMPUTED[STUDY]},
    SERIES: {
        *HEADER_KEYWORDS[PATIENT],
        *HEADER_KEYWORDS[STUDY],
        *COMPUTED[STUDY],
        *HEADER_KEYWORDS[SERIES],
        *COMPUTED[SERIES],
    },
    IMAGE: set(ALL_HEADER),
}


@dataclass(frozen=True)
class Source:
    """One Flywheel file holding DICOM (a ``.dicom.zip`` or a single DICOM file)."""

    file_id: str
    version: int
    parent_id: str
    name: str
    modified: str = ""

    @property
    def is_zip(self) -> bool:
        return self.name.lower().endswith(".zip")


@dataclass(frozen=True)
class Located:
    """Where one instance to retrieve lives."""

    sop_uid: str
    sop_class: str
    transfer_syntax: str
    source: Source
    member: str


def key_fingerprint(api_key: str) -> str:
    """Rows are only valid for the key that listed them (what that key may see)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class Index:
    def __init__(self, path: Path, api_key: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.RLock()
        with self.lock:
            self.db.executescript(SCHEMA)
            fingerprint = key_fingerprint(api_key)
            if self.get_meta("key") not in (None, fingerprint):
                self.clear()  # another key: what it listed may not be visible to this one
            self.set_meta("key", fingerprint)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def clear(self) -> None:
        with self.lock:
            for table in ("sources", "instances", "series", "studies", "patients"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE key != 'key'")

    # -- sources ---------------------------------------------------------------------------
    def sources(self) -> dict[str, Source]:
        with self.lock:
            rows = self.db.execute(
                "SELECT file_id, version, parent_id, name, modified FROM sources"
            ).fetchall()
        return {r[0]: Source(r[0], int(r[1]), r[2], r[3], r[4] or "") for r in rows}

    def put_source(
        self, source: Source, instances: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> None:
        """Replace everything indexed from ``source`` by ``instances`` ((member, transfer
        syntax, header values) each), then recompute the series/studies/patients touched."""
        with self.lock, self._transaction():
            touched = self._drop_source(source.file_id)
            self.db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)",
                (source.file_id, source.version, source.parent_id, source.name, source.modified),
            )
            sql = (
                f"INSERT OR REPLACE INTO instances (file_id, member, ts, {_q(INSTANCE_COLS)}) "
                f"VALUES ({', '.join('?' * (3 + len(INSTANCE_COLS)))})"
            )
            for member, ts, values in instances:
                row = [values.get(k) for k in ALL_HEADER]
                row += [
                    shadow_value(vr_of(k[3:]), values.get(k[3:])) for k in _shadowed(ALL_HEADER)
                ]
                self.db.execute(sql, [source.file_id, member, ts, *row])
                touched[0].add(values.get("SeriesInstanceUID") or "")
                touched[1].add(values.get("StudyInstanceUID") or "")
                touched[2].add(values.get("PatientID") or "")
            self._recompute(*touched)

    def remove_source(self, file_id: str) -> None:
        with self.lock, self._transaction():
            self._recompute(*self._drop_source(file_id))

    def _drop_source(self, file_id: str) -> tuple[set[str], set[str], set[str]]:
        rows = self.db.execute(
            'SELECT DISTINCT "SeriesInstanceUID", "StudyInstanceUID", "PatientID" '
            "FROM instances WHERE file_id = ?",
            (file_id,),
        ).fetchall()
        self.db.execute("DELETE FROM instances WHERE file_id = ?", (file_id,))
        self.db.execute("DELETE FROM sources WHERE file_id = ?", (file_id,))
        return (
            {r[0] or "" for r in rows},
            {r[1] or "" for r in rows},
            {r[2] or "" for r in rows},
        )

    def _transaction(self) -> Any:
        db = self.db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN")

            def __exit__(self, exc_type: Any, *_: Any) -> None:
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # -- aggregates ------------------------------------------------------------------------
    def _recompute(self, series: set[str], studies: set[str], patients: set[str]) -> None:
        for uid in series:
            self.db.execute('DELETE FROM series WHERE "SeriesInstanceUID" = ?', (uid,))
            self.db.execute(
                f'INSERT INTO series ({_q(SERIES_COLS)}, "StudyInstanceUID", '
                f'"NumberOfSeriesRelatedInstances") '
                f'SELECT {_q(SERIES_COLS)}, "StudyInstanceUID", '
                f'(SELECT COUNT(DISTINCT "SOPInstanceUID") FROM instances '
                f' WHERE "SeriesInstanceUID" = ?) '
                f'FROM instances WHERE "SeriesInstanceUID" = ? '
                f'ORDER BY CAST("InstanceNumber" AS INTEGER) LIMIT 1',
                (uid, uid),
            )
        cols = [*PATIENT_COLS, *STUDY_COLS]
        for uid in studies:
            self.db.execute('DELETE FROM studies WHERE "StudyInstanceUID" = ?', (uid,))
            self.db.execute(
                f'INSERT INTO studies ({_q(cols)}, "ModalitiesInStudy", '
                f'"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances") '
                f"SELECT {_q(cols)}, "
                f"(SELECT group_concat(m, '\\') FROM (SELECT DISTINCT \"Modality\" AS m "
                f' FROM instances WHERE "StudyInstanceUID" = ? AND "Modality" IS NOT NULL '
                f" ORDER BY m)), "
                f'(SELECT COUNT(DISTINCT "SeriesInstanceUID") FROM instances '
                f' WHERE "StudyInstanceUID" = ?), '
                f'(SELECT COUNT(DISTINCT "SOPInstanceUID") FROM instances '
                f' WHERE "StudyInstanceUID" = ?) '
                f'FROM instances WHERE "StudyInstanceUID" = ? LIMIT 1',
                (uid, uid, uid, uid),
            )
        for pid in patients:
            self.db.execute('DELETE FROM patients WHERE "PatientID" = ?', (pid,))
            self.db.execute(
                f'INSERT INTO patients ({_q(PATIENT_COLS)}, "NumberOfPatientRelatedStudies", '
                f'"NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances") '
                f"SELECT {_q(PATIENT_COLS)}, "
                f'(SELECT COUNT(*) FROM studies WHERE "PatientID" = ?), '
                f'(SELECT COALESCE(SUM("NumberOfStudyRelatedSeries"), 0) FROM studies '
                f' WHERE "PatientID" = ?), '
                f'(SELECT COALESCE(SUM("NumberOfStudyRelatedInstances"), 0) FROM studies '
                f' WHERE "PatientID" = ?) '
                f'FROM studies WHERE "PatientID" = ? LIMIT 1',
                (pid, pid, pid, pid),
            )

    # -- queries ---------------------------------------------------------------------------
    def find(
        self,
        level: str,
        columns: Sequence[str],
        conditions: Sequence[tuple[str, list[object]]],
        limit: int,
    ) -> list[dict[str, Any]]:
        """Rows of ``level`` matching every condition, ``columns`` of each (at most limit)."""
        where = " AND ".join(f"({c})" for c, _ in conditions) or "1"
        params = [p for _, ps in conditions for p in ps]
        group = ' GROUP BY "SOPInstanceUID"' if level == IMAGE else ""
        select = _q(columns) if columns else "1"
        sql = f"SELECT {select} FROM {RELATIONS[level]} WHERE {where}{group} LIMIT ?"
        with self.lock:
            rows = self.db.execute(sql, [*params, limit]).fetchall()
        return [dict(zip(columns, row, strict=False)) for row in rows]

    def locate(self, conditions: Sequence[tuple[str, list[object]]]) -> list[Located]:
        """Every instance matching ``conditions`` (each SOP Instance UID once)."""
        where = " AND ".join(f"({c})" for c, _ in conditions) or "1"
        params = [p for _, ps in conditions for p in ps]
        sql = (
            'SELECT "SOPInstanceUID", "SOPClassUID", ts, member, s.file_id, s.version, '
            "s.parent_id, s.name, s.modified FROM instances JOIN sources s USING (file_id) "
            f'WHERE {where} GROUP BY "SOPInstanceUID" ORDER BY s.file_id, member'
        )
        with self.lock:
            rows = self.db.execute(sql, params).fetchall()
        return [
            Located(r[0], r[1] or "", r[2] or "", Source(r[4], int(r[5]), r[6], r[7], r[8]), r[3])
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                t: int(self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("sources", "instances", "series", "studies", "patients")
            }
