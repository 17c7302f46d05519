"""A 1,000-session Unknown/Unsorted project: API calls grow (at most) linearly.

Calls are counted from fwlite's request log around each gear run. Sessions are created in
bulk through the SDK (one ``add_session`` each, subject inline) with the routing record the
agent keeps at upload, a third routed, a third without ``fw://``, a third with a typo group.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gears import runtime
from tests.support.gear_root import make_gear_root

pytestmark = pytest.mark.timeout(240)

ROUTINGS = ("fw://psych/study01/sub-{i:04d}", "sub-{i:04d}", "fw://pysch/study01/sub-{i:04d}")


def add_sessions(fw: Any, project_id: str, start: int, stop: int) -> None:
    for i in range(start, stop):
        value = ROUTINGS[i % 3].format(i=i)
        fw.add_session(
            {
                "project": project_id,
                "subject": {"label": f"ex{i:04d}"},
                "label": f"Study {i}",
                "uid": f"1.2.826.0.1.3680043.99.{i}",
                "info": {"fwagent": {"routing": {"field": "PatientID", "value": value}}},
            }
        )


def gear_run(
    tmp_path: Path, fwlite: Any, project_id: str, dry_run: bool
) -> tuple[int, Counter[str], int, float]:
    """Run on the project; return exit code, statuses, API requests made, seconds."""
    root = tmp_path / f"gear{len(list(tmp_path.glob('gear*')))}"
    make_gear_root(
        root,
        config={"dry_run": dry_run},
        destination={"type": "project", "id": project_id},
        api_key=fwlite.api_key,
    )
    before = len(fwlite.requests())
    started = time.perf_counter()
    code = runtime.main(["run", "unsorted-mover", "--root", str(root)])
    seconds = time.perf_counter() - started
    calls = len(fwlite.requests()) - before
    [report] = (root / "output").glob("unsorted-mover_report-*.csv")
    statuses = Counter(row["Status"] for row in csv.DictReader(report.open()))
    return code, statuses, calls, seconds


def test_thousand_sessions_linear_api_calls(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    fw.add_project({"group": "psych", "label": "study01"})
    unsorted = fw.projects.find_first("parents.group=unknown,label=Unsorted")
    if unsorted is None:
        unsorted_id = fw.add_project({"group": "unknown", "label": "Unsorted"})
    else:
        unsorted_id = unsorted.id

    add_sessions(fw, unsorted_id, 0, 100)
    code, statuses, dry_small, _ = gear_run(tmp_path, fwlite, unsorted_id, True)
    assert code == 0 and statuses == {"Planned": 34, "Skipped": 66}
    code, statuses, real_small, _ = gear_run(tmp_path, fwlite, unsorted_id, False)
    assert code == 0 and statuses == {"Moved": 34, "Skipped": 66}

    add_sessions(fw, unsorted_id, 100, 1034)  # 66 left + 934 = 1,000 sessions to triage
    code, statuses, dry_big, dry_seconds = gear_run(tmp_path, fwlite, unsorted_id, True)
    assert code == 0 and statuses == {"Planned": 311, "Skipped": 689}
    # the dry run reads paged listings: ~10x the sessions costs far less than 10x the calls
    assert dry_big <= 10 * dry_small
    code, statuses, real_big, real_seconds = gear_run(tmp_path, fwlite, unsorted_id, False)
    assert code == 0 and statuses == {"Moved": 311, "Skipped": 689}
    # each move: the subject moves with its one session, then the provenance: 2 calls
    assert real_small <= dry_small + 2 * 34 + 5
    assert real_big <= dry_big + 2 * 311 + 5
    assert real_big <= real_small * 1000 / 100  # linear at most
    study01 = fw.projects.find_first("parents.group=psych,label=study01").id
    assert len(fw.get_project_sessions(study01)) == 345

    code, statuses, again_calls, _ = gear_run(tmp_path, fwlite, unsorted_id, False)
    assert code == 0 and statuses == {"Skipped": 689}
    assert again_calls <= dry_big
    print(
        f"\nAPI calls: 100 sessions dry {dry_small}, real (34 moves) {real_small}; "
        f"1,000 sessions dry {dry_big} ({dry_seconds:.1f}s), real (311 moves) {real_big} "
        f"({real_seconds:.1f}s); second run {again_calls}"
    )
