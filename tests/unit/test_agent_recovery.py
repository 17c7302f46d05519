"""Start-up recovery of the spool: one node cleans everything left by a kill; a replica
sharing the spool and a PostgreSQL state leaves the other replicas' work alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fwagent.spool import SHARED_ORPHAN_AGE, Spool, recover_spool
from fwagent.state import State


def leftovers(spool: Spool, age: float) -> dict[str, Path]:
    """What a kill leaves: a partial file, an unacknowledged instance, two work folders."""
    then = time.time() - age
    made = {
        "part": spool.tmp / "x.part",
        "orphan": spool.instance_path("9.9", "9.9.1"),
        "work_live": spool.work / "1.1" / "zip.part",
        "work_dead": spool.work / "2.2" / "zip.part",
    }
    for path in made.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (then, then))
        os.utime(path.parent, (then, then))
    return made


def two_series(state: State, spool: Spool) -> None:
    """1.1 is being uploaded under a live lease; 2.2's uploader died long ago."""
    for uid in ("1.1", "2.2"):
        path = spool.instance_path(uid, f"{uid}.1")
        path.write_bytes(b"dicom")
        state.record_instance(f"{uid}.1", uid, "ST", path, 5, now=1.0)
    assert state.claim("1.1") is not None
    assert state.claim("2.2", now=1.0) is not None  # lease ran out at 1 + lease


def test_one_node_cleans_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    state = State(tmp_path / "spool" / "state.sqlite")
    try:
        two_series(state, spool)
        made = leftovers(spool, age=0)
        found = recover_spool(spool, state)
        assert found == {"partial": 1, "work": 2, "orphans": 1, "requeued": 2}
        assert not any(p.exists() for p in made.values())
        assert len(state.instances()) == 2  # acknowledged instances stay
    finally:
        state.close()


def test_a_replica_leaves_live_leases_and_young_files_alone(tmp_path: Path, pg_url: str) -> None:
    spool = Spool(tmp_path / "spool")
    other = State(tmp_path / "unused.sqlite", url=pg_url, owner="other")
    starting = State(tmp_path / "unused.sqlite", url=pg_url, owner="starting")
    try:
        two_series(other, spool)
        young = leftovers(spool, age=5)  # another replica may be writing these right now
        found = recover_spool(spool, starting)
        assert found == {"partial": 0, "work": 0, "orphans": 0, "requeued": 1}
        assert all(p.exists() for p in young.values())
        old = leftovers(spool, age=SHARED_ORPHAN_AGE + 60)
        found = recover_spool(spool, starting)
        # old leftovers go, except the work folder of the series under a live lease
        assert found == {"partial": 1, "work": 1, "orphans": 1, "requeued": 0}
        assert old["work_live"].exists()
        assert not any(old[k].exists() for k in ("part", "orphan", "work_dead"))
        assert starting.series("1.1").state == "uploading"  # type: ignore[union-attr]
        assert starting.series("2.2").state == "complete"  # type: ignore[union-attr]
    finally:
        other.close()
        starting.close()
