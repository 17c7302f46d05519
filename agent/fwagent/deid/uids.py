"""UIDs made valid after de-identification.

flywheel-migration's ``hashuid`` keeps the last digits of the original UID's last
component, so ``...1000012`` becomes ``...000012``: a component with a leading zero, which
DICOM forbids (PS3.5 9.1) and pydicom flags. The fix is deterministic (the same input UID
always gives the same output), so every instance of a series, and a late re-send, still
agree on their UIDs.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR
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


def _needs_fix(raw: Any) -> bool:
    """Whether a UI value (raw bytes, maybe padded, one UID or several) has a component
    with a leading zero."""
    if isinstance(raw, bytes):
        uids = raw.decode("ascii", "replace").rstrip("\x00 ").split("\\")
    elif isinstance(raw, str):
        uids = raw.split("\\")
    else:
        uids = [str(v) for v in raw]
    for uid in uids:
        for part in uid.strip("\x00 ").split("."):
            if len(part) > 1 and part[0] == "0" and part.isdigit():
                return True
    return False


def _vr(dataset: Dataset, element: Any) -> str | None:
    if element.VR is not None:
        return str(element.VR)
    try:  # implicit VR: the dictionary's
        return str(dictionary_VR(element.tag))
    except KeyError:
        return None


def fix_uids(ds: Dataset) -> int:
    """Make every UI value in ``ds`` (its sequences and its File Meta included) valid;
    return how many elements changed. Elements are checked as read (raw): only sequences
    and UIDs that need fixing are decoded, so a clean dataset costs little."""
    changed = 0

    def visit(dataset: Dataset) -> None:
        nonlocal changed
        for raw in list(dataset.elements()):
            vr = _vr(dataset, raw)
            if vr == "SQ":
                for item in dataset[raw.tag].value or []:
                    visit(item)
            elif vr == "UI" and raw.value and _needs_fix(raw.value):
                element = dataset[raw.tag]
                new = _fixed(element.value)
                if new is not None:
                    element.value = new
                    changed += 1

    visit(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        visit(meta)
    return changed
