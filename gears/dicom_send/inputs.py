"""Turn one input (a DICOM file, a zip or a tar) into its members, safely and one by one.

Archives are checked before anything is used: members with absolute paths or ``..``,
links, devices, or a total size far beyond the archive's own (a zip bomb) make the whole
archive refused. Members are then read one at a time: small ones into memory, large ones
into flat numbered files inside the work folder, so nothing can land outside it whatever
the member names say. An archive inside the archive is opened too, one level deep, under
the same checks; deeper archives are reported as not sent, never silently ignored. The whole
tree shares ONE size allowance (the input's): archives inside cannot each bring their own.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from fwmapping import inside

from .tagging import IN_MEMORY  # members up to this size are read into memory

# A member set may expand to at most this many times the archive's size (+ slack for tiny
# archives). DICOM compresses ~2-20x; zip bombs are in the thousands.
MAX_RATIO = 200
SLACK_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
NESTING = 1  # archives inside the input are opened this many levels deep


class UnsafeArchiveError(ValueError):
    """The archive is refused; nothing of it is used."""


class ArchiveError(ValueError):
    """The archive cannot be read or is refused; the message says which and why."""


@dataclass
class Member:
    """One candidate file: its bytes (small) or a file in the work folder (large), or why
    it cannot be used (``error``: counted as one file not sent)."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    error: str | None = None

    def discard(self, keep: Path | None = None) -> None:
        """Forget the data; remove an extracted file (never ``keep``, the input itself)."""
        self.data = None
        if self.path is not None and self.path != keep:
            self.path.unlink(missing_ok=True)


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


def _bytes_kind(data: bytes) -> str:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return "tar"  # compressed tar (or a lone compressed file: tarfile will say)
    return "other"


def members(path: Path, work: Path, name: str | None = None) -> Iterator[Member]:
    """The members of ``path`` (the file itself when it is not an archive).

    Raises ArchiveError before yielding anything when the archive is refused or unreadable.
    Extracted files go to ``work`` (created) under generated names.
    """
    label = name or path.name
    found = kind(path)
    if found in ("dicom", "other"):
        yield Member(label, path=path)
        return
    budget = [path.stat().st_size * MAX_RATIO + SLACK_BYTES]
    yield from _archive(path, found, work, label, 0, budget)


def _archive(
    path: Path, found: str, work: Path, label: str, depth: int, budget: list[int]
) -> Iterator[Member]:
    """``budget`` is the bytes still allowed for the whole input, nested archives included."""
    own = path.stat().st_size * MAX_RATIO + SLACK_BYTES
    limit = _Limit(min(own, budget[0]), own, path.stat().st_size)
    try:
        source = _zip_members(path, limit) if found == "zip" else _tar_members(path, limit)
        first = next(source, None)  # the checks run before the first member is read
    except UnsafeArchiveError as exc:
        raise ArchiveError(f"archive {label} refused: {exc}") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"archive {label} cannot be read: {exc}") from None
    if first is None:
        return
    counter = itertools.count()
    for member_name, size, opener in itertools.chain([first], source):
        shown = f"{label}/{member_name}" if depth else member_name
        try:
            member = _read(opener, size, budget, work, next(counter), shown)
        except UnsafeArchiveError as exc:
            raise ArchiveError(f"archive {label} refused: {exc}") from None
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
            yield Member(shown, error=f"cannot be read from {label}: {exc}")
            continue
        nested = _member_kind(member)
        if nested not in ("zip", "tar"):
            yield member
            continue
        if depth + 1 > NESTING:
            member.discard()
            yield Member(shown, error="an archive nested more than one level deep: not opened")
            continue
        yield from _nested(member, nested, work, shown, depth + 1, budget)


def _member_kind(member: Member) -> str:
    """The same byte-signature rule whatever the member's size (``tarfile.is_tarfile``
    says True for a run of zeros, so a big non-archive member is not "a tar")."""
    if member.data is not None:
        return _bytes_kind(member.data)
    if member.path is None:
        return "other"
    with member.path.open("rb") as handle:
        return _bytes_kind(handle.read(512))


def _nested(
    member: Member, found: str, work: Path, shown: str, depth: int, budget: list[int]
) -> Iterator[Member]:
    """The members of an archive inside the input (one level), or one error for it."""
    holder = member.path
    if holder is None:
        work.mkdir(parents=True, exist_ok=True)
        holder = inside(work, f"nested-{id(member):x}")
        holder.write_bytes(member.data or b"")
        member.data = None
    folder = inside(work, f"{holder.name}-members")
    try:
        yield from _archive(holder, found, folder, shown, depth, budget)
    except ArchiveError as exc:
        yield Member(shown, error=str(exc))
    finally:
        holder.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def check_member_name(name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"member {name!r} points outside the archive (..)")


Opener = Callable[[], "IO[bytes] | None"]


@dataclass
class _Limit:
    """What one archive's members may declare: ``allowed`` = min(its own ``own``, what is
    left of the input's allowance)."""

    allowed: int
    own: int
    size: int

    def check(self, declared: int) -> None:
        if declared <= self.allowed:
            return
        if declared > self.own:
            raise UnsafeArchiveError(
                f"it expands to {declared} bytes, far beyond its own {self.size}"
            )
        raise UnsafeArchiveError(
            f"it expands to {declared} bytes, more than is left of the input's size allowance"
        )


def _zip_members(path: Path, limit: _Limit) -> Iterator[tuple[str, int, Opener]]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        declared = 0
        for info in infos:
            check_member_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"member {info.filename!r} is a link")
            declared += info.file_size
        limit.check(declared)
        for info in infos:
            if not info.is_dir():
                yield info.filename, info.file_size, functools.partial(archive.open, info)


def _tar_members(path: Path, limit: _Limit) -> Iterator[tuple[str, int, Opener]]:
    with tarfile.open(path, mode="r:*") as archive:
        infos = archive.getmembers()
        declared = 0
        for info in infos:
            check_member_name(info.name)
            if info.issym() or info.islnk():
                raise UnsafeArchiveError(f"member {info.name!r} is a link")
            if not (info.isfile() or info.isdir()):
                raise UnsafeArchiveError(f"member {info.name!r} is a device or fifo")
            declared += info.size
        limit.check(declared)
        for info in infos:
            if info.isfile():
                yield info.name, info.size, functools.partial(archive.extractfile, info)


def _read(
    opener: Opener, size: int, budget: list[int], work: Path, index: int, name: str
) -> Member:
    source = opener()
    if source is None:
        raise OSError("no data")
    with source:
        if size <= IN_MEMORY:
            data = _read_limited(source, budget, name)
            return Member(name, data=data)
        work.mkdir(parents=True, exist_ok=True)
        target = inside(work, f"{index:06d}")
        _copy_limited(source, target, budget, name)
        return Member(name, path=target)


def _read_limited(source: IO[bytes], budget: list[int], name: str) -> bytes:
    """Read a small member, counting: declared sizes can lie, the real bytes cannot."""
    chunks = []
    total = 0
    while chunk := source.read(CHUNK):
        budget[0] -= len(chunk)
        total += len(chunk)
        if budget[0] < 0 or total > IN_MEMORY * 4:
            raise UnsafeArchiveError(f"member {name!r} expands far beyond its declared size")
        chunks.append(chunk)
    return b"".join(chunks)


def _copy_limited(source: IO[bytes], target: Path, budget: list[int], name: str) -> None:
    """Copy while counting: declared sizes can lie, the real bytes cannot."""
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise UnsafeArchiveError(f"member {name!r} expands far beyond the input's own size")
            out.write(chunk)
