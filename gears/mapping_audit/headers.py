"""The DICOM header of an acquisition's file: from file info, else the zip's first instance.

Flywheel's classifier (and the agent's upload) keep the header as keyword -> value under
``file.info["header"]["dicom"]``. When that is missing the header is read from the first
DICOM member of the zip, stopping before the pixel data.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydicom
from fwmapping import NotDicomError, read_first_header
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """A header value as JSON-like plain data."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace")
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)


def header_from_dataset(ds: Dataset) -> dict[str, Any]:
    """keyword -> value for every non-sequence, non-binary element of ``ds``."""
    out: dict[str, Any] = {}
    for element in ds:
        if not element.keyword or element.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN"):
            continue
        out[element.keyword] = _plain(element.value)
    return out


def dataset_from_header(header: Mapping[str, Any]) -> Dataset:
    """A pydicom Dataset from a keyword -> value header dict, so fwmapping can read it.

    Values it cannot hold (unknown keywords, sequences, odd types) are left out.
    """
    ds = Dataset()
    for keyword, value in header.items():
        if value is None or isinstance(value, Mapping) or tag_for_keyword(keyword) is None:
            if keyword == "PatientName" and isinstance(value, Mapping):
                value = value.get("Alphabetic")  # DICOM JSON person name
            else:
                continue
        if isinstance(value, list) and any(isinstance(item, (Mapping, list)) for item in value):
            continue
        try:
            setattr(ds, keyword, value)
        except (TypeError, ValueError, OverflowError) as exc:
            log.debug("header value %s=%r left out: %s", keyword, value, exc)
    return ds


class HeaderFetcher:
    """Reads headers of files on the site that carry none in their info.

    Tries the zip member endpoints first (only the first instance travels); a site without
    them gets whole files downloaded to a temporary directory, one at a time, and is not
    asked for zip members again during this run.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.zip_members = True
        self.downloads = 0

    def _from_member(self, acquisition_id: str, file_name: str, tmp: Path) -> Dataset | None:
        try:
            zip_info = self.client.get_acquisition_file_zip_info(acquisition_id, file_name)
            members = sorted(
                str(member.get("path"))
                for member in (zip_info.get("members") or [])
                if not str(member.get("path", "")).endswith("/")
            )
        except Exception as exc:  # noqa: BLE001 - no zip member support: whole file
            log.info("zip member listing unavailable (%s); downloading whole files", exc)
            self.zip_members = False
            return None
        for name in members[:3]:  # the first DICOM among the first few members
            dest = tmp / "member"
            self.client.download_file_from_acquisition(
                acquisition_id, file_name, str(dest), member=name
            )
            self.downloads += 1
            try:
                return read_first_header(dest)  # a site ignoring member= sends the zip
            except NotDicomError:
                continue
        return None

    def __call__(self, acquisition_id: str, file_name: str) -> Dataset:
        with tempfile.TemporaryDirectory(prefix="mapping-audit-") as tmp:
            if self.zip_members and file_name.lower().endswith(".zip"):
                found = self._from_member(acquisition_id, file_name, Path(tmp))
                if found is not None:
                    return found
            dest = Path(tmp) / Path(file_name).name
            self.client.download_file_from_acquisition(acquisition_id, file_name, str(dest))
            self.downloads += 1
            try:
                return read_first_header(dest)
            except NotDicomError as exc:  # name the file as the user knows it
                raise NotDicomError(str(exc).replace(str(dest), file_name)) from None
