"""Reading DICOM headers without pixel data, and reading values out of them."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError


class NotDicomError(ValueError):
    """The file is not DICOM, or too damaged to read its header."""


def read_header(path: str | Path | BinaryIO) -> Dataset:
    """The file's header, stopping before the pixel data.

    Files without the 128-byte preamble (written by some older scanners) are accepted when
    they parse as a dataset that has a SOPInstanceUID or StudyInstanceUID.
    """
    return _read(path, stop_before_pixels=True)


def read_dataset(source: str | Path | BinaryIO, defer_size: int | None = None) -> Dataset:
    """The whole file (pixel data included) under the same rule as :func:`read_header`;
    values longer than ``defer_size`` bytes stay on disk until used (paths only)."""
    return _read(source, stop_before_pixels=False, defer_size=defer_size)


def _read(
    source: str | Path | BinaryIO, *, stop_before_pixels: bool, defer_size: int | None = None
) -> Dataset:
    def attempt(force: bool) -> Dataset:
        if not isinstance(source, (str, Path)):
            source.seek(0)
        return pydicom.dcmread(
            source, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=force
        )

    name = source if isinstance(source, (str, Path)) else getattr(source, "name", "data")
    try:
        return attempt(force=False)
    except InvalidDicomError:
        pass
    except (OSError, EOFError) as exc:
        raise NotDicomError(f"{name}: cannot read ({exc})") from None
    except Exception as exc:  # pydicom raises many types on damaged files
        raise NotDicomError(f"{name}: damaged DICOM header ({type(exc).__name__}: {exc})") from None
    try:
        ds = attempt(force=True)
        if "SOPInstanceUID" in ds or "StudyInstanceUID" in ds:
            return ds
    except Exception:  # noqa: BLE001 - anything unreadable here simply is not DICOM
        pass
    raise NotDicomError(f"{name}: not a DICOM file")


def read_first_header(path: str | Path) -> Dataset:
    """The header of a DICOM file, or of the first DICOM member (by name) of a zip.

    Flywheel keeps an acquisition's series as one zip: only the first instance's header
    bytes are read, never the pixel data or the other members.
    """
    if not zipfile.is_zipfile(path):
        return read_header(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotDicomError(f"{path}: not a readable zip ({exc})") from None
    with archive:
        names = sorted(info.filename for info in archive.infolist() if not info.is_dir())
        for name in names:
            with archive.open(name) as member:
                try:
                    ds = pydicom.dcmread(member, stop_before_pixels=True)
                except Exception:  # noqa: BLE001 - not DICOM: try the next member
                    continue
            if "SOPInstanceUID" in ds or "StudyInstanceUID" in ds:
                return ds
    raise NotDicomError(f"{path}: no DICOM file in the zip")


def text(ds: Dataset, keyword: str) -> str:
    """A header value as plain text: missing -> "", multi-valued joined with backslashes."""
    value: Any = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.DataElement):  # pragma: no cover - ds.get returns values
        value = value.value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(item) for item in value).strip()
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace").strip()
    return str(value).strip()
