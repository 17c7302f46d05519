"""C-FIND and the selection of C-MOVE/C-GET, from a request identifier (pydicom only).

Study Root answers STUDY/SERIES/IMAGE, Patient Root also PATIENT. Keys the index does
not keep are returned empty; keys of levels below the requested one are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .attributes import COMPUTED, IMAGE, LEVELS, PATIENT, SERIES, STUDY, UNIQUE_KEY
from .index import RELATION_COLUMNS, Index, Located
from .matching import IdentifierError, condition

PATIENT_ROOT = "patient"
STUDY_ROOT = "study"
MODEL_LEVELS = {PATIENT_ROOT: LEVELS, STUDY_ROOT: LEVELS[1:]}
SKIPPED = {"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC"}
INT_VRS = {"US", "UL", "SS", "SL"}
# computed return keys; ModalitiesInStudy is computed too but may be matched (PS3.4 C.6)
COMPUTED_ALL = {k for level in LEVELS for k in COMPUTED[level]} - {"ModalitiesInStudy"}


@dataclass
class Key:
    tag: int
    keyword: str
    vr: str
    value: str


def level_of(identifier: Dataset, model: str) -> str:
    try:
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    except Exception as exc:  # noqa: BLE001 - pydicom decodes lazily
        raise IdentifierError(f"QueryRetrieveLevel cannot be read: {exc}") from None
    if not level:
        raise IdentifierError("QueryRetrieveLevel is missing")
    if level not in MODEL_LEVELS[model]:
        allowed = "/".join(MODEL_LEVELS[model])
        raise IdentifierError(f"QueryRetrieveLevel {level!r} is not one of {allowed}")
    return level


def keys_of(identifier: Dataset) -> list[Key]:
    """The identifier's keys as text, in the request's order (raises IdentifierError when an
    element cannot be decoded)."""
    keys: list[Key] = []
    try:
        for elem in identifier:
            if elem.tag.is_private or elem.tag.element == 0 or elem.keyword in SKIPPED:
                continue
            if elem.VR == "SQ":
                keys.append(Key(int(elem.tag), elem.keyword, "SQ", ""))
                continue
            keys.append(Key(int(elem.tag), elem.keyword, elem.VR, _text(elem.value)))
    except IdentifierError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed element, reported as such
        raise IdentifierError(f"the identifier cannot be decoded: {exc}") from None
    return keys


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace")
    return str(value)


def find(
    index: Index, identifier: Dataset, model: str, retrieve_ae: str, limit: int
) -> tuple[list[Dataset], bool]:
    """(responses, truncated): at most ``limit`` matches, truncated when there were more."""
    level = level_of(identifier, model)
    keys = keys_of(identifier)
    columns = RELATION_COLUMNS[level]
    conditions = []
    for key in keys:
        if key.keyword in columns and key.keyword not in COMPUTED_ALL and key.vr != "SQ":
            found = condition(key.keyword, key.vr, key.value)
            if found is not None:
                conditions.append(found)
    wanted = [k.keyword for k in keys if k.keyword in columns]
    rows = index.find(level, wanted, conditions, limit + 1)
    responses = [_response(level, keys, row, retrieve_ae) for row in rows[:limit]]
    return responses, len(rows) > limit


def _response(level: str, keys: list[Key], row: dict[str, object], retrieve_ae: str) -> Dataset:
    ds = Dataset()
    ascii_only = True
    for key in keys:
        value = row.get(key.keyword)
        if key.vr == "SQ":
            ds.add_new(key.tag, "SQ", [])
            continue
        if value is None or value == "":
            ds.add_new(key.tag, key.vr, None)
            continue
        if key.vr in INT_VRS:
            ds.add_new(key.tag, key.vr, int(str(value)))
            continue
        text = str(value)
        ascii_only = ascii_only and text.isascii()
        ds.add_new(key.tag, key.vr, text.split("\\") if "\\" in text else text)
    ds.QueryRetrieveLevel = level
    ds.RetrieveAETitle = retrieve_ae
    if not ascii_only:
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def select(index: Index, identifier: Dataset, model: str) -> list[Located]:
    """The instances a C-MOVE/C-GET asks for: the unique keys down to its level (each
    single or a UID list, as PS3.4 C.4.2.2.1 wants; other keys are ignored)."""
    level = level_of(identifier, model)
    by_keyword = {k.keyword: k for k in keys_of(identifier)}
    order = [lvl for lvl in (PATIENT, STUDY, SERIES, IMAGE) if lvl in MODEL_LEVELS[model]]
    conditions = []
    for lvl in order[: order.index(level) + 1]:
        keyword = UNIQUE_KEY[lvl]
        key = by_keyword.get(keyword)
        required = lvl == level
        if key is None or key.value.strip(" \0") in ("", "*"):
            if required:
                raise IdentifierError(f"{keyword} is required for a {level} level retrieve")
            continue
        if "*" in key.value or "?" in key.value:
            raise IdentifierError(f"{keyword}: wildcards are not allowed in a retrieve")
        vr = "UI" if keyword != "PatientID" else "LO"
        found = condition(keyword, vr, key.value)
        if found is not None:
            conditions.append(found)
    return index.locate(conditions)
