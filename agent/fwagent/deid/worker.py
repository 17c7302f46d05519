"""What runs inside the de-identification worker process (never in the agent itself).

flywheel-migration is imported here only: importing it sets pydicom's
``INVALID_KEY_BEHAVIOR`` and loads private dictionaries for the whole process, and its
hash cache is a class attribute that only grows. The pool recycles the process after a
bounded number of tasks, which bounds that cache.

The library's own log lines and warnings can carry header values (paths, UIDs, the value
that failed to parse), so here they are collected, never printed; the agent gets them back
in :attr:`Result.detail` and logs them at DEBUG only.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from .profile import Profile

_profiles: dict[str, Any] = {}
_records: list[str] = []


@dataclass(frozen=True)
class Task:
    """De-identify ``source`` into the folder ``dest_dir`` (created if needed)."""

    source: str
    dest_dir: str


@dataclass(frozen=True)
class Result:
    ok: bool
    path: str = ""  # the de-identified copy: dest_dir/<de-identified SOP uid>.dcm
    size: int = 0
    sop_uid: str = ""  # the de-identified SOPInstanceUID
    reason: str = ""  # why not, without header values (fit for status and INFO logs)
    detail: list[str] = field(default_factory=list)  # library messages: DEBUG only


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _records.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a log line must never fail a task
            _records.append(f"{record.levelname} {record.name}: {record.msg!r}")


def quiet() -> None:
    """Collect every log record and warning of this process instead of printing them."""
    root = logging.getLogger()
    if any(isinstance(h, _Collect) for h in root.handlers):
        return
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Collect())
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def _build(profile: Profile) -> Any:
    """flywheel-migration's profile from the config read at start-up (as its
    ``load_profile`` would build it from the file); ValidationError with its errors."""
    from flywheel_migration.deidentify import DeIdProfile
    from flywheel_migration.deidentify.exceptions import ValidationError

    built = _profiles.get(profile.digest)
    if built is None:
        built = DeIdProfile()
        built.load_config(copy.deepcopy(profile.config))  # it edits what it is given
        errors = built.validate()
        if errors:
            raise ValidationError(profile.path, errors)
        _profiles[profile.digest] = built
    return built


def validate(profile: Profile) -> list[str]:
    """flywheel-migration's verdict on the profile: its errors, one line each."""
    quiet()
    from flywheel_migration.deidentify.exceptions import ValidationError

    try:
        _build(profile)
    except ValidationError as exc:
        return [" ".join(str(e).split()) for e in exc.errors]
    except Exception as exc:  # noqa: BLE001 - load_config raises many types
        return [_load_problem(profile, exc)]
    return []


def _load_problem(profile: Profile, exc: Exception) -> str:
    """A load failure as one line; an unknown action is traced to its field."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "Unknown de-identify action" in text:
        from flywheel_migration.deidentify.deid_field import DeIdField

        for section, body in profile.config.items():
            for item in body.get("fields", []) if isinstance(body, dict) else []:
                try:
                    DeIdField.factory(dict(item))
                except Exception:  # noqa: BLE001 - this is the field we are looking for
                    actions = sorted(k for k in item if k not in ("name", "regex"))
                    name = item.get("name") or item.get("regex")
                    return (
                        f"{section} field {name}: unknown action {', '.join(actions) or '(none)'}"
                    )
    return f"flywheel-migration cannot load it: {text}"


def _osfs(directory: str) -> Any:
    from fs.osfs import OSFS

    return OSFS(directory)


_SKIPPED = re.compile(r"IGNORING (.*?) - (.*)")


def _why_no_output(source: str) -> str:
    for line in _records:
        match = _SKIPPED.search(line)
        if match:
            return f"the profile skipped it: {match.group(2).rstrip('!')}"
    return "the profile produced no de-identified file"


def deidentify(profile: Profile, task: Task) -> Result:
    """Apply the profile's dicom part to one instance; write the copy with valid UIDs.

    Success is judged by what was written (process_files' callback and a readable
    output), never by a return value.
    """
    quiet()
    _records.clear()
    try:
        return _deidentify(profile, task)
    except Exception as exc:  # noqa: BLE001 - the reason goes back, the agent fails closed
        detail = [*_records, f"{type(exc).__name__}: {exc}"]
        return Result(
            False, reason=f"flywheel-migration raised {type(exc).__name__}", detail=detail
        )


def _dataset_offset(data: bytes) -> int:
    """Where the dataset starts in a PS3.10 file whose File Meta begins with its group
    length (as pydicom writes it), else 0."""
    if data[128:132] != b"DICM" or data[132:138] != b"\x02\x00\x00\x00UL":
        return 0
    (length,) = struct.unpack("<I", data[140:144])
    offset = 144 + length
    return offset if data[offset : offset + 2] != b"\x02\x00" else 0


_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")


def _pixels_at(data: bytes, stopped: int, ds: Any) -> int:
    """``stopped`` (where reading with ``stop_before_pixels`` stopped) when it is the pixel
    data tag or the end, and the header can be encoded again as it was read (little
    endian, not deflated); else 0."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_little_endian or syntax.is_deflated:
        return 0
    if stopped == len(data) or data[stopped : stopped + 4] in _PIXEL_TAGS:
        return stopped
    return 0


def _encode(ds: Any) -> bytes:
    """The dataset (no File Meta) encoded in its own transfer syntax."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    syntax = ds.file_meta.TransferSyntaxUID
    out = DicomBytesIO()
    out.is_little_endian = syntax.is_little_endian
    out.is_implicit_VR = syntax.is_implicit_VR
    write_dataset(out, ds)
    return bytes(out.getvalue())


def _deidentify(profile: Profile, task: Task) -> Result:
    import pydicom
    from fs.memoryfs import MemoryFS
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import UID

    from .uids import fix_uids, valid_uid

    file_profile = _build(profile).get_file_profile("dicom")
    source = Path(task.source)
    written: list[str] = []
    out = MemoryFS()
    file_profile.process_files(
        _osfs(str(source.parent)), out, [source.name], callback=lambda _fs, p: written.append(p)
    )
    if not written or not out.isfile(written[-1]):
        return Result(False, reason=_why_no_output(task.source), detail=list(_records))
    data = out.readbytes(written[-1])
    reader = BytesIO(data)
    ds = pydicom.dcmread(reader, stop_before_pixels=True, force=True)
    stopped = reader.tell()  # pydicom leaves it at the pixel data tag
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "") or "").strip():
            return Result(False, reason=f"the de-identified instance has no {keyword}")
    sop_uid = valid_uid(str(ds.SOPInstanceUID))
    dest_dir = Path(task.dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    from fwmapping.paths import inside, safe_component

    dest = inside(dest_dir, safe_component(sop_uid, ".dcm"))
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    # the library leaves the original SOP uid in the File Meta: it always gets a new one
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    offset = _dataset_offset(data)
    fixed = fix_uids(ds)
    header_end = _pixels_at(data, stopped, ds) if fixed else len(data)
    if offset and header_end:
        # the library's bytes behind a new File Meta; a header whose UIDs were fixed is
        # encoded again, the pixel data is never decoded or copied through pydicom
        meta = DicomBytesIO()
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        with open(part, "wb") as fh:
            fh.write(data[:132])
            fh.write(meta.getvalue())
            if fixed:
                fh.write(_encode(ds))
                fh.write(memoryview(data)[header_end:])
            else:
                fh.write(memoryview(data)[offset:])
    else:  # an odd File Meta or encoding: decoded, fixed, written again
        full = pydicom.dcmread(BytesIO(data), force=True)
        fix_uids(full)
        full.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        full.save_as(part, enforce_file_format=False)
    os.replace(part, dest)
    return Result(True, str(dest), dest.stat().st_size, sop_uid, detail=list(_records))
