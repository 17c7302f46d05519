"""When a series whose upload failed is tried again.

Each failed attempt parks the series as ``failed`` with its reason and the time of its next
attempt (``next_attempt`` in state), so one failing series never holds the others: the
pipeline makes one attempt per series per sweep and moves on. The waits follow
``flywheel.*``:

- while the nominal backoff waits so far (1, 2, 4 ... s, each capped at
  ``retry_max_interval``) add up to at most ``retry_max_seconds``, the next attempt comes
  after a full-jittered wait (uniform in 0..that wait), as ``backoff`` would have waited;
- after that, and at once for a permanent error (a 4xx that retrying will not fix), every
  ``failed_retry_seconds``, for as long as it takes: nothing is ever dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import backoff

from .config import FlywheelConfig


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds until the next attempt
    parked: bool  # the quick retries are spent (or pointless): waits failed_retry_seconds


def next_retry(
    failures: int,
    flywheel: FlywheelConfig,
    permanent: bool = False,
    jitter: Callable[[float], float] = backoff.full_jitter,
) -> Retry:
    """The wait after ``failures`` (>= 1) consecutive failed attempts of one series."""
    if permanent:
        return Retry(flywheel.failed_retry_seconds, True)
    waits = backoff.expo(max_value=flywheel.retry_max_interval)
    next(waits)  # backoff's wait generators are primed once before use
    spent = 0.0
    wait = 0.0
    for _ in range(max(failures, 1)):
        wait = float(next(waits))
        spent += wait
        if spent > flywheel.retry_max_seconds:
            return Retry(flywheel.failed_retry_seconds, True)
    return Retry(jitter(wait), False)
