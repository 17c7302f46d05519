"""PatientName to subject first and last name."""

from __future__ import annotations

import re

_WORD_START = re.compile(r"(^|[\s^-])(\w)")


def capitalize(text: str) -> str:
    """Upper-case the first letter of each word; leave the rest as it is (``JohnDoe`` stays)."""
    return _WORD_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def split_patient_name(name: object) -> tuple[str, str]:
    """Return (firstname, lastname) per the connector's rules.

    ``Last^First[^...]`` splits on the first caret (the rest stays in firstname);
    otherwise ``First [Middle] Last`` splits on the last space; otherwise all is lastname.
    """
    text = str(name or "").strip()
    if "^" in text:
        last, first = text.split("^", 1)
        first = first.rstrip("^").strip()
        last = last.strip()
    elif " " in text:
        first, last = text.rsplit(" ", 1)
        first = first.strip()
    else:
        first, last = "", text
    return capitalize(first), capitalize(last)
