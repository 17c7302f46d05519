"""Edge de-identification on the PULL path: Orthanc (a PACS holding PHI) -> agent (C-FIND,
C-MOVE, site de-id profile) -> fwlite, scanned for every PHI value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import flywheel
import pydicom
import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict

from tests.support import peers
from tests.support.fwlite_server import FwliteServer
from tests.support.orthanc import OrthancServer, pull_config
from tests.support.phi import PROFILE, phi_hits, phi_spec, phi_values, write_phi_series
from tests.support.polling import wait_until
from tests.support.site_files import only_acquisition_members

pytestmark = pytest.mark.peers


def test_pulled_series_reach_flywheel_de_identified(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    peers.require("Orthanc")
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    fw.get_group("psych").add_project(label="study01")
    port = peers.free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"FWAGENT": ("FWAGENT", "127.0.0.1", port)}
    ).start()
    try:
        today = dt.date.today().strftime("%Y%m%d")  # inside the pull look-back window
        spec = phi_spec("fw://psych/study01/s07/baseline", count=5, study_date=today)
        paths = write_phi_series(tmp_path / "pacs-in", spec)
        orthanc.upload_many(paths)
        config = pull_config(
            tmp_path,
            orthanc,
            port,
            api_key=fwlite.api_key,
            interval_seconds=1,
            retry_backoff_seconds=0,
            dimse_timeout_seconds=10,
            retrieve_timeout_seconds=30,
        )
        config["deid"] = {"profile": str(PROFILE)}
        agent = Agent(config_from_dict(config))
        agent.start()  # the real wiring: pull storage SCP with the de-id hook + pipeline
        try:

            def uploaded() -> bool:
                row = agent.state.series(spec.series_uid)
                return row is not None and row.state == "uploaded"

            wait_until(uploaded, timeout=90)
        finally:
            agent.stop()
    finally:  # also when the config is refused: no Orthanc left running
        orthanc.stop()
    (session,) = fw.sessions()
    session = fw.get_session(session.id)
    assert (session.parents.group, session.label) == ("psych", "baseline")
    assert fw.get_subject(session.parents.subject).label == "s07"
    assert len(only_acquisition_members(fw)) == 5
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    # today's date is also every container's creation date: the push test covers dates
    assert phi_hits(fwlite.data_dir, fw, phi_values(spec, sops, dates=False)) == []
