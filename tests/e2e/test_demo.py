"""``make demo`` end to end: each sample study lands where the routing rules put it."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo import run_demo


@pytest.mark.parametrize("use_storescu", [True, False], ids=["storescu", "pynetdicom"])
def test_demo_places_every_study(tmp_path: Path, use_storescu: bool) -> None:
    if use_storescu:
        from tests.support import peers

        peers.require("storescu")
    result = run_demo(tmp_path, quiet_seconds=0.5, use_storescu=use_storescu)
    assert result["sent"] == 30
    assert result["series"]["uploaded"] == 8
    assert result["series"]["opted_out"] == 2
    placed = {(g, p, s): r for g, p, _subject, s, r in result["sessions"]}
    assert placed == {
        ("psych", "study01", "Baseline"): "routed",
        ("psych", "Unsorted", "Pilot"): "unsorted",
        ("unknown", "Unsorted", "Follow-up"): "unknown",
        ("unknown", "Unsorted", "Typo"): "unknown",
    }
    assert any("subject s01" in line for line in result["tree"])
    # every series came from the demo's one scanner; per-session placements count per series
    (scanner,) = result["scanners"].values()
    assert scanner["received_instances"] == 30
    assert (scanner["uploaded_series"], scanner["opted_out_series"]) == (8, 2)
    assert scanner["routed"] + scanner["unsorted"] + scanner["unknown"] == 8
    assert scanner["unknown"] >= 2 and scanner["unsorted"] >= 1
