"""A Flywheel de-id profile: read, checked against the site's rules, then validated by
flywheel-migration itself (in a worker process, see :mod:`.worker`).

Every problem is one line naming the profile and what is wrong, e.g.::

    deid.profile /etc/fwagent/deid.yaml: dicom field PatientName uses hash without a salt
    (an unsalted SHA-256 is reversible by dictionary): add dicom.salt

The site rules, beyond what flywheel-migration checks:

- a ``dicom`` section with at least one field: without it the library copies instances
  unchanged, which would upload them raw;
- ``hash``/``hashuid`` only with a ``salt`` (an unsalted SHA-256 of a name or an MRN is
  reversed by hashing a dictionary of names or MRNs);
- no ``jitter-date`` (a random shift per file gives the instances of one series different
  dates: the series splits, and the shifts average out to the true date);
- StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID are not removed (Flywheel places
  sessions and acquisitions by them; ``hashuid`` replaces them consistently).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PLACEMENT_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class Profile:
    """A profile as read at start-up: workers build it from ``config``, so editing the file
    while the agent runs never changes (e.g. re-salts) what it applies."""

    path: str  # where it was read (for messages)
    config: dict[str, Any]
    digest: str  # identifies ``config`` (workers cache the built profile by it)


class ProfileError(ValueError):
    """The de-id profile cannot be used; the message is one line naming the problem."""


def read_profile(path: str | Path) -> dict[str, Any]:
    """The profile as a mapping; ProfileError when it cannot be read or is not a mapping."""
    path = Path(path)
    if path.suffix.lower() not in (".yml", ".yaml", ".json"):
        raise ProfileError(f"{path}: a de-id profile is a .yaml, .yml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        loaded = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ProfileError(f"{path}: not valid YAML ({problem}{where})") from None
    if not isinstance(loaded, dict):
        raise ProfileError(f"{path}: the profile must be a mapping (name, dicom: ...)")
    return loaded


def _field_name(field: dict[str, Any]) -> str:
    return str(field.get("name") or field.get("regex") or "?")


def profile_problems(config: dict[str, Any]) -> list[str]:
    """What the site rules refuse in this profile (empty = acceptable)."""
    dicom = config.get("dicom")
    if not isinstance(dicom, dict) or not dicom.get("fields"):
        return ["no dicom section with fields: flywheel-migration would copy instances unchanged"]
    problems: list[str] = []
    for section_name, section in config.items():
        if not isinstance(section, dict) or not isinstance(section.get("fields"), list):
            continue
        salted = bool(section.get("salt"))
        for field in section["fields"]:
            if not isinstance(field, dict):
                problems.append(f"{section_name} field {field!r} is not a mapping")
                continue
            name = _field_name(field)
            for action in ("hash", "hashuid"):
                if field.get(action) and not salted:
                    problems.append(
                        f"{section_name} field {name} uses {action} without a salt (an unsalted"
                        f" SHA-256 is reversible by dictionary): add {section_name}.salt"
                    )
            if field.get("jitter-date"):
                problems.append(
                    f"{section_name} field {name} uses jitter-date (a random shift per file"
                    " splits a series and averages out): use date-increment instead"
                )
            if section_name == "dicom" and name in PLACEMENT_UIDS and field.get("remove"):
                problems.append(
                    f"dicom field {name} is removed (Flywheel places data by it): use hashuid"
                )
    return problems


def check_profile(path: str | Path) -> Profile:
    """Read the profile and apply the site rules; the first problem raises ProfileError.
    (flywheel-migration's own validation runs in the worker: :func:`.service.validate`.)"""
    config = read_profile(path)
    problems = profile_problems(config)
    if problems:
        raise ProfileError(f"{path}: {problems[0]}")
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return Profile(str(path), config, digest)
