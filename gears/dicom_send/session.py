"""No-input mode: the DICOM files of the destination, downloaded one at a time to disk.

Files attached to an acquisition and files attached to a session itself are both sent,
each as its own report row. A remote file name is never used as a path: every download
goes to a name the gear generates inside its work folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backoff
from fwmapping.flywheel_errors import is_permanent

from gears.common.hierarchy import Scope, to_file, walk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    container: str  # "acquisition" or "session"
    container_id: str
    name: str
    fw_path: str  # group/project/subject/session[/acquisition]/files/name
    images: int  # zip member count when the site knows it (for rows of unsent files)

    @property
    def acquisition_id(self) -> str:
        return self.container_id if self.container == "acquisition" else ""


def _images(item: Any) -> int:
    return int(item.info.get("zip_member_count") or 0) if isinstance(item.info, dict) else 0


def dicom_files(scope: Scope, client: Any = None) -> list[RemoteFile]:
    """Every DICOM file (``File.is_dicom``) in the acquisitions of ``scope`` and, with a
    client, attached to its sessions themselves; in a stable order."""
    found = []
    for acquisition in sorted(scope.acquisitions, key=lambda a: (a.session.label, a.label, a.id)):
        for item in sorted(acquisition.files, key=lambda f: f.name):
            if item.is_dicom:
                found.append(
                    RemoteFile(
                        "acquisition",
                        acquisition.id,
                        item.name,
                        f"{acquisition.fw_path}/files/{item.name}",
                        _images(item),
                    )
                )
    if client is None:
        return found
    for one in sorted(scope.sessions, key=lambda s: (s.label, s.id)):
        raw = client.get_session(one.id)
        files = [to_file(entry) for entry in (getattr(raw, "files", None) or [])]
        for item in sorted(files, key=lambda f: f.name):
            if item.is_dicom:
                found.append(
                    RemoteFile(
                        "session",
                        one.id,
                        item.name,
                        f"{one.fw_path}/files/{item.name}",
                        _images(item),
                    )
                )
    return found


def scope_of(client: Any, container_type: str, container_id: str) -> Scope:
    return walk(client, container_type, container_id)


def download(client: Any, remote: RemoteFile, dest: Path, max_time: float) -> Path:
    """Stream one file to ``dest`` (a generated path, never the remote name); retry with
    exponential backoff for up to ``max_time`` s."""
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
        if remote.container == "session":
            client.download_file_from_session(remote.container_id, remote.name, str(dest))
        else:
            client.download_file_from_acquisition(remote.container_id, remote.name, str(dest))

    fetch()
    return dest
