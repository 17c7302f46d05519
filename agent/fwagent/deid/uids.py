"""UIDs made valid after de-identification.

flywheel-migration's ``hashuid`` keeps the last digits of the original UID's last
component, so ``...1000012`` becomes ``...000012``: a component with a leading zero, which
DICOM forbids (PS3.5 9.1) and pydicom flags. The fix is deterministic (the same input UID
always gives the same output), so every instance of a series, and a late re-send, still
agree on their UIDs.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset


def valid_uid(uid: str) -> str:
    """``uid`` with leading zeros dropped from each component (``0`` stays ``0``)."""
    parts = uid.split(".")
    fixed = [(part.lstrip("0") or "0") if part.isdigit() else part for part in parts]
    return ".".join(fixed)


def _fixed(value: Any) -> Any | None:
    """The valid form of a UI value (one UID or several), or None when it is valid."""
    if isinstance(value, str):
        new = valid_uid(value)
        return new if new != value else None
    items = [str(v) for v in value]
    new_items = [valid_uid(v) for v in items]
    return new_items if new_items != items else None


def fix_uids(ds: Dataset) -> int:
    """Make every UI value in ``ds`` (its sequences and its File Meta included) valid;
    return how many elements changed."""
    changed = 0

    def visit(dataset: Dataset) -> None:
        nonlocal changed
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value or []:
                    visit(item)
            elif element.VR == "UI" and element.value:
                new = _fixed(element.value)
                if new is not None:
                    element.value = new
                    changed += 1

    visit(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        visit(meta)
    return changed
