"""State.hold: a PULL retrieval keeps the uploader off its series, and waits for an upload
of an earlier copy to end."""

from __future__ import annotations

from pathlib import Path

from fwagent.state import State


def test_hold_keeps_a_queued_or_failed_series_from_the_uploader(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    assert state.hold("S")  # nothing known yet: retrieve
    state.record_instance("1.1", "S", "ST", tmp_path / "a.dcm", 1, source="pull", now=1.0)
    assert state.mark_complete("S")
    assert state.due_series(0, now=2.0) == ["S"]
    assert state.hold("S")  # queued for upload: back to receiving, not due
    assert state.series("S").state == "receiving"  # type: ignore[union-attr]
    assert state.due_series(0, now=2.0) == []
    assert state.claim("S") is None  # a sweep that saw it due before the hold takes nothing
    assert state.mark_complete("S")  # the retrieval ended: due again
    claimed_at, rows = state.claim("S")  # type: ignore[misc]
    assert not state.hold("S")  # an upload in flight: retrieve at the next poll
    state.finish("S", "failed", claimed_at, [], error="HTTP 503", retry_in=0)
    assert state.hold("S")  # failed: the new retrieval completes it
    assert state.series("S").state == "receiving"  # type: ignore[union-attr]
    assert state.queue_depth() == 1  # nothing dropped
