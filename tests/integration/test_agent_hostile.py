"""Hostile and malformed input at the agent's receiver (issue 18), sent by real clients
(dcmtk's storescu, pynetdicom) to an agent uploading to fwlite through the real SDK.

One bad instance or UID must never lose data or escape the spool; what cannot be placed
is refused with a failure status and kept in quarantine with its reason."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fwagent.agent import Agent
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage  # type: ignore[attr-defined]

from tests.support import peers
from tests.support.agents import in_process_agents
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until

QUIET = 0.5
SAMPLES = Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture
def make_agent(tmp_path: Path, fwlite: FwliteServer) -> Iterator[Callable[..., Agent]]:
    with in_process_agents(
        tmp_path,
        fwlite,
        quiet=QUIET,
        retry_max_seconds=30,
        retry_max_interval=0.5,
        failed_retry_seconds=1,
    ) as make:
        yield make


def settled(agent: Agent, count: int) -> bool:
    rows = agent.state.all_series()
    return len(rows) == count and all(r.state in ("uploaded", "opted_out") for r in rows)


def uploaded_members(fw: Any) -> dict[str, list[bytes]]:
    """acquisition uid -> the DICOM files in its zip (every acquisition on the site)."""
    out: dict[str, list[bytes]] = {}
    for session in fw.sessions():
        for acquisition in fw.get_session_acquisitions(session.id):
            acquisition = fw.get_acquisition(acquisition.id)
            (entry,) = acquisition.files
            data = fw.download_file_from_acquisition_as_data(acquisition.id, entry.name)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                out[acquisition.uid] = [
                    zf.read(name) for name in sorted(zf.namelist()) if not name.endswith("/")
                ]
    return out


def send_raw(port: int, path: Path) -> int:
    """pynetdicom sends the file's dataset bytes as they are (no re-encoding), with the
    SOP class and instance its File Meta names in the C-STORE command; returns the status."""
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="FWAGENT")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(path)
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
    return int(status.Status)


def rewrite_meta(path: Path, **values: str) -> None:
    """Change File Meta elements and keep the dataset bytes (pydicom's save_as would
    rewrite the meta from the dataset)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.filewriter import write_file_meta_info

    with open(path, "rb") as fp:
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        dataset = fp.read()
    for keyword, value in values.items():
        setattr(meta, keyword, value)
    out = DicomBytesIO()
    write_file_meta_info(out, meta, enforce_standard=True)
    path.write_bytes(b"\x00" * 128 + b"DICM" + out.getvalue() + dataset)


# ---- 18.1: UIDs that name no folder ----------------------------------------------------


def test_dot_and_path_series_uids_never_touch_the_spool(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    """'..' used to remove spool/work/.. (the spool root with state.sqlite) and '.' the
    shared work folder; every other series was lost."""
    specs = [
        SeriesSpec(count=2, series_uid="..", patient_id="fw://unknown/x/dotdot"),
        SeriesSpec(count=2, series_uid=".", patient_id="fw://unknown/x/dot"),
        SeriesSpec(count=2, series_uid="../../../../tmp", patient_id="fw://unknown/x/path"),
        SeriesSpec(count=3, patient_id="fw://unknown/x/plain1"),
        SeriesSpec(count=3, patient_id="fw://unknown/x/plain2"),
    ]
    paths = [p for i, spec in enumerate(specs) for p in write_series(tmp_path / f"s{i}", spec)]
    agent = make_agent()
    result = peers.storescu(agent.config.push.port, paths)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: settled(agent, len(specs)))
    assert agent.state.path.is_file()
    assert agent.spool.work.is_dir() and agent.spool.instances.is_dir()
    members = uploaded_members(fw)
    assert {uid: len(files) for uid, files in members.items()} == {
        spec.series_uid: spec.count for spec in specs
    }
    assert agent.state.count_by_state()["uploaded"] == len(specs)
    assert agent.state.failures() == [] and agent.state.quarantined() == []
    assert list(agent.spool.instances.rglob("*.dcm")) == []
    # later instances are still acknowledged (the state survived)
    late = write_series(tmp_path / "late", SeriesSpec(count=1, patient_id="fw://unknown/x/l"))
    assert peers.storescu(agent.config.push.port, late).returncode == 0
    wait_until(lambda: settled(agent, len(specs) + 1))


# ---- 18.2: a late instance re-uploads the complete series, whatever its UID holds --------


@pytest.mark.parametrize("series_uid", ["1.2.3,label=x", '1.2.4="q",uid=1'])
def test_late_instance_reuploads_complete_series_with_filter_chars_in_uid(
    tmp_path: Path,
    fwlite: FwliteServer,
    fw: Any,
    make_agent: Callable[..., Agent],
    series_uid: str,
) -> None:
    spec = SeriesSpec(count=3, series_uid=series_uid, patient_id="fw://unknown/x/s1")
    first = write_series(tmp_path / "first", spec)
    agent = make_agent()
    port = agent.config.push.port
    assert peers.storescu(port, first).returncode == 0
    wait_until(lambda: settled(agent, 1))
    late = write_series(tmp_path / "late", SeriesSpec(**{**spec.__dict__, "count": 1}))
    assert peers.storescu(port, late).returncode == 0
    wait_until(lambda: agent.state.series(series_uid).uploaded_count == 4)
    wait_until(lambda: settled(agent, 1))
    members = uploaded_members(fw)
    assert list(members) == [series_uid]
    sent = {pydicom.dcmread(p).SOPInstanceUID for p in first + late}
    got = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for data in members[series_uid]}
    assert got == sent
    # found by the acquisition id recorded at the first upload
    (acquisition_id,) = agent.state.series(series_uid).acquisition_ids().values()
    assert fw.get_acquisition(acquisition_id).uid == series_uid


# ---- 18.3: no StudyInstanceUID --------------------------------------------------------


def test_instance_without_study_uid_is_refused_and_nothing_fails_forever(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    good = write_series(tmp_path / "good", SeriesSpec(count=2, patient_id="fw://unknown/x/s"))
    orphan = write_series(tmp_path / "orphan", SeriesSpec(count=1))[0]
    ds = pydicom.dcmread(orphan)
    del ds.StudyInstanceUID
    ds.save_as(orphan)
    agent = make_agent()
    result = peers.storescu(
        agent.config.push.port, [good[0], orphan, good[1]], extra=["-v", "--no-halt"]
    )
    statuses = [line for line in result.stderr.splitlines() if "Received Store Response" in line]
    assert statuses == [
        "I: Received Store Response (Success)",
        "I: Received Store Response (Error: CannotUnderstand)",
        "I: Received Store Response (Success)",
    ], result.stderr
    wait_until(lambda: settled(agent, 1))
    (entry,) = agent.state.quarantined()
    assert entry["reason"] == "no StudyInstanceUID: cannot be placed in Flywheel"
    assert entry["sop_uid"] == ds.SOPInstanceUID
    assert Path(entry["path"]).is_file() and Path(entry["path"]).parent == agent.spool.quarantine
    assert agent.state.failures() == []
    assert {uid: len(f) for uid, f in uploaded_members(fw).items()} == {
        pydicom.dcmread(good[0]).SeriesInstanceUID: 2
    }


def test_spooled_instance_without_study_uid_is_quarantined_not_failed_forever(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    """A spool from a release that acknowledged such instances: the pipeline sets them
    aside with the reason and uploads the rest of the series."""
    agent = make_agent()
    spec = SeriesSpec(count=3, patient_id="fw://unknown/x/old")
    paths = write_series(tmp_path / "old", spec)
    ds = pydicom.dcmread(paths[0])
    del ds.StudyInstanceUID
    ds.save_as(paths[0])
    for path in paths:
        ds = pydicom.dcmread(path)
        dest = agent.spool.instance_path(spec.series_uid, ds.SOPInstanceUID)
        dest.write_bytes(path.read_bytes())
        agent.state.record_instance(
            ds.SOPInstanceUID, spec.series_uid, spec.study_uid, dest, dest.stat().st_size
        )
    wait_until(lambda: settled(agent, 1))
    (entry,) = agent.state.quarantined()
    assert entry["reason"] == "no StudyInstanceUID: cannot be placed in Flywheel"
    assert agent.state.failures() == []
    assert [len(files) for files in uploaded_members(fw).values()] == [2]


# ---- 18.4: truncated datasets ----------------------------------------------------------


def test_truncated_datasets_are_quarantined_and_answered_with_failure(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    port = agent.config.push.port
    # pydicom's own truncated sample (Pixel Data 62 bytes short) ...
    assert send_raw(port, SAMPLES / "MR_truncated.dcm") == 0xC000
    # ... and one of ours cut inside its Pixel Data, in big endian
    whole = write_series(tmp_path / "cut", SeriesSpec(count=2, patient_id="fw://unknown/x/c"))
    ds = pydicom.dcmread(whole[0])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    big = tmp_path / "big.dcm"
    pydicom.dcmwrite(big, ds, little_endian=False, implicit_vr=False, enforce_file_format=True)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(big.read_bytes()[:-100])
    assert send_raw(port, cut) == 0xC000
    assert send_raw(port, whole[1]) == 0x0000  # the association carries on
    wait_until(lambda: settled(agent, 1))
    reasons = sorted(entry["reason"] for entry in agent.state.quarantined())
    assert reasons == [
        "element (7FE0,0010) declares 512 bytes but only 412 follow (truncated)",
        "element (7FE0,0010) declares 8192 bytes but only 8130 follow (truncated)",
    ]
    assert [len(files) for files in uploaded_members(fw).values()] == [1]


# ---- 18.5: dataset and command disagree ------------------------------------------------


def test_dataset_unlike_its_command_is_stored_as_the_dataset_says_with_b007(
    tmp_path: Path,
    fwlite: FwliteServer,
    fw: Any,
    make_agent: Callable[..., Agent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = SeriesSpec(count=2, sop_class_uid=CTImageStorage, modality="CT")
    paths = write_series(tmp_path / "a", spec)
    dataset_uid = pydicom.dcmread(paths[0]).SOPInstanceUID
    # the command will say MR and another instance (pynetdicom takes them from File Meta)
    rewrite_meta(
        paths[0], MediaStorageSOPClassUID=MRImageStorage, MediaStorageSOPInstanceUID="1.2.3.999"
    )
    agent = make_agent()
    caplog.set_level(logging.WARNING, logger="fwagent.receiver")
    assert send_raw(agent.config.push.port, paths[0]) == 0xB007
    assert send_raw(agent.config.push.port, paths[1]) == 0x0000
    wait_until(lambda: settled(agent, 1))
    (files,) = uploaded_members(fw).values()
    stored = {
        pydicom.dcmread(io.BytesIO(f)).SOPInstanceUID: pydicom.dcmread(io.BytesIO(f)) for f in files
    }
    assert set(stored) == {dataset_uid, pydicom.dcmread(paths[1]).SOPInstanceUID}
    meta = stored[dataset_uid].file_meta
    assert meta.MediaStorageSOPClassUID == CTImageStorage
    assert meta.MediaStorageSOPInstanceUID == dataset_uid
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"dataset SOP class {CTImageStorage}, command/context {MRImageStorage}" in logged
    assert f"dataset SOP instance {dataset_uid}, command 1.2.3.999" in logged
