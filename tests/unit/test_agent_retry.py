"""The per-series retry schedule (fwagent.retry): quick jittered backoff within
retry_max_seconds, then every failed_retry_seconds; permanent errors park at once."""

from __future__ import annotations

from fwagent.config import FlywheelConfig
from fwagent.retry import Retry, next_retry

FW = FlywheelConfig(retry_max_seconds=20, retry_max_interval=5, failed_retry_seconds=60)


def no_jitter(wait: float) -> float:
    return wait


def test_backoff_doubles_up_to_the_cap_then_parks_when_the_window_is_spent() -> None:
    # nominal waits 1, 2, 4, 5, 5 (sum 17 <= 20), then 5 more would make 22 > 20
    delays = [next_retry(n, FW, jitter=no_jitter) for n in range(1, 8)]
    assert delays[:5] == [Retry(1, False), Retry(2, False), Retry(4, False)] + [Retry(5, False)] * 2
    assert delays[5:] == [Retry(60, True), Retry(60, True)]  # tried again forever, never dropped


def test_full_jitter_stays_within_the_nominal_wait() -> None:
    for failures, cap in ((1, 1), (3, 4), (5, 5)):
        for _ in range(50):
            retry = next_retry(failures, FW)
            assert not retry.parked and 0 <= retry.delay <= cap


def test_permanent_error_and_no_retry_window_park_at_once() -> None:
    assert next_retry(1, FW, permanent=True) == Retry(60, True)
    no_window = FlywheelConfig(retry_max_seconds=0, failed_retry_seconds=7)
    assert next_retry(1, no_window) == Retry(7, True)
