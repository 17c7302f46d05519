"""DICOM date/time pairs to ISO 8601 timestamps in the site's timezone."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATE = re.compile(r"^\s*(\d{4})[.-]?(\d{2})[.-]?(\d{2})\s*$")
_TIME = re.compile(r"^\s*(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(?:\.(\d{1,6}))?\s*$")


def zone(name: str) -> tzinfo:
    """The named IANA timezone; a clear ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name like UTC or Europe/Berlin)"
        ) from None


def dicom_timestamp(date: object, time: object, tz: tzinfo) -> str | None:
    """``YYYYMMDD`` + ``HHMMSS.ffffff`` (parts optional, old colon form accepted) -> ISO 8601.

    None when the date is missing or unparsable; a missing time means midnight.
    """
    date_match = _DATE.match(str(date or ""))
    if not date_match:
        return None
    year, month, day = (int(part) for part in date_match.groups())
    hour = minute = second = micro = 0
    time_text = str(time or "").strip()
    if time_text:
        time_match = _TIME.match(time_text)
        if not time_match:
            return None
        hh, mm, ss, frac = time_match.groups()
        hour, minute, second = int(hh), int(mm or 0), int(ss or 0)
        micro = int((frac or "0").ljust(6, "0"))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None
    return moment.isoformat()
