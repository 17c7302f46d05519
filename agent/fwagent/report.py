"""What ``fwagent status`` prints and ``GET /status.json`` serves: one dictionary built
from the state database (so it survives restarts, unlike the process's Prometheus counters).

Keys: ``series`` (counts by state), ``instances_waiting``, ``counters``, ``failures``,
``quarantine`` (as before), and for the site admin's morning check:

- ``scanners``: per calling AE title (a series counts for the AE of its first instance;
  pulled series for the pull peer) ``received_instances``, ``uploaded_series``,
  ``failed_series`` (failed or abandoned), ``opted_out_series``, ``unknown``, ``unsorted``,
  ``routed`` (where uploaded series landed) and ``last_received`` (ISO 8601);
- ``scanners_24h``: the same over the last 24 hours (received instances by whole hours);
- ``recent_series``: the last 50 series: time, scanner, where it landed (Flywheel path),
  SeriesDescription, state, reason when failed;
- ``uploads_per_hour``: 24 hourly buckets, oldest first;
- ``pull`` when pull is enabled.

No patient name or birth date is ever stored in the state database, so none can appear.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .config import AgentConfig
from .state import UPLOADED, State

RECENT_SERIES = 50
HOURS = 24


def iso(epoch: float | None, tz: ZoneInfo) -> str | None:
    """Epoch seconds as ISO 8601 with offset in the site's timezone (None stays None)."""
    if not epoch:
        return None
    return datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")


def site_zone(config: AgentConfig) -> ZoneInfo:
    try:
        return ZoneInfo(config.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def scanners(state: State, tz: ZoneInfo, since: float | None = None) -> dict[str, Any]:
    return {
        ae: {**counts, "last_received": iso(counts["last_received"], tz)}
        for ae, counts in state.scanner_counts(since).items()
    }


def recent_series(state: State, tz: ZoneInfo, limit: int = RECENT_SERIES) -> list[dict[str, Any]]:
    out = []
    for row in state.recent_series(limit):
        out.append(
            {
                "time": iso(row["last_received"], tz),
                "scanner": row["calling_aet"],
                "source": row["source"],
                "series_uid": row["series_uid"],
                "description": row["description"],
                "instances": row["received_count"],
                "state": row["state"],
                "placement": row["placement"],
                "where": row["destination"],
                "uploaded_at": iso(row["uploaded_at"], tz),
                "reason": row["last_error"] if row["state"] != UPLOADED else "",
            }
        )
    return out


def uploads_per_hour(state: State, tz: ZoneInfo, now: float) -> list[dict[str, Any]]:
    """The last HOURS hours (the current one last), zero-filled."""
    current = int(now // 3600)
    first = current - HOURS + 1
    found = state.activity(first * 3600)
    empty = {"received": 0, "uploaded": 0, "failed": 0, "opted_out": 0}
    return [
        {"hour": iso(hour * 3600, tz), **found.get(hour, empty)}
        for hour in range(first, current + 1)
    ]


def status(config: AgentConfig, state: State, now: float | None = None) -> dict[str, Any]:
    """The whole status document."""
    now = time.time() if now is None else now
    tz = site_zone(config)
    summary = state.summary()
    summary["scanners"] = scanners(state, tz)
    summary["scanners_24h"] = scanners(state, tz, since=now - HOURS * 3600)
    summary["recent_series"] = recent_series(state, tz)
    summary["uploads_per_hour"] = uploads_per_hour(state, tz, now)
    summary["generated_at"] = iso(now, tz)
    summary["timezone"] = tz.key
    if config.pull.enabled:
        try:
            from . import pull

            summary["pull"] = pull.status(config)
        except Exception as exc:  # noqa: BLE001 - status must always print
            summary["pull"] = {"error": str(exc)}
    return summary
