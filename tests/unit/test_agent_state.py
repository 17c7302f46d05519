"""The SQLite state machine of series and instances."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from fwagent.package import zip_name, zip_series
from fwagent.state import State


def test_lifecycle_duplicates_and_reopen(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    state.record_instance("1.1", "S", "ST", a, 10, now=100.0)
    state.record_instance("1.2", "S", "ST", b, 10, now=101.0)
    state.record_instance("1.1", "S", "ST", a, 12, now=102.0)  # duplicate replaces
    assert state.queue_depth() == 2
    assert state.due_series(10, now=111.0) == []
    assert state.due_series(10, now=112.0) == ["S"]
    claimed_at, rows = state.claim("S")  # type: ignore[misc]
    assert claimed_at == 102.0 and len(rows) == 2
    assert state.claim("S") is None  # not twice
    state.record_instance("1.3", "S", "ST", tmp_path / "c.dcm", 10, now=200.0)  # late
    final, removed = state.finish("S", "uploaded", claimed_at, rows)
    assert final is False  # a newer instance re-opened it
    assert sorted(removed) == sorted([str(a), str(b)])
    assert state.series("S").state == "receiving"  # type: ignore[union-attr]
    assert state.queue_depth() == 1


def test_recover_requeues_interrupted_uploads(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    state.record_instance("1.1", "S", "ST", tmp_path / "a.dcm", 1, now=1.0)
    assert state.claim("S") is not None
    state.close()
    state = State(tmp_path / "state.sqlite")
    assert state.recover() == 1
    assert state.series("S").state == "complete"  # type: ignore[union-attr]
    summary = state.summary()
    assert summary["series"]["complete"] == 1 and summary["instances_waiting"] == 1


def test_zip_series_streams_members_under_the_label(tmp_path: Path) -> None:
    paths = []
    for n in range(3):
        path = tmp_path / f"{n}.dcm"
        path.write_bytes(b"x" * 100)
        paths.append(path)
    meta = {"acquisition": {"label": "T1 / MPRAGE", "uid": "1.2"}}
    dest = zip_series(paths, tmp_path / "out" / zip_name(meta))
    assert dest.name == "T1 _ MPRAGE.dicom.zip"
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == [f"T1 _ MPRAGE/{n}.dcm" for n in range(3)]
    assert not list((tmp_path / "out").glob("*.part"))


# ---- schema versioning (issue 16.6) ------------------------------------------------------


def test_fresh_and_old_databases_end_at_the_current_schema(tmp_path: Path) -> None:
    import shutil
    import sqlite3

    from fwagent.pull.store import PullStore
    from fwagent.state import SCHEMA_VERSION

    fresh = tmp_path / "fresh.sqlite"
    PullStore(fresh).close()  # whichever part opens the file first migrates it
    State(fresh).close()
    old = tmp_path / "old.sqlite"
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "state_v0" / "spool"
    shutil.copy(fixture / "state.sqlite", old)
    state = State(old)
    try:
        assert len(state.all_series()) == 6
        assert state.queue_depth() == 9
        state.record_acquisition("1.2.826.0.1.3680043.8.498.15", "a,b=c", "acq1")
        row = state.series("1.2.826.0.1.3680043.8.498.15")
        assert row is not None and row.acquisition_ids() == {"a,b=c": "acq1"}
    finally:
        state.close()
    for path in (fresh, old):
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = {r[1] for r in db.execute("PRAGMA table_info(series)")}
        assert "acquisitions" in columns
        db.close()


def test_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from fwagent.state import SCHEMA_VERSION, NewerStateError

    path = tmp_path / "state.sqlite"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    db.commit()
    db.close()
    with pytest.raises(NewerStateError, match="newer than this fwagent knows"):
        State(path)
