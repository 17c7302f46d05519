"""PULL end to end: Orthanc (the PACS) -> agent (C-FIND, C-MOVE/C-GET) -> fwlite (real SDK)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict
from fwagent.pull import decide as d
from fwagent.pull.service import PullService

from tests.support import peers
from tests.support.dicomgen import SeriesSpec, make_instance, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.held_uploads import HeldUploads
from tests.support.orthanc import OrthancServer
from tests.support.orthanc import pull_config as orthanc_pull_config
from tests.support.polling import wait_until
from tests.support.site_files import only_acquisition_members
from tests.support.tls import make_tls_files

pytestmark = pytest.mark.peers

TODAY = dt.date.today().strftime("%Y%m%d")


def uploads(fwlite: FwliteServer) -> int:
    return sum(
        1
        for r in fwlite.requests()
        if r["method"] == "POST" and r["path"].startswith("/api/upload")
    )


def uploaded(agent: Agent, series_uid: str) -> bool:
    row = agent.state.series(series_uid)
    return row is not None and row.state == "uploaded"


def pull_config(
    tmp_path: Path, fwlite: FwliteServer, orthanc: OrthancServer, port: int, **pull: Any
) -> dict[str, Any]:
    """Retrieving from Orthanc, uploading to fwlite; a failed retrieval is retried at once."""
    timeouts = {"dimse_timeout_seconds": 10, "retrieve_timeout_seconds": 30}
    settings = {"retry_backoff_seconds": 0, **timeouts, **pull}
    return orthanc_pull_config(tmp_path, orthanc, port, api_key=fwlite.api_key, **settings)


def load(orthanc: OrthancServer, tmp_path: Path, count: int, **kw: Any) -> SeriesSpec:
    spec = SeriesSpec(count=count, **{"study_date": TODAY, "patient_id": "fw://unknown", **kw})
    orthanc.upload_many(write_series(tmp_path / "in" / spec.series_uid, spec))
    return spec


@pytest.fixture
def orthanc_and_port(tmp_path: Path) -> Iterator[tuple[OrthancServer, int]]:
    peers.require("Orthanc")
    port = peers.free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"FWAGENT": ("FWAGENT", "127.0.0.1", port)}
    ).start()
    yield orthanc, port
    orthanc.stop()


def test_fwagent_run_pulls_a_study_into_flywheel(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, orthanc_and_port: tuple[OrthancServer, int]
) -> None:
    orthanc, port = orthanc_and_port
    spec = load(orthanc, tmp_path, 3)
    config = pull_config(tmp_path, fwlite, orthanc, port, interval_seconds=1)
    agent = Agent(config_from_dict(config))
    agent.start()  # the real `fwagent run` wiring: pull.start() hook + pipeline
    try:
        wait_until(lambda: uploaded(agent, spec.series_uid))
        scanners = agent.state.scanner_counts()
    finally:
        agent.stop()
    assert len(only_acquisition_members(fw)) == 3
    assert uploads(fwlite) == 1
    # pulled series count for the PACS they came from
    peer = config["pull"]["peer"]["ae_title"]
    assert list(scanners) == [peer]
    assert scanners[peer]["received_instances"] == 3
    assert (scanners[peer]["uploaded_series"], scanners[peer]["unsorted"]) == (1, 1)  # fw://unknown


@pytest.fixture
def manual(
    tmp_path: Path, fwlite: FwliteServer, orthanc_and_port: tuple[OrthancServer, int]
) -> Iterator[tuple[Agent, PullService, OrthancServer]]:
    """Agent (pipeline only) + a pull service whose cycles the test drives itself."""
    orthanc, port = orthanc_and_port
    config = config_from_dict(pull_config(tmp_path, fwlite, orthanc, port))
    agent = Agent(config)
    agent.pipeline.start(interval=0.1)
    service = PullService(config, agent.state, on_complete=agent.pipeline.wake)
    service.scp.start("FWAGENT", "127.0.0.1", port)
    yield agent, service, orthanc
    service.stop()
    agent.stop()


def test_growing_series_uploaded_once_stable_then_reuploaded_complete(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, manual: tuple[Agent, PullService, Any]
) -> None:
    agent, service, orthanc = manual
    spec = load(orthanc, tmp_path, 3)
    assert service.cycle().actions == {spec.series_uid: d.WAIT}
    # two more images arrive before the next poll: still growing, nothing moved
    for index in (3, 4):
        ds = make_instance(spec, index)
        ds.save_as(tmp_path / f"{index}.dcm", enforce_file_format=True)
        orthanc.upload(tmp_path / f"{index}.dcm")
    spec.count = 5
    assert service.cycle().actions == {spec.series_uid: d.WAIT}
    assert uploads(fwlite) == 0
    assert service.cycle().retrieved == {spec.series_uid: 5}
    wait_until(lambda: uploaded(agent, spec.series_uid))
    assert (uploads(fwlite), len(only_acquisition_members(fw))) == (1, 5)

    # stable and uploaded: later polls move nothing
    assert service.cycle().retrieved == {}
    # more images after the upload: re-uploaded complete once stable again
    for index in (5, 6):
        ds = make_instance(spec, index)
        ds.save_as(tmp_path / f"{index}.dcm", enforce_file_format=True)
        orthanc.upload(tmp_path / f"{index}.dcm")
    assert service.cycle().actions == {spec.series_uid: d.WAIT}
    assert service.cycle().retrieved == {spec.series_uid: 7}
    wait_until(lambda: uploaded(agent, spec.series_uid) and uploads(fwlite) == 2)
    assert (
        len(only_acquisition_members(fw)) == 7
    )  # the same acquisition, its file replaced by the full series
    assert len(fw.sessions()) == 1


def test_series_growing_during_a_retrieval_is_uploaded_complete_once_stable(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, orthanc_and_port: tuple[OrthancServer, int]
) -> None:
    orthanc, port = orthanc_and_port
    config = config_from_dict(pull_config(tmp_path, fwlite, orthanc, port))
    gate, held = threading.Event(), threading.Event()
    agent = Agent(config, client_factory=lambda: HeldUploads(fwlite.client(), gate, held))
    agent.pipeline.start(interval=0.05)
    service = PullService(config, agent.state, on_complete=agent.pipeline.wake)
    service.scp.start("FWAGENT", "127.0.0.1", port)
    try:
        spec = load(orthanc, tmp_path, 5)
        uid = spec.series_uid
        grown = threading.Event()

        def grow_during_retrieval(series_uid: str, sop_uid: str) -> None:
            if series_uid == uid and not grown.is_set():
                grown.set()  # the first image of the C-MOVE is in: the PACS gets 3 more
                for index in (5, 6, 7):
                    path = tmp_path / f"late-{index}.dcm"
                    make_instance(spec, index).save_as(path, enforce_file_format=True)
                    orthanc.upload(path)

        service.scp.on_stored = grow_during_retrieval
        assert (report := service.cycle()).actions == {uid: d.WAIT}, report
        first = service.cycle()
        assert grown.is_set() and first.failed == {}, first
        assert first.retrieved == {uid: 5}  # Orthanc listed the series when the move began
        service.scp.on_stored = None
        assert held.wait(10)  # those 5 are being uploaded, held in flight during the next polls
        assert agent.state.series(uid).state == "uploading"  # type: ignore[union-attr]

        report = service.cycle()
        assert report.actions == {uid: d.WAIT}, report  # 5 -> 8: wait until it stays
        # the count is stable from here: the complete series is uploaded within two polls.
        # 1st: the earlier copy is still being uploaded: retrieved next poll, no penalty
        report = service.cycle()
        assert (report.retrieved, report.failed, list(report.deferred)) == ({}, {}, [uid])
        gate.set()  # that upload goes through
        wait_until(lambda: uploaded(agent, uid) and uploads(fwlite) == 1)
        # 2nd: the complete series is retrieved, then uploaded
        assert service.cycle().retrieved == {uid: 8}
        wait_until(lambda: uploaded(agent, uid) and uploads(fwlite) == 2, timeout=10)
        pulled = service.store.series()[uid]
        assert (pulled.state, pulled.uploaded_count, pulled.failures) == (d.DONE, 8, 0)
        assert len(only_acquisition_members(fw)) == 8
        # once: later polls move and upload nothing more
        assert service.cycle().retrieved == {}
        assert uploads(fwlite) == 2
    finally:
        gate.set()
        service.stop()
        agent.stop()


@pytest.mark.slow
def test_orthanc_stopped_mid_retrieval_completes_later_without_duplicates(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, manual: tuple[Agent, PullService, Any]
) -> None:
    agent, service, orthanc = manual
    spec = load(orthanc, tmp_path, 300)
    service.cycle()

    def kill_when_partly_received() -> None:
        wait_until(lambda: len(agent.state.instances(spec.series_uid)) >= 40, timeout=30)
        orthanc.kill()

    killer = threading.Thread(target=kill_when_partly_received)
    killer.start()
    report = service.cycle()
    killer.join()
    assert spec.series_uid in report.failed
    partial = len(agent.state.instances(spec.series_uid))
    assert 40 <= partial < 300
    # a partial pull is never handed to the uploader: it is not due, whatever the sweeps do
    row = agent.state.series(spec.series_uid)
    assert row is not None and row.state == "receiving"
    assert spec.series_uid not in agent.state.due_series(0)
    assert uploads(fwlite) == 0
    assert service.store.series()[spec.series_uid].state == d.RETRYING

    orthanc.start()  # same ports, same storage
    report = service.cycle()
    assert report.retrieved == {spec.series_uid: 300}
    wait_until(lambda: uploaded(agent, spec.series_uid))
    names = only_acquisition_members(fw)
    assert len(names) == len(set(names)) == 300
    assert uploads(fwlite) == 1


def test_tls_to_orthanc_c_get(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    peers.require("Orthanc")
    files = make_tls_files(tmp_path / "pki")
    orthanc = OrthancServer(
        tmp_path / "orthanc",
        modalities={"FWAGENT": ("FWAGENT", "127.0.0.1", peers.free_port())},
        tls={
            "cert": files.server_cert,
            "key": files.server_key,
            "ca": files.ca,
            "require_client_cert": True,
        },
    ).start()
    try:
        spec = load(orthanc, tmp_path, 3)
        tls = {
            "enabled": True,
            "cert": str(files.client_cert),
            "key": str(files.client_key),
            "ca": str(files.ca),
        }
        port = orthanc.modalities["FWAGENT"][2]
        config = pull_config(
            tmp_path, fwlite, orthanc, port, method="c-get", tls=tls, interval_seconds=1
        )
        agent = Agent(config_from_dict(config))
        agent.start()
        try:
            wait_until(lambda: uploaded(agent, spec.series_uid))
        finally:
            agent.stop()
        assert len(only_acquisition_members(fw)) == 3

        # a peer certificate our CA did not sign is refused: a clear, one-line poll error
        bad = config_from_dict(
            pull_config(
                tmp_path / "bad", fwlite, orthanc, peers.free_port(),
                tls={**tls, "ca": str(files.other_ca)},
            )
        )  # fmt: skip
        from fwagent.state import State

        state = State(bad.state_path)
        service = PullService(bad, state)
        try:
            error = service.cycle().error
        finally:
            service.stop()
            state.close()
        assert error.startswith("peer ORTHANC@127.0.0.1:")
    finally:
        orthanc.stop()
