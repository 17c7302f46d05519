"""PS3.4 C.2.2.2 attribute matching, compiled to SQLite conditions on the index's columns.

- empty value: universal matching (the attribute is only returned);
- UI with backslashes: list of UID matching;
- ``*`` / ``?``: wildcard matching, only on the VRs the standard allows it for
  (AE CS LO LT PN SH ST UC UR UT); a lone ``*`` is universal matching on any VR;
- ``a-b``, ``a-``, ``-b`` on DA, TM, DT: range matching (inclusive);
- anything else: single value matching. PN is matched case-insensitively, the rest exactly.

A value that cannot be matched (a malformed date, a list on a non-UID key) raises
:class:`IdentifierError`, answered with status 0xA900.
"""

from __future__ import annotations

import re

from .attributes import MULTI_VALUED

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "TM", "DT"})
NUMBER_VRS = frozenset({"IS", "US", "UL", "SS", "SL"})

Condition = tuple[str, list[object]]


class IdentifierError(ValueError):
    """The request identifier cannot be matched; the message says which key and why."""


def condition(column: str, vr: str, value: str) -> Condition | None:
    """The SQL condition (with its parameters) for one matching key, None for universal."""
    value = value.strip(" \0")
    if value in ("", "*"):
        return None
    col = f'"{column}"'
    if column in MULTI_VALUED:
        wanted = [v for v in value.split("\\") if v]
        parts = [f"instr('\\' || {col} || '\\', ?) > 0" for _ in wanted]
        return "(" + " OR ".join(parts) + ")", [f"\\{w}\\" for w in wanted]
    if "\\" in value:
        if vr != "UI":
            raise IdentifierError(f"{column}: a list of values is only allowed for UIDs")
        uids = [v.strip(" \0") for v in value.split("\\") if v.strip(" \0")]
        return f"{col} IN ({','.join('?' * len(uids))})", list(uids)
    if vr in RANGE_VRS:
        return _date_time(col, column, vr, value)
    if vr in WILDCARD_VRS and ("*" in value or "?" in value):
        return _wildcard(col, vr, value)
    if vr in NUMBER_VRS:
        try:
            number = int(value)
        except ValueError:
            raise IdentifierError(f"{column}: {value!r} is not an integer") from None
        return f"CAST({col} AS INTEGER) = ?", [number]
    if vr == "PN":
        return f"{col} = ? COLLATE NOCASE", [value]
    return f"{col} = ?", [value]


def _wildcard(col: str, vr: str, value: str) -> Condition:
    if vr == "PN":  # LIKE is case-insensitive for ASCII in SQLite
        escaped = re.sub(r"([\\%_])", r"\\\1", value)
        pattern = escaped.replace("*", "%").replace("?", "_")
        return f"{col} LIKE ? ESCAPE '\\'", [pattern]
    glob = "".join(f"[{c}]" if c in "[]" else c for c in value)
    return f"{col} GLOB ?", [glob]


# -- dates and times ----------------------------------------------------------------------

_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?$")


def normalize(vr: str, value: str, upper: bool = False) -> str:
    """A DA/TM/DT value as fixed-width text that sorts in time order; ``upper`` fills the
    missing precision with its largest value (``10`` -> ``105959.999999``)."""
    text = value.strip().replace(":", "")
    if vr == "DA":
        text = text.replace(".", "")  # ACR-NEMA style YYYY.MM.DD
        if not _DA.match(text):
            raise ValueError(value)
        return text
    if vr == "TM":
        if not _TM.match(text):
            raise ValueError(value)
        whole, _, frac = text.partition(".")
        fill = "595959"[len(whole) - 2 :] if upper else "000000"[len(whole) :]
        whole = (whole + fill)[:6] if upper else whole + fill
        frac = frac.ljust(6, "9" if upper else "0")
        return f"{whole}.{frac}"
    text = re.split(r"[+-]", text, maxsplit=1)[0]  # the UTC offset is not compared
    if not _DT.match(text):
        raise ValueError(value)
    whole, _, frac = text.partition(".")
    whole += _dt_upper(whole) if upper else "00000101000000"[len(whole) :]
    frac = frac.ljust(6, "9" if upper else "0")
    return f"{whole}.{frac}"


def _dt_upper(whole: str) -> str:
    top = "1231235959"  # MMDDHHMMSS (day 31 sorts after every real day)
    return top[len(whole) - 4 :]


def _date_time(col: str, column: str, vr: str, value: str) -> Condition:
    shadow = f'"_n_{column}"'
    try:
        if "-" in value and not (vr == "DT" and value.count("-") == 1 and _dt_offset(value)):
            low, _, high = value.partition("-")
            parts: list[str] = []
            params: list[object] = []
            if low.strip():
                parts.append(f"{shadow} >= ?")
                params.append(normalize(vr, low))
            if high.strip():
                parts.append(f"{shadow} <= ?")
                params.append(normalize(vr, high, upper=True))
            if not parts:
                raise ValueError(value)
            return " AND ".join(parts), params
        if vr == "DA":
            return f"{shadow} = ?", [normalize(vr, value)]
        return f"{shadow} BETWEEN ? AND ?", [normalize(vr, value), normalize(vr, value, True)]
    except ValueError:
        raise IdentifierError(f"{column}: {value!r} is not a valid {vr} value or range") from None


def _dt_offset(value: str) -> bool:
    """``20200101120000-0500`` is one DT with a UTC offset, not a range."""
    head, _, tail = value.partition("-")
    return len(tail) == 4 and tail.isdigit() and len(head) >= 8


def shadow_value(vr: str, value: str | None) -> str | None:
    """What the index stores in the ``_n_`` column next to a DA/TM/DT value."""
    if not value:
        return None
    try:
        return normalize(vr, value.split("\\")[0])
    except ValueError:
        return None
