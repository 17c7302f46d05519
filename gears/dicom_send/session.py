"""No-input mode: the DICOM files of the destination, downloaded one at a time to disk."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backoff
from fwmapping.flywheel_errors import is_permanent

from gears.common.hierarchy import Scope, walk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    acquisition_id: str
    name: str
    fw_path: str  # group/project/subject/session/acquisition/files/name
    images: int  # zip member count when the site knows it (for rows of unsent files)


def dicom_files(scope: Scope) -> list[RemoteFile]:
    """Every DICOM file (``File.is_dicom``) in the acquisitions of ``scope``, in a stable order."""
    found = []
    for acquisition in sorted(scope.acquisitions, key=lambda a: (a.session.label, a.label, a.id)):
        for item in sorted(acquisition.files, key=lambda f: f.name):
            if not item.is_dicom:
                continue
            found.append(
                RemoteFile(
                    acquisition_id=acquisition.id,
                    name=item.name,
                    fw_path=f"{acquisition.fw_path}/files/{item.name}",
                    images=int(item.info.get("zip_member_count") or 0)
                    if isinstance(item.info, dict)
                    else 0,
                )
            )
    return found


def scope_of(client: Any, container_type: str, container_id: str) -> Scope:
    return walk(client, container_type, container_id)


def download(client: Any, remote: RemoteFile, dest: Path, max_time: float) -> Path:
    """Stream one file to ``dest``; retry with exponential backoff for up to ``max_time`` s."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    @backoff.on_exception(
        backoff.expo,
        Exception,
        max_time=max(float(max_time), 0.0),
        giveup=is_permanent,
        factor=0.5,
        max_value=10,
        on_backoff=lambda details: log.warning(
            "download of %s failed (%s); retrying", remote.name, details.get("exception")
        ),
        raise_on_giveup=True,
        logger=None,
    )
    def fetch() -> None:
        client.download_file_from_acquisition(remote.acquisition_id, remote.name, str(dest))

    fetch()
    return dest
