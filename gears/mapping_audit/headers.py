"""The DICOM header of a file on the site that carries none in its info: the zip's first
instance, stopping before the pixel data.

Flywheel's classifier (and the agent's upload) keep the header in file info
(:mod:`fwmapping.info`); the audit converts a downloaded header with the agent's own
converter (:func:`fwmapping.header_info`) so both paths give the rules the same fields.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from fwmapping import NotDicomError, read_first_header
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)


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
