"""The PULL decision rules, pure (no I/O), from how-the-connector-uploads steps 1-4.

1. the image count changed since the previous poll -> wait;
2. unchanged and already uploaded with that count (or more) -> nothing to do;
3. unchanged and not uploaded -> retrieve (then upload);
4. a changed count after upload -> wait until stable again, then re-upload.

Plus: the opt-in/opt-out policy decided on the C-FIND answer when the field was returned
(opted-out data is never moved), retries with exponential backoff, "abandoned" after
``max_failures`` (kept and shown, never dropped), forgetting series not seen for a grace
period, and marking everything already on the peer as done at first start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Series states (persisted; shown by `fwagent status`).
WAITING = "waiting"  # new or count still changing: waiting for one unchanged poll
RETRYING = "retrying"  # a retrieval failed; next attempt after a backoff
DONE = "done"  # retrieved and handed to the uploader with uploaded_count images
OPTED_OUT = "opted_out"  # the C-FIND answer shows the policy forbids it: never moved
ABANDONED = "abandoned"  # failed max_failures times; needs an admin (reason kept)
STATES = (WAITING, RETRYING, DONE, OPTED_OUT, ABANDONED)

# Actions for one series in one poll.
WAIT = "wait"
RETRIEVE = "retrieve"
SKIP = "skip"


@dataclass(frozen=True)
class Rules:
    """The knobs of the decision (from agent.yaml `pull`)."""

    max_failures: int = 5
    retry_backoff_seconds: float = 60.0
    retry_backoff_max_seconds: float = 3600.0
    forget_after_seconds: float = 7 * 86400.0


@dataclass(frozen=True)
class Seen:
    """One series as a C-FIND answered it in this poll.

    ``count`` is None when neither SERIES- nor IMAGE-level counting gave a number.
    ``allowed`` is None when the peer did not return the policy field (decided later,
    on the received headers), else the policy verdict on the returned value.
    """

    study_uid: str
    series_uid: str
    count: int | None
    allowed: bool | None = None
    study_date: str = ""
    description: str = ""


@dataclass(frozen=True)
class SeriesState:
    """What the agent remembers about one series on the peer between polls."""

    series_uid: str
    study_uid: str
    state: str = WAITING
    count: int | None = None  # count at the previous poll
    uploaded_count: int | None = None  # count at the last successful retrieval
    failures: int = 0
    next_attempt_at: float = 0.0
    reason: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    study_date: str = ""
    description: str = ""


def decide(
    prev: SeriesState | None,
    seen: Seen,
    now: float,
    rules: Rules,
    baseline: bool = False,
) -> tuple[SeriesState, str]:
    """New state and the action for one series seen in a poll.

    ``baseline`` is true on the very first poll when the option to mark everything
    already on the peer as done is set.
    """
    base = prev or SeriesState(series_uid=seen.series_uid, study_uid=seen.study_uid, first_seen=now)
    base = dataclasses.replace(
        base,
        last_seen=now,
        study_date=seen.study_date or base.study_date,
        description=seen.description or base.description,
    )
    count = seen.count

    if seen.allowed is False:
        return _set(
            base, OPTED_OUT, count, "the policy field in the C-FIND answer opts it out"
        ), SKIP
    if count is None:
        return _set(base, WAITING, None, "the peer reports no image count yet"), WAIT
    if prev is None and baseline:
        state = _set(base, DONE, count, f"already on the peer at first start ({count} images)")
        return dataclasses.replace(state, uploaded_count=count), SKIP
    if count == 0:
        return _set(base, WAITING, count, "the series has no images yet"), WAIT

    if prev is None or prev.count != count:
        was = (
            "new series" if prev is None or prev.count is None else f"count {prev.count} -> {count}"
        )
        uploaded = base.uploaded_count
        again = (
            " (changed after upload: will re-upload)"
            if uploaded is not None and uploaded < count
            else ""
        )
        reason = f"{was}{again}: waiting for the count to stay unchanged for one poll"
        # new images give an abandoned or failing series a fresh start
        state = dataclasses.replace(
            _set(base, WAITING, count, reason), failures=0, next_attempt_at=0.0
        )
        return state, WAIT

    if base.uploaded_count is not None and base.uploaded_count >= count:
        # (more than the count: it grew before the retrieval, or the peer's count lags)
        return _set(base, DONE, count, f"uploaded with {base.uploaded_count} images"), SKIP
    if base.state == ABANDONED:
        return _set(base, ABANDONED, count, base.reason), SKIP
    if base.state == RETRYING and now < base.next_attempt_at:
        return _set(base, RETRYING, count, base.reason), WAIT
    return _set(base, base.state, count, f"stable at {count} images: retrieving"), RETRIEVE


def succeeded(state: SeriesState, received: int, now: float) -> SeriesState:
    """The series was retrieved completely (``received`` images) and handed to the uploader.

    More than the polled count means it grew before the peer listed it for the retrieval:
    what was handed over is complete up to ``received``, so a poll that then sees that
    count uploads nothing again."""
    return dataclasses.replace(
        state,
        state=DONE,
        uploaded_count=max(state.count or 0, received),
        failures=0,
        next_attempt_at=0.0,
        reason=f"retrieved {received} images; handed to the uploader",
        last_seen=max(state.last_seen, now),
    )


def failed(state: SeriesState, reason: str, now: float, rules: Rules) -> SeriesState:
    """Count one failed retrieval: backoff, or abandoned after ``rules.max_failures``."""
    failures = state.failures + 1
    if failures >= rules.max_failures:
        return dataclasses.replace(
            state,
            state=ABANDONED,
            failures=failures,
            next_attempt_at=0.0,
            reason=f"abandoned after {failures} failed retrievals: {reason}",
        )
    delay = min(rules.retry_backoff_seconds * 2 ** (failures - 1), rules.retry_backoff_max_seconds)
    return dataclasses.replace(
        state,
        state=RETRYING,
        failures=failures,
        next_attempt_at=now + delay,
        reason=f"retrieval failed ({failures}/{rules.max_failures}), retry in {delay:.0f}s: {reason}",
    )


def forget(states: list[SeriesState], now: float, rules: Rules) -> list[str]:
    """Series UIDs not seen for ``rules.forget_after_seconds`` (abandoned ones are kept)."""
    cutoff = now - rules.forget_after_seconds
    return [s.series_uid for s in states if s.last_seen < cutoff and s.state != ABANDONED]


def _set(state: SeriesState, name: str, count: int | None, reason: str) -> SeriesState:
    return dataclasses.replace(state, state=name, count=count, reason=reason)
