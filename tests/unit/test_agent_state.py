"""The state machine of series and instances, on SQLite and on a real PostgreSQL alike."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fwagent.package import zip_name, zip_series
from fwagent.state import State

from tests.support.polling import wait_until

Open = Callable[..., State]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_state(request: Any, tmp_path: Path) -> Open:
    """State(...) on either backend; each call is another process's connection."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    opened: list[State] = []

    def make(**kwargs: Any) -> State:
        state = State(tmp_path / "state.sqlite", url=url, **kwargs)
        opened.append(state)
        return state

    yield make  # type: ignore[misc]
    for state in opened:
        state.close()


def test_lifecycle_duplicates_and_reopen(tmp_path: Path, open_state: Open) -> None:
    state = open_state()
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
    """One node (SQLite): whatever was mid-upload at a kill is re-queued at start."""
    state = State(tmp_path / "state.sqlite")
    state.record_instance("1.1", "S", "ST", tmp_path / "a.dcm", 1, now=1.0)
    assert state.claim("S") is not None
    state.close()
    state = State(tmp_path / "state.sqlite")
    assert state.recover() == 1
    assert state.series("S").state == "complete"  # type: ignore[union-attr]
    summary = state.summary()
    assert summary["series"]["complete"] == 1 and summary["instances_waiting"] == 1


def test_one_replica_claims_and_a_dead_ones_lease_passes_on(
    tmp_path: Path, open_state: Open
) -> None:
    a = open_state(owner="replica-a", lease_seconds=30)
    b = open_state(owner="replica-b", lease_seconds=30)
    for n in range(3):
        a.record_instance(f"1.{n}", "S", "ST", tmp_path / f"{n}.dcm", 1, now=100.0 + n)
    assert b.due_series(5, now=110.0) == ["S"]
    claimed = a.claim("S", quiet_seconds=5, now=110.0)
    assert claimed is not None and len(claimed[1]) == 3
    assert b.claim("S", quiet_seconds=5, now=110.0) is None  # a holds it
    assert b.claim("S", now=110.0) is None
    assert b.due_series(5, now=139.0) == []  # lease live until 140
    assert a.renew("S", now=130.0)  # a is alive: lease until 160
    assert b.due_series(5, now=150.0) == []
    # a dies (no more renewals): after its lease b takes the series over
    assert b.due_series(5, now=161.0) == ["S"]
    taken = b.claim("S", quiet_seconds=5, now=161.0)
    assert taken is not None and len(taken[1]) == 3
    assert not a.renew("S", now=162.0)
    # a's late finish changes nothing; b's removes the instances once
    assert a.finish("S", "uploaded", claimed[0], claimed[1]) == (False, [])
    final, removed = b.finish("S", "uploaded", taken[0], taken[1])
    assert final is True and len(removed) == 3
    row = a.series("S")
    assert row is not None and row.state == "uploaded" and row.uploaded_count == 3
    assert row.owner == "" and a.queue_depth() == 0


def test_late_instance_from_another_replica_reopens(tmp_path: Path, open_state: Open) -> None:
    """Replica b's clock may lag a's: its instance still counts as arriving after a's claim."""
    a = open_state(owner="replica-a")
    b = open_state(owner="replica-b")
    a.record_instance("1.1", "S", "ST", tmp_path / "1.dcm", 1, now=100.0)
    claimed_at, rows = a.claim("S", now=120.0)  # type: ignore[misc]
    b.record_instance("1.2", "S", "ST", tmp_path / "2.dcm", 1, now=90.0)  # clock behind
    b.record_instance("1.1", "S", "ST", tmp_path / "1.dcm", 1, now=91.0)  # duplicate
    assert b.series("S").state == "uploading"  # type: ignore[union-attr]
    final, removed = a.finish("S", "uploaded", claimed_at, rows)
    assert final is False and removed == []  # 1.1 came again: its newer row stays
    row = b.series("S")
    assert row is not None and row.state == "receiving"
    assert sorted(i.sop_uid for i in b.instances("S")) == ["1.1", "1.2"]
    # the pipeline frees only files no row points at (1.1's new copy has the same path)
    assert a.recorded_paths([str(tmp_path / "1.dcm"), str(tmp_path / "gone.dcm")]) == {
        str(tmp_path / "1.dcm")
    }


def test_recover_with_shared_state_keeps_live_leases(pg_url: str, tmp_path: Path) -> None:
    a = State(tmp_path / "x.sqlite", url=pg_url, owner="a", lease_seconds=30)
    b = State(tmp_path / "x.sqlite", url=pg_url, owner="b", lease_seconds=30)
    try:
        a.record_instance("1.1", "LIVE", "ST", tmp_path / "1.dcm", 1, now=1.0)
        a.record_instance("2.1", "DEAD", "ST", tmp_path / "2.dcm", 1, now=1.0)
        assert a.claim("LIVE") is not None
        assert a.claim("DEAD", now=1.0) is not None  # its lease ran out long ago
        assert b.shared and b.recover() == 1  # b starting up takes only the dead one back
        assert b.series("LIVE").state == "uploading"  # type: ignore[union-attr]
        assert b.series("DEAD").state == "complete"  # type: ignore[union-attr]
        assert b.leased() == {"LIVE"}
    finally:
        a.close()
        b.close()


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


def test_per_scanner_counts_from_replicas_sharing_state(tmp_path: Path, open_state: Open) -> None:
    """The status numbers read the same on either backend, whichever replica recorded."""
    a = open_state(owner="replica-a")
    b = open_state(owner="replica-b")
    a.record_instance("1.1", "S", "ST", tmp_path / "1.dcm", 1, calling_aet="CT1")
    b.record_instance("1.2", "S", "ST", tmp_path / "2.dcm", 1, calling_aet="CT2")
    b.record_instance("2.1", "T", "ST", tmp_path / "3.dcm", 1, calling_aet="MR1")
    claimed_at, rows = b.claim("S")  # type: ignore[misc]
    assert b.finish("S", "uploaded", claimed_at, rows, placement="routed")[0]
    counts = a.scanner_counts()
    assert set(counts) == {"CT1", "MR1"}  # a series counts for its first instance's AE
    assert counts["CT1"]["received_instances"] == 2 and counts["CT1"]["uploaded_series"] == 1
    assert counts["CT1"]["routed"] == 1 and counts["MR1"]["uploaded_series"] == 0
    assert sum(hour["received"] for hour in a.activity(0).values()) == 3


def test_state_reconnects_after_the_database_restarts(tmp_path: Path) -> None:
    """A PostgreSQL restart fails the statements in flight (the receiver answers 0xA700 and
    the sender retries), then the same State carries on: no agent restart needed."""
    import psycopg

    from tests.support.postgres import PostgresServer

    with PostgresServer() as pg:
        state = State(tmp_path / "x.sqlite", url=pg.new_database())
        try:
            state.record_instance("1.1", "S", "ST", tmp_path / "1.dcm", 1)
            pg.restart()
            failures = 0
            # one thread takes the same connection from the (LIFO) pool each time: it fails
            # once, is reopened, and every later statement goes through
            for n in range(2, 12):
                try:
                    state.record_instance(f"1.{n}", "S", "ST", tmp_path / f"{n}.dcm", 1)
                except psycopg.OperationalError:
                    failures += 1
            assert failures == 1
            assert state.queue_depth() == 1 + 10 - failures
        finally:
            state.close()


def test_duplicates_racing_an_upload_neither_deadlock_nor_strand(
    tmp_path: Path, pg_url: str
) -> None:
    """One replica keeps recording copies of a series' instances while another claims and
    finishes it in a loop, on a real PostgreSQL: no statement fails (a deadlock would abort
    one), and the last pass leaves nothing behind."""
    import threading

    receiver = State(tmp_path / "x.sqlite", url=pg_url, owner="receiver")
    uploader = State(tmp_path / "x.sqlite", url=pg_url, owner="uploader")
    errors: list[BaseException] = []
    stop = threading.Event()
    done = {"recorded": 0, "finished": 0}  # each written by its one thread

    def receive() -> None:
        n = 0
        while not stop.is_set():
            try:
                sop = f"1.{n % 20}"
                receiver.record_instance(sop, "S", "ST", tmp_path / f"{sop}.dcm", 1)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return
            n += 1
            done["recorded"] = n

    def upload() -> None:
        while not stop.is_set():
            try:
                claimed = uploader.claim("S")
                if claimed is not None:
                    uploader.finish("S", "uploaded", claimed[0], claimed[1])
                    done["finished"] += 1
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    threads = [threading.Thread(target=receive), threading.Thread(target=upload)]
    try:
        for thread in threads:
            thread.start()
        # until both sides have raced many times (or one of them failed)
        wait_until(
            lambda: errors or (done["recorded"] >= 300 and done["finished"] >= 20), timeout=60
        )
        stop.set()
        for thread in threads:
            thread.join()
        assert errors == []
        claimed = uploader.claim("S")  # None if the last loop's pass left it uploaded
        if claimed is not None:
            assert uploader.finish("S", "uploaded", claimed[0], claimed[1])[0]
        assert uploader.queue_depth() == 0
        row = uploader.series("S")
        assert row is not None and row.state == "uploaded" and row.received_count > 20
    finally:
        stop.set()
        receiver.close()
        uploader.close()


def test_replicas_starting_together_migrate_a_postgresql_database_once(
    tmp_path: Path, pg_url: str
) -> None:
    import threading

    import psycopg
    from fwagent.state import SCHEMA_VERSION, NewerStateError

    opened: list[State] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(State(tmp_path / "x.sqlite", url=pg_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for state in opened:
        state.close()
    assert errors == [] and len(opened) == 4
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM fwagent_schema").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE fwagent_schema SET version = version + 1")
    with pytest.raises(NewerStateError, match="postgresql://fwagent@127.0.0.1:.* newer than"):
        State(tmp_path / "x.sqlite", url=pg_url)
