"""Turn the ``file`` input (a DICOM file, a zip or a tar) into files on disk, safely.

Archives are checked before anything is written: members with absolute paths or ``..``,
links, devices, or a total size far beyond the archive's own (a zip bomb) make the whole
archive refused. Members are then written under flat numbered names inside ``dest``, so
nothing can land outside the work directory whatever the member names say.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

# A member set may expand to at most this many times the archive's size (+ slack for tiny
# archives). DICOM compresses ~2-20x; zip bombs are in the thousands.
MAX_RATIO = 200
SLACK_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024


class UnsafeArchiveError(ValueError):
    """The archive is refused; nothing of it is used."""


@dataclass
class Unpacked:
    """The candidate files of one input (one report row), and what was refused or skipped."""

    name: str
    files: list[Path] = field(default_factory=list)
    member_names: dict[Path, str] = field(default_factory=dict)
    skipped: int = 0  # directories' non-file members and nested oddities, not counted as DICOM
    error: str | None = None


def has_dicom_preamble(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def kind(path: Path) -> str:
    """``dicom``, ``zip``, ``tar`` or ``other`` (other may still be preamble-less DICOM)."""
    if has_dicom_preamble(path):
        return "dicom"
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    return "other"


def unpack(path: Path, dest: Path, name: str | None = None) -> Unpacked:
    """Candidate files for ``path``; archives are extracted into ``dest`` (created)."""
    result = Unpacked(name=name or path.name)
    found = kind(path)
    if found in ("dicom", "other"):
        result.files.append(path)
        result.member_names[path] = result.name
        return result
    dest.mkdir(parents=True, exist_ok=True)
    limit = path.stat().st_size * MAX_RATIO + SLACK_BYTES
    try:
        if found == "zip":
            _unzip(path, dest, limit, result)
        else:
            _untar(path, dest, limit, result)
    except UnsafeArchiveError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        result.files.clear()
        result.member_names.clear()
        result.error = f"archive {result.name} refused: {exc}"
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        result.files.clear()
        result.member_names.clear()
        result.error = f"archive {result.name} cannot be read: {exc}"
    return result


def check_member_name(name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"member {name!r} points outside the archive (..)")


def _unzip(path: Path, dest: Path, limit: int, result: Unpacked) -> None:
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        declared = 0
        for info in members:
            check_member_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"member {info.filename!r} is a link")
            declared += info.file_size
        if declared > limit:
            raise UnsafeArchiveError(
                f"it expands to {declared} bytes, far beyond its own {path.stat().st_size}"
            )
        budget = [limit]
        for index, info in enumerate(members):
            if info.is_dir():
                continue
            target = dest / f"{index:06d}"
            with archive.open(info) as source:
                _copy_limited(source, target, budget, info.filename)
            result.files.append(target)
            result.member_names[target] = info.filename


def _untar(path: Path, dest: Path, limit: int, result: Unpacked) -> None:
    with tarfile.open(path, mode="r:*") as archive:
        members = archive.getmembers()
        declared = 0
        for member in members:
            check_member_name(member.name)
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(f"member {member.name!r} is a link")
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"member {member.name!r} is a device or fifo")
            declared += member.size
        if declared > limit:
            raise UnsafeArchiveError(
                f"it expands to {declared} bytes, far beyond its own {path.stat().st_size}"
            )
        budget = [limit]
        for index, member in enumerate(members):
            if not member.isfile():
                continue
            source = archive.extractfile(member)
            if source is None:
                result.skipped += 1
                continue
            target = dest / f"{index:06d}"
            with source:
                _copy_limited(source, target, budget, member.name)
            result.files.append(target)
            result.member_names[target] = member.name


def _copy_limited(source: IO[bytes], target: Path, budget: list[int], name: str) -> None:
    """Copy while counting: declared sizes can lie, the real bytes cannot."""
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise UnsafeArchiveError(
                    f"member {name!r} expands far beyond the archive's own size"
                )
            out.write(chunk)
