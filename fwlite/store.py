"""SQLite persistence for fwlite: containers as JSON documents, file bytes on disk.

One connection, one lock: every read-modify-write runs under the lock, so two uploads
into the same new session can never create it twice. Parents are not stored per
container; they are derived by walking the ``parent`` links, so a move only updates
one row and every descendant follows.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

TYPES = ("group", "project", "subject", "session", "acquisition")
PARENT_TYPE = {
    "project": "group",
    "subject": "project",
    "session": "subject",
    "acquisition": "session",
}
CHILD_TYPE = {
    "group": "project",
    "project": "subject",
    "subject": "session",
    "session": "acquisition",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    parent TEXT,
    label TEXT,
    uid TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_parent ON containers(type, parent, id);
CREATE INDEX IF NOT EXISTS containers_uid ON containers(type, uid);
CREATE TABLE IF NOT EXISTS files (
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    file_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (container, name)
);
CREATE INDEX IF NOT EXISTS files_id ON files(file_id);
"""


class StoreError(Exception):
    """A request the store refuses; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class IdMaker:
    """24-hex ObjectId-like ids: seconds, a per-process random part, a counter."""

    def __init__(self) -> None:
        self._random = os.urandom(5).hex()
        self._counter = int.from_bytes(os.urandom(3), "big")
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._counter = (self._counter + 1) % 0xFFFFFF
            return f"{int(time.time()):08x}{self._random}{self._counter:06x}"


class Store:
    """Containers and files of one fwlite site, persisted under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.new_id = IdMaker()
        self.db = sqlite3.connect(
            data_dir / "fwlite.sqlite", check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if self.get("unknown") is None:
            self.insert("group", None, {"label": "Unknown"}, cid="unknown")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- containers -------------------------------------------------------------------

    def _row_to_doc(self, row: tuple[str, str, str | None, str]) -> dict[str, Any]:
        cid, ctype, parent, doc = row
        data: dict[str, Any] = json.loads(doc)
        data["_id"] = cid
        data["container_type"] = ctype
        data["_parent"] = parent
        return data

    def get(self, cid: str, ctype: str | None = None) -> dict[str, Any] | None:
        """The stored document (with _id, container_type, _parent) or None."""
        row = self.db.execute(
            "SELECT id, type, parent, doc FROM containers WHERE id = ?", (cid,)
        ).fetchone()
        if row is None or (ctype is not None and row[1] != ctype):
            return None
        return self._row_to_doc(row)

    def require(self, cid: str, ctype: str | None = None) -> dict[str, Any]:
        doc = self.get(cid, ctype)
        if doc is None:
            raise StoreError(404, f"{ctype or 'container'} '{cid}' not found")
        return doc

    def insert(
        self, ctype: str, parent: str | None, fields: dict[str, Any], cid: str | None = None
    ) -> str:
        cid = cid or self.new_id()
        stamp = now_iso()
        doc = {"info": {}, "tags": [], "notes": [], **fields, "created": stamp, "modified": stamp}
        doc.pop("_id", None)
        with self.lock:
            try:
                self.db.execute(
                    "INSERT INTO containers (id, type, parent, label, uid, doc) VALUES (?,?,?,?,?,?)",
                    (cid, ctype, parent, doc.get("label"), doc.get("uid"), json.dumps(doc)),
                )
            except sqlite3.IntegrityError:
                raise StoreError(409, f"{ctype} '{cid}' already exists") from None
        return cid

    def save(self, doc: dict[str, Any]) -> None:
        """Write back a document obtained from get() (after changing it)."""
        body = {k: v for k, v in doc.items() if k not in ("_id", "container_type", "_parent")}
        body["modified"] = now_iso()
        with self.lock:
            self.db.execute(
                "UPDATE containers SET parent = ?, label = ?, uid = ?, doc = ? WHERE id = ?",
                (doc["_parent"], body.get("label"), body.get("uid"), json.dumps(body), doc["_id"]),
            )

    def children(self, ctype: str, parent: str | None) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, type, parent, doc FROM containers WHERE type = ? AND parent IS ? ORDER BY id",
            (ctype, parent),
        ).fetchall()
        return [self._row_to_doc(r) for r in rows]

    def child_ids(self, ctype: str, parents: list[str]) -> list[str]:
        if not parents:
            return []
        marks = ",".join("?" * len(parents))
        rows = self.db.execute(
            f"SELECT id FROM containers WHERE type = ? AND parent IN ({marks})",
            (ctype, *parents),
        ).fetchall()
        return [r[0] for r in rows]

    def iter_type(
        self, ctype: str, after_id: str | None = None, parents: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Containers of one type ordered by id, optionally under given parents."""
        sql = "SELECT id, type, parent, doc FROM containers WHERE type = ?"
        args: list[Any] = [ctype]
        if after_id:
            sql += " AND id > ?"
            args.append(after_id)
        if parents is not None:
            if not parents:
                return
            sql += f" AND parent IN ({','.join('?' * len(parents))})"
            args.extend(parents)
        sql += " ORDER BY id"
        rows = self.db.execute(sql, args).fetchall()
        for row in rows:
            yield self._row_to_doc(row)

    def find_child(self, ctype: str, parent: str, label: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, type, parent, doc FROM containers WHERE type = ? AND parent = ? AND label = ? ORDER BY id LIMIT 1",
            (ctype, parent, label),
        ).fetchone()
        return self._row_to_doc(row) if row else None

    def find_uid(self, ctype: str, uid: str, parent: str | None = None) -> dict[str, Any] | None:
        sql = "SELECT id, type, parent, doc FROM containers WHERE type = ? AND uid = ?"
        args: list[Any] = [ctype, uid]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        row = self.db.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()
        return self._row_to_doc(row) if row else None

    def lineage(self, doc: dict[str, Any]) -> dict[str, str | None]:
        """{group, project, subject, session, acquisition} ids above (and at) doc."""
        out: dict[str, str | None] = dict.fromkeys(TYPES)
        out[doc["container_type"]] = doc["_id"]
        ctype, parent = doc["container_type"], doc["_parent"]
        while parent is not None and ctype in PARENT_TYPE:
            ctype = PARENT_TYPE[ctype]
            out[ctype] = parent
            row = self.db.execute(
                "SELECT parent FROM containers WHERE id = ?", (parent,)
            ).fetchone()
            parent = row[0] if row else None
        return out

    def delete_tree(self, cid: str) -> int:
        """Delete a container with its descendants and files; returns containers deleted."""
        with self.lock:
            doc = self.require(cid)
            todo, count = [doc], 0
            while todo:
                current = todo.pop()
                child = CHILD_TYPE.get(current["container_type"])
                if child:
                    todo.extend(self.children(child, current["_id"]))
                for entry in self.files_of(current["_id"]):
                    self.delete_file(current["_id"], entry["name"])
                self.db.execute("DELETE FROM containers WHERE id = ?", (current["_id"],))
                count += 1
            return count

    # -- files --------------------------------------------------------------------------

    def iter_files(self, after_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(container id, file doc) of every file, ordered by file id, after ``after_id``."""
        rows = self.db.execute(
            "SELECT container, doc FROM files WHERE file_id > ? ORDER BY file_id",
            (after_id or "",),
        ).fetchall()
        for container_id, doc in rows:
            yield container_id, json.loads(doc)

    def files_of(self, cid: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT doc FROM files WHERE container = ? ORDER BY name", (cid,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def file_count(self, cid: str) -> int:
        return int(
            self.db.execute("SELECT COUNT(*) FROM files WHERE container = ?", (cid,)).fetchone()[0]
        )

    def get_file(self, cid: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT doc FROM files WHERE container = ? AND name = ?", (cid, name)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def require_file(self, cid: str, name: str) -> dict[str, Any]:
        entry = self.get_file(cid, name)
        if entry is None:
            raise StoreError(404, f"file '{name}' not found in container '{cid}'")
        return entry

    def file_by_id(self, file_id: str) -> tuple[str, dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT container, doc FROM files WHERE file_id = ?", (file_id,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def file_path(self, entry: dict[str, Any]) -> Path:
        return self.files_dir / f"{entry['file_id']}.v{entry['version']}"

    def put_file(
        self, container: dict[str, Any], name: str, source: BinaryIO, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Store the bytes read from source as file ``name``; the same name replaces."""
        digest = hashlib.sha256()
        size = 0
        with self.lock:
            old = self.get_file(container["_id"], name)
            stamp = now_iso()
            entry: dict[str, Any] = {
                "name": name,
                "file_id": old["file_id"] if old else self.new_id(),
                "version": old["version"] + 1 if old else 1,
                "type": guess_type(name),
                "mimetype": guess_mimetype(name),
                "modality": None,
                "classification": {},
                "tags": [],
                "info": {},
                "origin": {"type": "user", "id": "admin@fwlite.local"},
                "created": old["created"] if old else stamp,
                "modified": stamp,
                "replaced": stamp if old else None,
                "parent_ref": {"type": container["container_type"], "id": container["_id"]},
            }
            entry.update({k: v for k, v in fields.items() if v is not None and k not in ("name",)})
            entry["_id"] = entry["file_id"]
            target = self.file_path(entry)
            tmp = target.with_suffix(".part")
            with tmp.open("wb") as dst:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
            tmp.replace(target)
            entry["size"] = size
            entry["hash"] = digest.hexdigest()
            self.db.execute(
                "INSERT OR REPLACE INTO files (container, name, file_id, doc) VALUES (?,?,?,?)",
                (container["_id"], name, entry["file_id"], json.dumps(entry)),
            )
            if old:
                self.file_path(old).unlink(missing_ok=True)
            return entry

    def save_file(self, cid: str, entry: dict[str, Any]) -> None:
        entry["modified"] = now_iso()
        with self.lock:
            self.db.execute(
                "UPDATE files SET doc = ? WHERE container = ? AND name = ?",
                (json.dumps(entry), cid, entry["name"]),
            )

    def delete_file(self, cid: str, name: str) -> None:
        with self.lock:
            entry = self.require_file(cid, name)
            self.db.execute("DELETE FROM files WHERE container = ? AND name = ?", (cid, name))
            self.file_path(entry).unlink(missing_ok=True)


TYPE_SUFFIXES = (
    (".dicom.zip", "dicom"),
    (".dcm.zip", "dicom"),
    (".dcm", "dicom"),
    (".dicom", "dicom"),
    (".nii.gz", "nifti"),
    (".nii", "nifti"),
    (".csv", "tabular data"),
    (".tsv", "tabular data"),
    (".json", "source code"),
    (".txt", "text"),
    (".log", "log"),
    (".pdf", "pdf"),
    (".png", "image"),
    (".jpg", "image"),
    (".zip", "archive"),
    (".tar", "archive"),
    (".tar.gz", "archive"),
)


def guess_type(name: str) -> str | None:
    lower = name.lower()
    for suffix, ftype in TYPE_SUFFIXES:
        if lower.endswith(suffix):
            return ftype
    return None


def guess_mimetype(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".zip"):
        return "application/zip"
    if lower.endswith(".csv"):
        return "text/csv"
    if lower.endswith(".json"):
        return "application/json"
    if lower.endswith(".txt") or lower.endswith(".log"):
        return "text/plain"
    return "application/octet-stream"
