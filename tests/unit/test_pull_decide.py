"""The PULL decision rules (pure): wait while the count changes, retrieve when stable, ..."""

from __future__ import annotations

from fwagent.pull import decide as d

RULES = d.Rules(max_failures=3, retry_backoff_seconds=10, retry_backoff_max_seconds=25)


def seen(count: int | None, allowed: bool | None = None) -> d.Seen:
    return d.Seen(study_uid="1.2", series_uid="1.2.3", count=count, allowed=allowed)


def poll(prev: d.SeriesState | None, count: int | None, now: float = 0.0, **kw: object):
    return d.decide(prev, seen(count, **kw), now, RULES)  # type: ignore[arg-type]


def test_new_series_waits_one_poll_then_is_retrieved() -> None:
    state, action = poll(None, 3, now=1)
    assert (state.state, action, state.count, state.first_seen) == (d.WAITING, d.WAIT, 3, 1)
    state, action = poll(state, 3, now=2)
    assert action == d.RETRIEVE


def test_growing_series_waits_until_stable() -> None:
    state, _ = poll(None, 3)
    state, action = poll(state, 5)
    assert action == d.WAIT and "count 3 -> 5" in state.reason
    state, action = poll(state, 5)
    assert action == d.RETRIEVE


def test_uploaded_series_is_skipped_and_reuploaded_after_change() -> None:
    state, _ = poll(None, 3)
    state, _ = poll(state, 3)
    state = d.succeeded(state, 3, now=3)
    assert (state.state, state.uploaded_count) == (d.DONE, 3)
    state, action = poll(state, 3)
    assert (state.state, action) == (d.DONE, d.SKIP)
    state, action = poll(state, 7)
    assert action == d.WAIT and "re-upload" in state.reason
    state, action = poll(state, 7)
    assert action == d.RETRIEVE
    assert d.succeeded(state, 7, now=5).uploaded_count == 7


def test_opted_out_is_never_retrieved_even_when_stable() -> None:
    state, action = poll(None, 3, allowed=False)
    assert (state.state, action) == (d.OPTED_OUT, d.SKIP)
    state, action = poll(state, 3, allowed=False)
    assert action == d.SKIP


def test_policy_field_not_returned_does_not_block() -> None:
    state, _ = poll(None, 3, allowed=None)
    assert poll(state, 3, allowed=None)[1] == d.RETRIEVE


def test_unknown_or_zero_count_waits() -> None:
    assert poll(None, None)[1] == d.WAIT
    state, _ = poll(None, 0)
    assert poll(state, 0)[1] == d.WAIT


def test_failures_back_off_exponentially_then_abandon_with_reason() -> None:
    state, _ = poll(None, 3)
    state, _ = poll(state, 3)
    state = d.failed(state, "peer went away", now=100, rules=RULES)
    assert (state.state, state.failures, state.next_attempt_at) == (d.RETRYING, 1, 110)
    assert poll(state, 3, now=105)[1] == d.WAIT
    state, action = poll(state, 3, now=110)
    assert action == d.RETRIEVE
    state = d.failed(state, "peer went away", now=110, rules=RULES)
    assert state.next_attempt_at == 130  # 10 * 2
    state = d.failed(state, "count 2 of 3", now=130, rules=RULES)
    assert state.state == d.ABANDONED and "count 2 of 3" in state.reason
    assert "3 failed" in state.reason
    state, action = poll(state, 3, now=10_000)
    assert (state.state, action) == (d.ABANDONED, d.SKIP)
    # new images give it a fresh start
    state, action = poll(state, 4, now=10_001)
    assert (state.state, state.failures, action) == (d.WAITING, 0, d.WAIT)


def test_backoff_is_capped() -> None:
    state = d.SeriesState(series_uid="s", study_uid="t", count=3, failures=1)
    rules = d.Rules(max_failures=10, retry_backoff_seconds=10, retry_backoff_max_seconds=25)
    assert d.failed(state, "x", now=0, rules=rules).next_attempt_at == 20
    state = d.SeriesState(series_uid="s", study_uid="t", count=3, failures=4)
    assert d.failed(state, "x", now=0, rules=rules).next_attempt_at == 25


def test_baseline_marks_existing_series_done() -> None:
    state, action = d.decide(None, seen(4), 0.0, RULES, baseline=True)
    assert (state.state, state.uploaded_count, action) == (d.DONE, 4, d.SKIP)
    state, action = d.decide(state, seen(4), 1.0, RULES)
    assert action == d.SKIP
    state, action = d.decide(state, seen(6), 2.0, RULES)
    assert action == d.WAIT


def test_forget_after_grace_but_never_abandoned() -> None:
    rules = d.Rules(forget_after_seconds=100)
    old = d.SeriesState(series_uid="old", study_uid="t", last_seen=0, state=d.DONE)
    lost = d.SeriesState(series_uid="lost", study_uid="t", last_seen=0, state=d.ABANDONED)
    fresh = d.SeriesState(series_uid="fresh", study_uid="t", last_seen=950, state=d.DONE)
    assert d.forget([old, lost, fresh], now=1000, rules=rules) == ["old"]


def test_series_that_grew_before_the_peer_listed_it_is_not_uploaded_twice() -> None:
    state, _ = poll(None, 5)
    state, action = poll(state, 5)
    assert action == d.RETRIEVE
    state = d.succeeded(state, 8, now=3)  # the move delivered 8: it grew after the C-FIND
    assert state.uploaded_count == 8
    state, action = poll(state, 8)
    assert action == d.WAIT and "re-upload" not in state.reason
    state, action = poll(state, 8)
    assert (state.state, action) == (d.DONE, d.SKIP)


def test_peer_count_lagging_behind_what_was_delivered_settles() -> None:
    state, _ = poll(None, 3)
    state, _ = poll(state, 3)
    state = d.succeeded(state, 4, now=3)  # a PACS whose cached count lags one image
    state, action = poll(state, 3)
    assert (state.state, action) == (d.DONE, d.SKIP)  # not retrieved again every poll
