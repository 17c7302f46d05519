"""The optional ``corrections`` CSV: which session goes where, as the admin decided.

Columns (header names are matched case-insensitively, spaces and dashes count as
underscores, so a dry-run report with a filled-in ``To`` column can be fed back):
``session_id`` and/or ``study_instance_uid`` to name the session, and ``target``
(alias ``to``) as ``group/project[/subject[/session]]`` (an ``fw://`` prefix is accepted;
read by :func:`fwmapping.parse_target`, the routing string's own rules).
Rows with an empty target are ignored, so untouched report rows do no harm.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from fwmapping import Routing, parse_target

ID_COLUMNS = ("session_id", "study_instance_uid")
ALIASES = {"to": "target", "session": "session_id", "study_uid": "study_instance_uid"}


class CorrectionsError(ValueError):
    """The corrections CSV cannot be used as a whole (one clear line for the admin)."""


@dataclass(frozen=True)
class Correction:
    """One usable row; ``row`` is the 1-based data row number as the admin sees it (header = 1)."""

    row: int
    target: Routing  # group and project always set (fwmapping.parse_target)
    session_id: str | None = None
    study_uid: str | None = None

    def describe(self) -> str:
        return f"correction row {self.row}"


def _column(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALIASES.get(key, key)


def read_corrections(path: Path) -> list[Correction]:
    """Read and check the whole CSV; raise CorrectionsError listing every bad row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorrectionsError(f"cannot read corrections CSV {path.name}: {exc}") from exc
    return parse_corrections(text, path.name)


def parse_corrections(text: str, name: str = "corrections CSV") -> list[Correction]:
    """Parse CSV text (see module doc); errors name the row numbers."""
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CorrectionsError(f"{name} is empty: it needs a header row")
    header = [_column(cell) for cell in rows[0]]
    if "target" not in header or not any(col in header for col in ID_COLUMNS):
        raise CorrectionsError(
            f"{name} needs a 'target' column and a 'session_id' or 'study_instance_uid' "
            f"column; found: {', '.join(cell.strip() for cell in rows[0])}"
        )
    corrections: list[Correction] = []
    errors: list[str] = []
    for number, cells in enumerate(rows[1:], start=2):
        values = {col: (cells[i].strip() if i < len(cells) else "") for i, col in enumerate(header)}
        if not any(values.values()):
            continue
        target_text = values.get("target", "")
        if not target_text:
            continue
        session_id = values.get("session_id") or None
        study_uid = values.get("study_instance_uid") or None
        if session_id is None and study_uid is None:
            errors.append(f"row {number}: no session_id or study_instance_uid")
            continue
        try:
            target = parse_target(target_text)
        except ValueError as exc:
            errors.append(f"row {number}: {exc}")
            continue
        corrections.append(Correction(number, target, session_id, study_uid))
    if errors:
        raise CorrectionsError(f"{name} has errors: " + "; ".join(errors))
    return corrections
