"""Flywheel side of the Q/R service, through flywheel-sdk: which DICOM files the key can
see (``GET /files``, filtered by type and modification time, paged by id), downloading
one, and reading the headers of the instances it holds (a zip per acquisition as the
agent uploads them, or a single DICOM file)."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from fwmapping.site import quote_filter_value
from pydicom.errors import InvalidDicomError

from .attributes import header_values
from .index import Source

log = logging.getLogger(__name__)

PAGE = 500

InstanceRow = tuple[str, str, dict[str, Any]]  # (zip member or "", transfer syntax, values)


def list_dicom_files(client: Any, since: str = "") -> Iterator[Source]:
    """DICOM files visible to the key, modified at or after ``since`` (all when empty)."""
    base = "type=dicom"
    if since:
        base += f",modified>={quote_filter_value(since)}"
    after = ""
    while True:
        kwargs: dict[str, Any] = {"filter": base, "limit": PAGE}
        if after:
            kwargs["after_id"] = after
        response = client.get_all_files(_preload_content=False, **kwargs)
        try:
            page = json.loads(response.read() or b"[]")
        finally:
            response.close()
        results = page.get("results", []) if isinstance(page, dict) else page
        for doc in results:
            source = _source(doc)
            if source is not None:
                yield source
        if len(results) < PAGE:
            return
        after = str(results[-1].get("file_id") or results[-1].get("_id"))


def _source(doc: dict[str, Any]) -> Source | None:
    parent = doc.get("parent_ref") or {}
    file_id = doc.get("file_id") or doc.get("_id")
    if not file_id or not parent.get("id") or not doc.get("name"):
        return None
    return Source(
        file_id=str(file_id),
        version=int(doc.get("version") or 1),
        parent_id=str(parent["id"]),
        name=str(doc["name"]),
        modified=str(doc.get("modified") or ""),
    )


def download(client: Any, source: Source, dest: Path) -> Path:
    """The file's bytes into ``dest`` (raises the SDK's ApiException on failure)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    client.download_file_from_container(source.parent_id, source.name, str(dest))
    return dest


def read_instances(path: Path, is_zip: bool) -> list[InstanceRow]:
    """Header values of every DICOM instance in the file (non-DICOM members skipped)."""
    if not is_zip:
        row = _read_one(path, "")
        return [row] if row else []
    rows: list[InstanceRow] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                with zf.open(info) as fh:
                    row = _read_one(fh, info.filename)
                if row:
                    rows.append(row)
    except zipfile.BadZipFile:
        log.warning("qr: %s is not a readable zip", path.name)
    return rows


def _read_one(source: Any, member: str) -> InstanceRow | None:
    try:
        ds = pydicom.dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
        return None
    values = header_values(ds)
    if not values.get("SOPInstanceUID") or not values.get("StudyInstanceUID"):
        return None
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not values.get("SOPClassUID") and meta is not None:
        values["SOPClassUID"] = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") or None
    return member, ts, values


def open_instance(path: Path, member: str) -> pydicom.Dataset:
    """The whole dataset of one instance (pixel data included), as stored."""
    if not member:
        return pydicom.dcmread(path)
    with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
        return pydicom.dcmread(fh)
