"""PULL against a real Orthanc: poll, decide, retrieve into the spool (C-MOVE and C-GET)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fwagent.config import config_from_dict
from fwagent.pull import decide as d
from fwagent.pull.service import PullService
from fwagent.state import COMPLETE, State

from tests.support import dicomgen, peers
from tests.support.orthanc import OrthancServer, pull_config

pytestmark = pytest.mark.peers

TODAY = dt.date.today().strftime("%Y%m%d")


@dataclass
class Rig:
    orthanc: OrthancServer
    service: PullService
    state: State
    tmp: Path

    def load(self, count: int, **kw: Any) -> dicomgen.SeriesSpec:
        spec = dicomgen.SeriesSpec(count=count, **{"study_date": TODAY, **kw})
        self.orthanc.upload_many(dicomgen.write_series(self.tmp / "in" / spec.series_uid, spec))
        return spec

    def grow(self, spec: dicomgen.SeriesSpec, more: int) -> None:
        out = self.tmp / "in" / spec.series_uid
        for index in range(spec.count, spec.count + more):
            ds = dicomgen.make_instance(spec, index)
            path = out / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            self.orthanc.upload(path)
        spec.count += more

    def pulled(self, series_uid: str) -> int:
        return len(self.state.instances(series_uid))


def make_rig(tmp_path: Path, method: str = "c-move", **pull: Any) -> Rig:
    peers.require("Orthanc")
    port = peers.free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"FWAGENT": ("FWAGENT", "127.0.0.1", port)}
    ).start()
    config = config_from_dict(
        pull_config(
            tmp_path,
            orthanc,
            port,
            method=method,
            retry_backoff_seconds=0,
            dimse_timeout_seconds=10,
            retrieve_timeout_seconds=20,
            **pull,
        )
    )
    state = State(config.state_path)
    service = PullService(config, state)
    service.scp.start("FWAGENT", "127.0.0.1", port)
    return Rig(orthanc, service, state, tmp_path)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    yield rig
    rig.service.stop()
    rig.orthanc.stop()
    rig.state.close()


def test_stable_series_is_retrieved_once_growing_one_waits_then_is_retrieved_again(
    rig: Rig,
) -> None:
    spec = rig.load(3)
    first = rig.service.cycle()
    assert first.actions == {spec.series_uid: d.WAIT}
    assert first.find_requests == 2  # one STUDY-level + one SERIES-level
    assert rig.pulled(spec.series_uid) == 0

    second = rig.service.cycle()
    assert second.retrieved == {spec.series_uid: 3}
    assert rig.pulled(spec.series_uid) == 3
    row = rig.state.series(spec.series_uid)
    assert row is not None and (row.state, row.source) == (COMPLETE, "pull")
    assert row.calling_aet == rig.service.config.pull.peer.ae_title  # the scanner: the PACS

    # nothing changed: the unchanged, settled study costs one C-FIND and moves nothing
    third = rig.service.cycle()
    assert (third.find_requests, third.retrieved, third.actions) == (1, {}, {})

    # more images arrive: wait one poll, then retrieve the complete series again
    rig.grow(spec, 2)
    fourth = rig.service.cycle()
    assert fourth.actions == {spec.series_uid: d.WAIT}
    assert fourth.retrieved == {}
    fifth = rig.service.cycle()
    assert fifth.retrieved == {spec.series_uid: 5}
    assert rig.pulled(spec.series_uid) == 5  # each SOP instance once in the spool
    assert rig.service.store.series()[spec.series_uid].uploaded_count == 5


def test_opted_out_series_is_never_moved(rig: Rig) -> None:
    kept = rig.load(2)
    out = rig.load(2, patient_id="fw://psych/study01/NOFW")
    first = rig.service.cycle()
    assert first.actions[out.series_uid] == d.SKIP  # decided on the C-FIND answer
    report = rig.service.cycle()
    assert report.retrieved == {kept.series_uid: 2}
    assert out.series_uid not in report.actions  # settled study: not even re-queried
    assert rig.state.series(out.series_uid) is None  # nothing of it reached the agent
    assert rig.pulled(out.series_uid) == 0
    assert rig.service.store.series()[out.series_uid].state == d.OPTED_OUT


def test_lookback_window_ignores_old_studies(rig: Rig) -> None:
    rig.load(2, study_date="19990101")
    recent = rig.load(1)
    report = rig.service.cycle()
    assert list(report.actions) == [recent.series_uid]


def test_c_get_mode(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, method="c-get")
    try:
        spec = rig.load(4)
        rig.service.cycle()
        report = rig.service.cycle()
        assert report.retrieved == {spec.series_uid: 4}
        assert rig.pulled(spec.series_uid) == 4
        row = rig.state.series(spec.series_uid)
        assert row is not None and row.state == COMPLETE
        # C-GET stores arrive on our own association: the scanner is still the peer
        assert row.calling_aet == rig.service.config.pull.peer.ae_title != "FWAGENT"
    finally:
        rig.service.stop()
        rig.orthanc.stop()
        rig.state.close()


def test_unreachable_peer_is_reported_and_abandoned_series_shows_reason(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_failures=2)
    try:
        spec = rig.load(2)
        rig.service.cycle()
        # the PACS forgets our move destination: every retrieval now fails
        rig.orthanc.modalities = {"FWAGENT": ("FWAGENT", "127.0.0.1", peers.free_port())}
        rig.orthanc.restart()
        for _ in range(2):
            report = rig.service.cycle()
            assert spec.series_uid in report.failed
        series = rig.service.store.series()[spec.series_uid]
        assert series.state == d.ABANDONED and series.failures == 2
        summary = rig.service.store.summary()
        assert summary["series"][d.ABANDONED] == 1
        [problem] = summary["abandoned_and_retrying"]
        assert problem["series_uid"] == spec.series_uid
        assert "abandoned after 2 failed retrievals" in problem["reason"]
        # abandoned: no further attempts
        assert rig.service.cycle().failed == {}
        # `fwagent status` shows it, with the reason
        yaml_path = tmp_path / "agent.yaml"
        yaml_path.write_text(
            f"spool_dir: {tmp_path / 'spool'}\npull: {{enabled: true}}\npush: {{enabled: false}}\n"
        )
        out = subprocess.run(
            [sys.executable, "-m", "fwagent.cli", "status", "--config", str(yaml_path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        shown = json.loads(out.stdout)["pull"]
        assert shown["series"][d.ABANDONED] == 1
        assert shown["abandoned_and_retrying"][0]["reason"] == problem["reason"]
        rig.orthanc.stop()
        report = rig.service.cycle()
        assert "not reachable" in report.error
    finally:
        rig.service.stop()
        rig.orthanc.stop()
        rig.state.close()


def test_every_poll_sees_every_series(rig: Rig) -> None:
    """pynetdicom's reactor can take a C-FIND response off the queue when a request follows
    another on one association (seen here: about 1 poll in 150 missed the series); a poll
    must notice and ask again, never report a study with its series missing."""
    spec = rig.load(2)
    poller = rig.service.poller
    missed = [
        i for i in range(400) if [s.series_uid for s in poller.poll().series] != [spec.series_uid]
    ]
    assert missed == [], f"{len(missed)} of 400 polls missed the series"
