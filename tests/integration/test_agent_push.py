"""PUSH end to end with real peers: storescu / Orthanc -> agent -> fwlite (real flywheel-sdk)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flywheel
import pydicom
import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict
from fwmapping import SentTag, add_sent_tag

from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.held_uploads import HeldUploads
from tests.support.polling import wait_until
from tests.support.site_files import zip_members
from tests.support.tls import make_tls_files

QUIET = 0.5


def agent_config(tmp_path: Path, fwlite: FwliteServer, **push: Any) -> dict[str, Any]:
    tls = push.pop("tls", {"enabled": False})
    top = push.pop("top", {})
    return {
        "flywheel": {
            "api_key": fwlite.api_key,
            "retry_max_seconds": 60,
            "retry_max_interval": 0.5,
            "failed_retry_seconds": 1,
        },
        "spool_dir": str(tmp_path / f"spool-{peers.free_port()}"),
        "spool_min_free_mb": 0,
        "push": {
            "ae_title": "FWAGENT",
            "host": "127.0.0.1",
            "port": peers.free_port(),
            "series_quiet_seconds": QUIET,
            "tls": tls,
            **push,
        },
        **top,
    }


@pytest.fixture
def make_agent(tmp_path: Path, fwlite: FwliteServer) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def make(**push: Any) -> Agent:
        agent = Agent(config_from_dict(agent_config(tmp_path, fwlite, **push)))
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


def settled(agent: Agent, count: int) -> bool:
    """``count`` series known and none still moving."""
    rows = agent.state.all_series()
    return len(rows) == count and all(
        r.state in ("uploaded", "opted_out", "abandoned") for r in rows
    )


def refused_uploads(fwlite: FwliteServer) -> int:
    """Uploads fwlite answered 503 (an injected fault)."""
    return sum(
        1 for r in fwlite.requests() if r["path"].startswith("/api/upload") and r["status"] == 503
    )


def tree(fw: Any) -> dict[str, list[tuple[str, str, str, str, int]]]:
    """group -> [(project, subject, session, acquisition, n files)]"""
    out: dict[str, list[tuple[str, str, str, str, int]]] = {}
    for session in fw.sessions():
        session = fw.get_session(session.id)
        project = fw.get_project(session.parents.project)
        subject = fw.get_subject(session.parents.subject)
        for acq in fw.get_session_acquisitions(session.id):
            acq = fw.get_acquisition(acq.id)
            out.setdefault(session.parents.group, []).append(
                (project.label, subject.label, session.label, acq.label, len(acq.files))
            )
    return out


def test_storescu_routing_mix_lands_where_the_rules_say(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    fw.get_group("psych").add_project(label="study01")
    specs = {
        "routed": SeriesSpec(count=4, patient_id="fw://psych/study01/s01/baseline"),
        "group_only": SeriesSpec(count=3, patient_id="fw://psych"),
        "no_scheme": SeriesSpec(count=2, patient_id="psych/study01"),
        "missing_group": SeriesSpec(count=2, patient_id="fw://nosuchgroup/x"),
        "opt_out": SeriesSpec(count=3, patient_id="fw://psych/study01/s02 NOFW"),
    }
    paths: list[Path] = []
    for name, spec in specs.items():
        paths += write_series(tmp_path / name, spec)
    agent = make_agent()
    result = peers.storescu(agent.config.push.port, paths)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: settled(agent, 5))

    placed = tree(fw)
    psych = sorted(placed["psych"])
    assert [p[0] for p in psych] == ["Unsorted", "study01"]
    assert psych[1] == ("study01", "s01", "baseline", "Series 002", 1)
    unknown = sorted(placed["unknown"])
    assert [u[0] for u in unknown] == ["Unsorted", "Unsorted"]
    assert sum(len(v) for v in placed.values()) == 4  # the opted-out series never uploaded
    counts = agent.state.count_by_state()
    assert counts["uploaded"] == 4 and counts["opted_out"] == 1
    assert agent.state.queue_depth() == 0
    assert list(agent.spool.instances.rglob("*.dcm")) == []  # spool freed (incl. opt-out)
    # provenance: the routing object is kept on the session
    routed = fw.sessions.find_first("label=baseline")
    routing = fw.get_session(routed.id).info["fwagent"]["routing"]
    assert routing == {
        "field": "PatientID",
        "value": "fw://psych/study01/s01/baseline",
        "placement": "routed",
        "resolved": "routed",
    }
    acq = fw.get_session_acquisitions(routed.id)[0]
    assert len(zip_members(fw, acq.id)) == 4
    entry = fw.get_acquisition(acq.id).files[0]
    assert entry.name == "Series 002.dicom.zip" and entry.type == "dicom"
    assert entry.info["header"]["dicom"]["PatientID"] == "fw://psych/study01/s01/baseline"


def test_duplicates_late_arrivals_sent_tag_and_malformed(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    spec = SeriesSpec(count=3, patient_id="fw://unknown/Unsorted/s9")
    paths = write_series(tmp_path / "a", spec)
    # a file that went out through dicom-send: acknowledged, dropped
    sent = write_series(tmp_path / "sent", SeriesSpec(count=1))[0]
    ds = pydicom.dcmread(sent)
    add_sent_tag(ds, SentTag())
    ds.save_as(sent)
    # a malformed instance in the same series: no SeriesInstanceUID is fine for storescu
    broken = tmp_path / "broken.dcm"
    ds = pydicom.dcmread(paths[0])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    del ds.SeriesInstanceUID
    ds.save_as(broken)
    agent = make_agent()
    port = agent.config.push.port
    # paths[0] twice: a duplicate; the broken one is answered 0xC000, the rest carry on
    peers.storescu(port, [*paths, paths[0], sent, broken])
    wait_until(lambda: settled(agent, 1))
    (session,) = fw.sessions()
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acq.id)) == 3
    assert agent.state.counters()["dropped_sent_by_flywheel"] == 1
    quarantine = agent.state.quarantined()
    assert len(quarantine) == 1 and "SeriesInstanceUID" in quarantine[0]["reason"]
    # a late instance re-uploads the complete series under the same file name
    late = write_series(tmp_path / "late", SeriesSpec(**{**spec.__dict__, "count": 2}))
    assert peers.storescu(port, late).returncode == 0
    wait_until(lambda: agent.state.series(spec.series_uid).uploaded_count == 5)
    wait_until(lambda: settled(agent, 1))
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(fw.get_acquisition(acq.id).files) == 1
    assert len(zip_members(fw, acq.id)) == 5
    assert len(fw.sessions()) == 1


def test_disallowed_ae_and_host_refused(
    tmp_path: Path, fwlite: FwliteServer, make_agent: Callable[..., Agent]
) -> None:
    paths = write_series(tmp_path / "a", SeriesSpec(count=1))
    agent = make_agent(allowed_calling_aets=["SCANNER1"])
    refused = peers.storescu(agent.config.push.port, paths, aet="INTRUDER")
    assert refused.returncode == 1
    assert "Association Rejected" in refused.stderr
    assert "Reason: Calling AE Title Not Recognized" in refused.stderr
    assert agent.state.queue_depth() == 0
    assert peers.storescu(agent.config.push.port, paths, aet="SCANNER1").returncode == 0
    wait_until(lambda: settled(agent, 1))
    (row,) = agent.state.all_series()
    assert (row.state, row.calling_aet, row.uploaded_count) == ("uploaded", "SCANNER1", 1)
    other = make_agent(allowed_hosts=["10.9.9.9"])
    assert peers.storescu(other.config.push.port, paths).returncode != 0
    assert other.state.queue_depth() == 0


def test_mutual_tls_accepts_client_cert_and_refuses_without(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    files = make_tls_files(tmp_path / "pki")
    tls = {
        "enabled": True,
        "cert": str(files.server_cert),
        "key": str(files.server_key),
        "ca": str(files.ca),
        "require_client_cert": True,
    }
    agent = make_agent(tls=tls)
    paths = write_series(tmp_path / "a", SeriesSpec(count=2))
    port = agent.config.push.port
    no_cert = peers.storescu(
        port, paths, extra=["+tla", "+cf", str(files.ca)]
    )  # TLS, no client cert
    assert no_cert.returncode == 1
    assert "Association Request Failed" in no_cert.stderr  # the handshake was refused
    assert agent.state.queue_depth() == 0
    ok = peers.storescu(
        port,
        paths,
        extra=["+tls", str(files.client_key), str(files.client_cert), "+cf", str(files.ca)],
    )
    assert ok.returncode == 0, ok.stderr
    wait_until(lambda: settled(agent, 1))
    (session,) = fw.sessions()
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acq.id)) == 2


def test_out_of_resources_below_free_space_floor(
    tmp_path: Path, fwlite: FwliteServer, make_agent: Callable[..., Agent]
) -> None:
    # a floor this disk cannot meet: more than its whole size (free space is always less)
    floor = shutil.disk_usage(tmp_path).total / 2**20 + 1
    agent = make_agent(top={"spool_min_free_mb": floor})
    paths = write_series(tmp_path / "a", SeriesSpec(count=2))
    # -nh: storescu goes on after a refusal, so each instance shows its own answer
    result = peers.storescu(agent.config.push.port, paths, extra=["-v", "-nh"])
    assert result.stderr.count("Received Store Response (Refused: OutOfResources)") == 2
    assert "Received Store Response (Success)" not in result.stderr
    assert agent.state.queue_depth() == 0
    assert list(agent.spool.instances.rglob("*.dcm")) == []


def test_flywheel_outage_waits_and_resumes(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    fwlite.set_fault(status=503, path_prefix="/api/upload")
    spec = SeriesSpec(count=3)
    assert (
        peers.storescu(agent.config.push.port, write_series(tmp_path / "a", spec)).returncode == 0
    )

    def last_error() -> str:
        row = agent.state.series(spec.series_uid)
        return row.last_error if row is not None and row.state == "failed" else ""

    # refused twice: parked as failed with the reason, nothing freed while Flywheel is down
    wait_until(lambda: refused_uploads(fwlite) >= 2 and last_error().startswith("HTTP 503"))
    assert fw.sessions() == []
    assert agent.state.queue_depth() == 3
    # then Flywheel gone altogether (stopped while still failing, so no retry can slip
    # through in between), and back without the fault (it lives in memory)
    fwlite.stop()
    wait_until(lambda: "Connection refused" in last_error())  # tried while it was down
    assert agent.state.queue_depth() == 3
    fwlite.start()
    wait_until(lambda: settled(agent, 1), timeout=30)
    (session,) = fw.sessions()
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acq.id)) == 3
    assert agent.state.queue_depth() == 0


def test_one_failing_series_never_blocks_the_others(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    for label in ("broken", "healthy"):
        fw.get_group("psych").add_project(label=label)
    # Flywheel refuses every upload into one project (503), and only those
    fwlite.set_fault(status=503, path_prefix="/api/upload", body_contains='"broken"')
    agent = make_agent()
    port = agent.config.push.port
    failing = SeriesSpec(count=3, patient_id="fw://psych/broken/s1")
    assert peers.storescu(port, write_series(tmp_path / "f", failing)).returncode == 0
    wait_until(lambda: refused_uploads(fwlite) >= 1)  # its upload has started failing

    healthy = [SeriesSpec(count=2, patient_id=f"fw://psych/healthy/s{n}") for n in range(3)]
    for n, spec in enumerate(healthy):
        assert peers.storescu(port, write_series(tmp_path / f"h{n}", spec)).returncode == 0
        wait_until(lambda spec=spec: agent.state.series(spec.series_uid).state == "uploaded")
    for spec in healthy:
        row = agent.state.series(spec.series_uid)
        assert row is not None and row.uploaded_at is not None
        # on time: quiet period + one sweep + the upload, not the failing series' retries
        assert row.uploaded_at - row.last_received < QUIET + 3.0, row
        assert (
            row.uploaded_count == 2
            and row.destination == f"psych/healthy/{spec.patient_id[-2:]}/My Study"
        )

    # the failing series is parked with its reason and its own next attempt, kept whole
    wait_until(lambda: agent.state.series(failing.series_uid).state == "failed")
    row = agent.state.series(failing.series_uid)
    assert row.last_error.startswith("HTTP 503") and row.attempts >= 1
    assert len(agent.state.instances(failing.series_uid)) == 3
    [failure] = agent.state.summary()["failures"]
    assert failure["series_uid"] == failing.series_uid and failure["state"] == "failed"
    assert refused_uploads(fwlite) >= 2  # tried again while the others went through

    fwlite.clear_fault()
    wait_until(lambda: settled(agent, 4))
    assert agent.state.series(failing.series_uid).uploaded_count == 3
    assert agent.state.queue_depth() == 0
    broken = fw.projects.find_first("label=broken")
    (session,) = fw.get_project_sessions(broken.id)
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acq.id)) == 3


def test_a_stalled_upload_holds_one_worker_not_the_queue(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    for label in ("stalled", "healthy"):
        fw.get_group("psych").add_project(label=label)
    gate, held = threading.Event(), threading.Event()
    config = config_from_dict(agent_config(tmp_path, fwlite))
    agent = Agent(
        config, client_factory=lambda: HeldUploads(fwlite.client(), gate, held, '"stalled"')
    )
    agent.start()
    try:
        port = agent.config.push.port
        stalled = SeriesSpec(count=2, patient_id="fw://psych/stalled/s1")
        assert peers.storescu(port, write_series(tmp_path / "s", stalled)).returncode == 0
        assert held.wait(30)  # its upload is in flight and gets no answer
        healthy = [SeriesSpec(count=2, patient_id=f"fw://psych/healthy/s{n}") for n in range(2)]
        paths = [
            p for n, spec in enumerate(healthy) for p in write_series(tmp_path / f"h{n}", spec)
        ]
        assert peers.storescu(port, paths).returncode == 0
        for spec in healthy:
            wait_until(lambda spec=spec: agent.state.series(spec.series_uid).state == "uploaded")
            row = agent.state.series(spec.series_uid)
            assert row.uploaded_at - row.last_received < QUIET + 3.0, row
        assert agent.state.series(stalled.series_uid).state == "uploading"
        gate.set()  # the link recovers: the stalled upload completes
        wait_until(lambda: settled(agent, 3))
        assert agent.state.series(stalled.series_uid).uploaded_count == 2
        assert agent.state.queue_depth() == 0
    finally:
        gate.set()
        agent.stop()


def test_orthanc_forwards_to_the_agent(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    from tests.support.orthanc import OrthancServer

    agent = make_agent()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"agent": ("FWAGENT", "127.0.0.1", agent.config.push.port)}
    )
    orthanc.start()
    try:
        paths = write_series(tmp_path / "a", SeriesSpec(count=3, patient_id="fw://unknown"))
        ids = [orthanc.upload(p)["ID"] for p in paths]
        orthanc.rest(
            "POST", "/modalities/agent/store", json={"Resources": ids, "Synchronous": True}
        )
    finally:
        orthanc.stop()
    wait_until(lambda: settled(agent, 1))
    (session,) = fw.sessions()
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acq.id)) == 3


def test_echo_reports_scp_and_flywheel_verdicts(
    tmp_path: Path,
    fwlite: FwliteServer,
    make_agent: Callable[..., Agent],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml
    from fwagent.cli import main

    agent = make_agent()
    raw = agent_config(tmp_path, fwlite)
    raw["push"]["port"] = agent.config.push.port
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["echo", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK   push SCP FWAGENT@127.0.0.1" in out and "OK   Flywheel: authenticated" in out
    raw["flywheel"]["api_key"] = fwlite.api_key.rsplit(":", 1)[0] + ":wrong"
    raw["push"]["port"] = peers.free_port()
    path.write_text(yaml.safe_dump(raw))
    assert main(["echo", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL push SCP" in out and "nothing answers" in out
    assert "FAIL Flywheel: Flywheel rejected the API key (401)" in out
