"""Heuristics for protected health information typed into a routing string.

Operators type routing strings at the scanner console; whatever they type becomes group,
project, subject and session labels on the site. The admin guide asks that those strings
carry no PHI. These checks look for the usual slips: the patient's name, dates (birth or
scan dates), and long digit runs such as medical record numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from fwmapping import parse_routing
from fwmapping.fields import PATIENT_ID_FIELDS, PATIENT_NAME_FIELDS

PARTS = ("group", "project", "subject", "session")

_DATE_PATTERNS = (
    # 19991231, 1999-12-31, 1999.12.31, 1999/12/31
    re.compile(r"(?<!\d)(?:19|20)\d\d([-./]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    # 31-12-1999, 12/31/1999, 31.12.99
    re.compile(r"(?<!\d)\d{1,2}([-./])\d{1,2}\1(?:\d{4}|\d{2})(?!\d)"),
    # 31dec1999, 31-Dec-1999
    re.compile(
        r"(?<![a-z\d])\d{1,2}[-. ]?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
        r"[-. ]?(?:\d{4}|\d{2})(?!\d)",
        re.IGNORECASE,
    ),
)
_LONG_DIGITS = re.compile(r"(?<!\d)\d{7,}(?!\d)")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_EMAIL = re.compile(r"[^\s@/]+@[^\s@/]+\.[a-z]{2,}", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)

MIN_NAME_TOKEN = 3  # shorter name parts ("Li", "Wu") would match too many labels


@dataclass(frozen=True)
class PhiHit:
    """One suspicious part of a routing string."""

    part: str  # group, project, subject or session
    kind: str  # person name, date, record number, ...


def _name_tokens(header: Mapping[str, Any]) -> set[str]:
    """Lower-cased words of the patient's name(s), long enough to be meaningful."""
    tokens: set[str] = set()
    for keyword in PATIENT_NAME_FIELDS:
        value = header.get(keyword)
        if not value:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, Mapping):  # DICOM JSON person name
                item = item.get("Alphabetic", "")
            tokens.update(
                word.lower() for word in _WORD.findall(str(item)) if len(word) >= MIN_NAME_TOKEN
            )
    return tokens


def _identifiers(header: Mapping[str, Any], routing_field: str) -> set[str]:
    """Patient identifiers other than the routing field itself, as they would be typed."""
    found: set[str] = set()
    for keyword in PATIENT_ID_FIELDS:
        if keyword == routing_field:
            continue
        value = header.get(keyword)
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            text = str(item or "").strip()
            if len(text) >= 4 and not text.lower().startswith("fw://"):
                found.add(text.lower())
    return found


def part_kinds(
    value: str,
    names: AbstractSet[str] = frozenset(),
    identifiers: AbstractSet[str] = frozenset(),
) -> list[str]:
    """What in one label looks like PHI (empty when nothing does)."""
    kinds: list[str] = []
    lowered = value.lower()
    if "^" in value or (names and any(w.lower() in names for w in _WORD.findall(value))):
        kinds.append("person name")
    rest = value
    for pattern in _DATE_PATTERNS:
        rest = pattern.sub(" ", rest)
    if rest != value:
        kinds.append("date")
    if _SSN.search(value):
        kinds.append("social security number")
    elif _LONG_DIGITS.search(rest):  # digits of a date are not a record number
        kinds.append("long digit run (record number?)")
    if _EMAIL.search(value):
        kinds.append("e-mail address")
    if any(ident in lowered for ident in identifiers):
        kinds.append("patient identifier")
    return kinds


def routing_phi(
    value: str | None, header: Mapping[str, Any], routing_field: str = "PatientID"
) -> list[PhiHit]:
    """PHI suspects in a ``fw://`` routing value, one hit per (part, kind).

    Values without ``fw://`` place data in Unknown with a non-PHI subject label, so they
    are not routing strings and are not judged here.
    """
    routing = parse_routing(value)
    if routing.group is None:
        return []
    names = _name_tokens(header)
    identifiers = _identifiers(header, routing_field)
    hits: list[PhiHit] = []
    for part in PARTS:
        label = getattr(routing, part)
        if label:
            hits.extend(PhiHit(part, kind) for kind in part_kinds(label, names, identifiers))
    return hits


def mask(value: str) -> str:
    """Keep the shape of a value, hide its content: ``Doe^John`` -> ``D**^J***``."""
    out = []
    keep_next = True
    for char in value:
        if char.isalnum():
            out.append(char if keep_next else "*")
            keep_next = False
        else:
            out.append(char)
            keep_next = True
    return "".join(out)


def masked_routing(value: str, hits: list[PhiHit]) -> str:
    """The routing value with every suspicious part masked, safe to put in a report."""
    routing = parse_routing(value)
    bad = {hit.part for hit in hits}
    parts = [getattr(routing, part) or "" for part in PARTS]
    shown = [mask(label) if PARTS[i] in bad else label for i, label in enumerate(parts)]
    while shown and not shown[-1]:
        shown.pop()
    return "fw://" + "/".join(shown)


def looks_like_phi(
    value: str, header: Mapping[str, Any] | None = None, field: str = "PatientID"
) -> bool:
    """Whether a raw value of ``field`` (a routing field without fw://) should be masked."""
    header = header or {}
    return bool(part_kinds(value, _name_tokens(header), _identifiers(header, field)))
