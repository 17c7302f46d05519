"""Edge de-identification end to end: storescu -> agent (site de-id profile) -> fwlite.

Every byte fwlite stored (its data folder, zips opened) and every container and file the
SDK returns is scanned for each PHI value the series carried: zero hits, while the data
lands where the routing string says and every instance arrives.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flywheel
import pydicom
import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict
from pydicom.valuerep import validate_value

from tests.support import peers
from tests.support.fwlite_server import FwliteServer
from tests.support.phi import (
    PROFILE,
    late_spec,
    phi_hits,
    phi_spec,
    phi_values,
    write_phi_series,
)
from tests.support.polling import wait_until

pytestmark = pytest.mark.peers


def deid_config(tmp_path: Path, fwlite: FwliteServer, profile: Path = PROFILE) -> dict[str, Any]:
    return {
        "flywheel": {
            "api_key": fwlite.api_key,
            "retry_max_seconds": 30,
            "retry_max_interval": 0.5,
            "failed_retry_seconds": 1,
        },
        "spool_dir": str(tmp_path / "spool"),
        "spool_min_free_mb": 0,
        "push": {"port": peers.free_port(), "series_quiet_seconds": 0.5},
        "deid": {"profile": str(profile)},
    }


@pytest.fixture
def agent(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> Iterator[Agent]:
    peers.require("storescu")
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    fw.get_group("psych").add_project(label="study01")
    agent = Agent(config_from_dict(deid_config(tmp_path, fwlite)))
    agent.start()
    yield agent
    agent.stop()


def members(fw: Any, acquisition_id: str) -> dict[str, pydicom.Dataset]:
    acquisition = fw.get_acquisition(acquisition_id)
    (entry,) = acquisition.files
    data = fw.download_file_from_acquisition_as_data(acquisition_id, entry.name)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {
            name: pydicom.dcmread(io.BytesIO(zf.read(name)))
            for name in zf.namelist()
            if not name.endswith("/")
        }


def all_uids(ds: pydicom.Dataset) -> list[str]:
    found: list[str] = []
    for dataset in (ds.file_meta, ds):
        for element in dataset.iterall():
            if element.VR == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                found += [str(v) for v in values]
    return found


def sop_uids(paths: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]


def no_phi_logged(caplog: pytest.LogCaptureFixture, spec: Any) -> None:
    """No PHI value in the agent's log lines at INFO and above (series UIDs are how the
    agent's own log and status name a series on site: not checked here)."""
    values = [v.lower() for v in phi_values(spec, [], dates=False) if not v[:1].isdigit()]
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            line = record.getMessage().lower()
            assert not [v for v in values if v in line], line


def test_phi_never_reaches_flywheel_and_data_lands_by_the_original_routing(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spec = phi_spec("fw://psych/study01/s01", count=6)
    paths = write_phi_series(tmp_path / "scanner", spec)
    values = phi_values(spec, sop_uids(paths))
    # the scan finds every value in what the scanner sends (the ISO date is ours)
    found = {hit.rsplit(": ", 1)[1] for hit in phi_hits(tmp_path / "scanner", fw, values)}
    assert set(values) - found == {"2020-10-23"}
    sent = peers.storescu(agent.config.push.port, paths)
    assert sent.returncode == 0, sent.stderr
    wait_until(lambda: agent.state.count_by_state()["uploaded"] == 1, timeout=60)

    (session,) = fw.sessions()
    session = fw.get_session(session.id)
    assert fw.get_project(session.parents.project).label == "study01"
    assert session.parents.group == "psych"
    subject = fw.get_subject(session.parents.subject)
    assert subject.label == "s01"  # named by the routing string: kept
    assert (subject.firstname or "", subject.lastname) == ("", "ANONYMOUS")
    assert session.info["fwagent"]["routing"]["value"] == "fw://psych/study01/s01"
    assert session.label == "My Study"  # StudyDescription, from the de-identified header
    assert session.timestamp.strftime("%Y%m%d") == "20201006"  # shifted by the profile
    (acq,) = fw.get_session_acquisitions(session.id)
    acq = fw.get_acquisition(acq.id)
    got = members(fw, acq.id)
    assert len(got) == 6  # every instance arrived
    # uids: hashed, one value for the whole series, all valid DICOM UIDs
    assert {str(ds.SeriesInstanceUID) for ds in got.values()} == {acq.uid}
    assert {str(ds.StudyInstanceUID) for ds in got.values()} == {session.uid}
    assert acq.uid != spec.series_uid and session.uid != spec.study_uid
    for name, ds in got.items():
        assert name.endswith(f"/{ds.SOPInstanceUID}.dcm")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        for uid in all_uids(ds):
            validate_value("UI", uid, pydicom.config.RAISE)
        assert ds.PatientName == "ANONYMOUS" and "PatientBirthDate" not in ds
        assert ds.OtherPatientIDsSequence[0].PatientID == "ANON"
        # pixels carried over untouched (the header was re-encoded around them)
        assert ds.pixel_array.shape == (16, 16) and int(ds.pixel_array[0, 1]) >= 1
    header = acq.files[0].info["header"]["dicom"]
    assert header["PatientID"] == "ANON" and header["SeriesInstanceUID"] == acq.uid

    assert phi_hits(fwlite.data_dir, fw, values) == []

    # a late instance re-uploads the series: still one acquisition, the same hashed uids
    late = write_phi_series(tmp_path / "late", late_spec(spec, 8))[6:]
    assert peers.storescu(agent.config.push.port, late).returncode == 0
    wait_until(lambda: agent.state.series(spec.series_uid).uploaded_count == 8, timeout=60)
    (acq2,) = fw.get_session_acquisitions(session.id)
    assert acq2.id == acq.id and len(fw.sessions()) == 1
    again = members(fw, acq.id)
    assert len(again) == 8
    assert {str(ds.SeriesInstanceUID) for ds in again.values()} == {acq.uid}
    assert phi_hits(fwlite.data_dir, fw, [*values, *sop_uids(late)]) == []
    # nothing of the series left in the spool: originals and copies freed
    spool = Path(agent.config.spool_dir)
    assert list((spool / "instances").rglob("*.dcm")) == []
    assert list((spool / "deid").rglob("*.dcm")) == []
    no_phi_logged(caplog, spec)


def test_an_instance_the_profile_cannot_process_parks_the_series_unuploaded(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spec = phi_spec("fw://psych/study01/s02", count=4)
    paths = write_phi_series(tmp_path / "scanner", spec)
    bad = pydicom.dcmread(paths[2])
    bad.StudyDate = "20201399"  # no such date: the profile's increment-date cannot shift it
    bad.save_as(paths[2])
    assert peers.storescu(agent.config.push.port, paths).returncode == 0

    def failed() -> Any:
        row = agent.state.series(spec.series_uid)
        return row is not None and row.state == "failed" and row.last_error

    wait_until(failed, timeout=60)
    row = agent.state.series(spec.series_uid)
    assert row is not None
    assert "de-identification failed: instance " in row.last_error
    assert "flywheel-migration raised ValueError" in row.last_error
    assert "20201399" not in row.last_error
    assert fw.sessions() == []  # nothing uploaded, not even the good instances
    assert len(agent.state.instances(spec.series_uid)) == 4  # nothing lost either
    assert phi_hits(fwlite.data_dir, fw, phi_values(spec, sop_uids(paths))) == []
    work = Path(agent.config.spool_dir) / "work"
    assert list(work.rglob("*")) == []  # no raw zip left under the upload path
    no_phi_logged(caplog, spec)
    assert any("de-identification failed" in r.getMessage() for r in caplog.records)


def test_a_restart_mid_series_reuses_or_remakes_copies_and_leaves_none(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    peers.require("storescu")
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    fw.get_group("psych").add_project(label="study01")
    config = deid_config(tmp_path, fwlite)
    config["push"]["series_quiet_seconds"] = 3
    first = Agent(config_from_dict(config))
    first.start()
    spec = phi_spec("fw://psych/study01/s03", count=10)
    paths = write_phi_series(tmp_path / "scanner", spec)
    try:
        assert peers.storescu(first.config.push.port, paths).returncode == 0
    finally:
        first.stop()  # before the series is quiet: some copies made, maybe not all
    spool = Path(config["spool_dir"])
    stray = spool / "deid" / "stray" / "x-1"
    stray.mkdir(parents=True)
    (stray / "left-by-a-kill.dcm").write_bytes(b"x")  # written, never recorded
    second = Agent(config_from_dict(config))
    second.start()
    try:
        assert not stray.exists()  # recovery dropped what no row points to
        wait_until(lambda: second.state.count_by_state()["uploaded"] == 1, timeout=60)
    finally:
        second.stop()
    (session,) = fw.sessions()
    (acq,) = fw.get_session_acquisitions(session.id)
    assert len(members(fw, acq.id)) == 10
    assert phi_hits(fwlite.data_dir, fw, phi_values(spec, sop_uids(paths))) == []
    assert list((spool / "deid").rglob("*.dcm")) == []
