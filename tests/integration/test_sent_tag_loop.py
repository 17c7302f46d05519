"""What Flywheel sent out never comes back in: the agent acknowledges and drops it.

Files tagged exactly as fw-gear-dicom-send 4.2.0 tags them (creator "Flywheel" in group
0x0021, value "DICOM Send" at offset 0x00, i.e. (0021,1000)) are sent by dcmtk's storescu,
and our own dicom-send gear sends a series straight to the agent; a plain series in the
same run proves the agent was uploading all along.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict
from pydicom.uid import ImplicitVRLittleEndian

from tests.integration.dicom_send_helpers import run_gear
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.site_files import zip_members

pytestmark = pytest.mark.peers


@pytest.fixture
def agent(tmp_path: Path, fwlite: FwliteServer) -> Iterator[Agent]:
    config = {
        "flywheel": {"api_key": fwlite.api_key, "retry_max_interval": 0.5},
        "spool_dir": str(tmp_path / "spool"),
        "spool_min_free_mb": 0,
        "push": {
            "ae_title": "FWAGENT",
            "host": "127.0.0.1",
            "port": peers.free_port(),
            "series_quiet_seconds": 0.5,
        },
    }
    started = Agent(config_from_dict(config))
    started.start()
    yield started
    started.stop()


def tag_like_fw_gear_dicom_send(path: Path, implicit: bool = False) -> None:
    ds = pydicom.dcmread(path)
    ds.add_new((0x0021, 0x0010), "LO", "Flywheel")
    ds.add_new((0x0021, 0x1000), "LO", "DICOM Send")
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_fw_gear_dicom_send_and_our_own_output_are_dropped(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, agent: Agent
) -> None:
    port = agent.config.push.port
    theirs = write_series(tmp_path / "theirs", SeriesSpec(count=2))
    tag_like_fw_gear_dicom_send(theirs[0])
    tag_like_fw_gear_dicom_send(theirs[1], implicit=True)
    plain_spec = SeriesSpec(count=3, patient_id="fw://unknown/Unsorted/s7")
    plain = write_series(tmp_path / "plain", plain_spec)

    result = peers.storescu(port, [*theirs, *plain])
    assert result.returncode == 0, result.stderr
    assert agent.state.counters()["dropped_sent_by_flywheel"] == 2

    ours = write_series(tmp_path / "ours", SeriesSpec(count=4))
    archive = tmp_path / "ours.dicom.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in ours:
            zf.write(path, path.name)
    code, rows = run_gear(
        tmp_path / "gear", port, called_ae="FWAGENT", files={"file": (archive, {})}
    )
    assert (code, rows[0]["Images Sent"], rows[0]["Status"]) == (0, "4", "Complete")
    assert agent.state.counters()["dropped_sent_by_flywheel"] == 6

    wait_until(
        lambda: (
            [(s.series_uid, s.state) for s in agent.state.all_series()]
            == [(plain_spec.series_uid, "uploaded")]
        ),
        timeout=30,
    )
    (session,) = fw.sessions()
    (acquisition,) = fw.get_session_acquisitions(session.id)
    assert len(zip_members(fw, acquisition.id)) == 3
    assert not list(agent.spool.instances.rglob("*.dcm"))
