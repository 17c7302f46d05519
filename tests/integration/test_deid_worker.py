"""The de-id service on its own: work happens in recycled worker processes, nothing of the
library reaches the agent's process, re-sent instances get fresh copies."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pydicom
from fwagent.deid.service import Deidentifier
from fwagent.receiver import Spool
from fwagent.state import State

from tests.support.phi import PROFILE, phi_spec, write_phi_series


def spool_series(spool: Spool, state: State, paths: list[Path]) -> list[pydicom.Dataset]:
    headers = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        dest = spool.instance_path(ds.SeriesInstanceUID, ds.SOPInstanceUID)
        shutil.copyfile(path, dest)
        state.record_instance(ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, dest, 1)
        headers.append(ds)
    return headers


def test_copies_come_from_recycled_workers_and_the_agent_stays_clean(tmp_path: Path) -> None:
    before = pydicom.config.settings.reading_validation_mode, pydicom.config.INVALID_KEY_BEHAVIOR
    spool = Spool(tmp_path / "spool")
    state = State(spool.root / "state.sqlite")
    deid = Deidentifier(PROFILE, spool.root, state.path, tasks_per_worker=3)
    deid.start()
    try:
        paths = write_phi_series(tmp_path / "in", phi_spec(count=8))
        headers = spool_series(spool, state, paths)
        for ds in headers:
            deid.on_stored(ds.SeriesInstanceUID, ds.SOPInstanceUID)
        copies = deid.copies(state.instances())
        assert len(copies) == 8
        assert deid.recycled == 2  # 1 validation + 8 instances = 9 tasks, 3 per worker
        names = {Path(c.path).name for c in copies.values()}
        assert len(names) == 8 and all(n.startswith("1.2.826.0.") for n in names)
        for copy in copies.values():
            ds = pydicom.dcmread(copy.path)
            assert ds.PatientName == "ANONYMOUS"
            assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
            assert Path(copy.path).name == f"{ds.SOPInstanceUID}.dcm"
        # a re-sent instance (same SOP uid, newer version) gets a fresh copy; the old goes
        first = headers[0]
        old = copies[first.SOPInstanceUID]
        time.sleep(0.01)
        spool_series(spool, state, paths[:1])
        deid.on_stored(first.SeriesInstanceUID, first.SOPInstanceUID)
        again = deid.copies(state.instances(first.SeriesInstanceUID))
        fresh = again[first.SOPInstanceUID]
        assert fresh.received_at > old.received_at and fresh.path != old.path
        assert Path(fresh.path).name == Path(old.path).name  # same de-identified name
        assert not Path(old.path).exists()
        # uploaded: the copies leave with the originals
        deid.forget(state.instances())
        assert list((spool.root / "deid").rglob("*.dcm")) == []
    finally:
        deid.stop()
        state.close()
    assert "flywheel_migration" not in sys.modules and "fw_file" not in sys.modules
    after = pydicom.config.settings.reading_validation_mode, pydicom.config.INVALID_KEY_BEHAVIOR
    assert after == before


def live_workers(me: Any) -> list[Any]:
    """Spawned worker processes still running (an exited one waiting to be reaped holds
    no memory)."""
    import psutil

    found = []
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_one_worker_at_a_time_even_with_a_backlog(tmp_path: Path) -> None:
    """Instances queued faster than they are de-identified: recycling waits for the running
    task, so there is never more than one worker process (each holds the library)."""
    import psutil

    spool = Spool(tmp_path / "spool")
    state = State(spool.root / "state.sqlite")
    deid = Deidentifier(PROFILE, spool.root, state.path, tasks_per_worker=4)
    deid.start()
    peak = 0
    try:
        headers = spool_series(spool, state, write_phi_series(tmp_path / "in", phi_spec(count=20)))
        for ds in headers:  # all queued at once
            deid.on_stored(ds.SeriesInstanceUID, ds.SOPInstanceUID)
        me = psutil.Process()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, len(live_workers(me)))
            store = deid.store
            assert store is not None
            if all(store.current(r.sop_uid, r.received_at) for r in state.instances()):
                break
            time.sleep(0.02)
        assert len(deid.copies(state.instances())) == 20
        assert deid.recycled >= 4
    finally:
        deid.stop()
        state.close()
    assert peak == 1


def test_editing_the_profile_file_while_running_changes_nothing(tmp_path: Path) -> None:
    """Workers build the profile read at start-up: a recycled worker does not pick up an
    edited file (a new salt would split a series in two containers)."""
    profile = tmp_path / "profile.yaml"
    shutil.copyfile(PROFILE, profile)
    spool = Spool(tmp_path / "spool")
    state = State(spool.root / "state.sqlite")
    deid = Deidentifier(profile, spool.root, state.path, tasks_per_worker=1)
    deid.start()
    try:
        headers = spool_series(spool, state, write_phi_series(tmp_path / "in", phi_spec(count=2)))
        first = deid.copies(state.instances(headers[0].SeriesInstanceUID))
        profile.write_text(PROFILE.read_text().replace("site-secret-7f1c2b9e4d", "other-salt"))
        deid.forget(state.instances())
        again = deid.copies(state.instances(headers[0].SeriesInstanceUID))
        assert deid.recycled >= 2
        series = {
            str(pydicom.dcmread(c.path).SeriesInstanceUID)
            for c in [*first.values(), *again.values()]
        }
        assert len(series) == 1
    finally:
        deid.stop()
        state.close()
