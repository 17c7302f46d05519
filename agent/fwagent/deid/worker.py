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


def _deidentify(profile: Profile, task: Task) -> Result:
    import pydicom
    from fs.memoryfs import MemoryFS
    from pydicom.uid import UID

    from .uids import fix_uids

    file_profile = _build(profile).get_file_profile("dicom")
    source = Path(task.source)
    written: list[str] = []
    out = MemoryFS()
    file_profile.process_files(
        _osfs(str(source.parent)), out, [source.name], callback=lambda _fs, p: written.append(p)
    )
    if not written or not out.isfile(written[-1]):
        return Result(False, reason=_why_no_output(task.source), detail=list(_records))
    ds = pydicom.dcmread(BytesIO(out.readbytes(written[-1])), force=True)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "") or "").strip():
            return Result(False, reason=f"the de-identified instance has no {keyword}")
    fix_uids(ds)
    sop_uid = str(ds.SOPInstanceUID)
    # the library leaves the original SOP uid in the File Meta
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    dest_dir = Path(task.dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    from fwmapping.paths import inside, safe_component

    dest = inside(dest_dir, safe_component(sop_uid, ".dcm"))
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    ds.save_as(part, enforce_file_format=False)
    os.replace(part, dest)
    return Result(True, str(dest), dest.stat().st_size, sop_uid, detail=list(_records))
