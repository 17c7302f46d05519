"""The agent records its mapping settings on each upload; the gears default to them.

A site whose agent reads the routing string from PatientComments, labels sessions by
ProtocolName and stamps times in Europe/Paris: the real agent receives the studies over
DICOM and uploads them to fwlite; then mapping-audit and unsorted-mover run with an empty
gear config, as an admin would start them, and must apply the agent's settings.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fwagent.agent import Agent
from fwagent.config import config_from_dict

from gears import runtime
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.gear_root import make_gear_root
from tests.support.polling import wait_until

pytestmark = pytest.mark.timeout(180)

SETTINGS = {
    "routing_field": "PatientComments",
    "session_label_key": "ProtocolName",
    "timezone": "Europe/Paris",
    "policy": {"mode": "opt-out", "field": None, "strings": ["NOFW"]},
}


def spec(routing: str, protocol: str) -> SeriesSpec:
    # PatientID holds a record number, as at a site that routes by another field
    return SeriesSpec(
        count=2,
        patient_id="MRN0042",
        extra={"PatientComments": routing, "ProtocolName": protocol},
    )


@pytest.fixture
def agent(tmp_path: Path, fwlite: FwliteServer) -> Iterator[Agent]:
    config = config_from_dict(
        {
            "flywheel": {"api_key": fwlite.api_key, "retry_max_interval": 0.5},
            "spool_dir": str(tmp_path / "spool"),
            "spool_min_free_mb": 0,
            "timezone": "Europe/Paris",
            "routing": {"field": "PatientComments", "session_label_key": "ProtocolName"},
            "push": {"port": peers.free_port(), "series_quiet_seconds": 0.5},
        }
    )
    started = Agent(config)
    started.start()
    try:
        yield started
    finally:
        started.stop()


def run_gear(
    tmp_path: Path, fwlite: FwliteServer, gear: str, dest: tuple[str, str], config: dict
) -> tuple[int, list[dict[str, str]]]:
    root = tmp_path / f"{gear}-{len(list(tmp_path.glob(gear + '-*')))}"
    make_gear_root(
        root,
        config=config,
        destination={"type": dest[0], "id": dest[1]},
        api_key=fwlite.api_key,
    )
    code = runtime.main(["run", gear, "--root", str(root)])
    (report,) = sorted((root / "output").glob("*.csv"))
    with report.open(newline="") as handle:
        return code, list(csv.DictReader(handle))


def project_id(fw: Any, group: str, label: str) -> str:
    return str(fw.projects.find_first(f"parents.group={group},label={label}").id)


def where(fw: Any, session_id: str) -> tuple[str, str, str, str]:
    session = fw.get_session(session_id)
    return (
        session.parents.group,
        fw.get_project(session.parents.project).label,
        fw.get_subject(session.parents.subject).label,
        session.label,
    )


def test_gears_default_to_the_settings_the_agent_recorded(
    tmp_path: Path,
    fwlite: FwliteServer,
    fw: Any,
    agent: Agent,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    fw.add_project({"group": "psych", "label": "study01"})
    specs = {
        "routed": spec("fw://psych/study01/s01", "Baseline"),
        "later": spec("fw://neuro/mri/s02", "Scan A"),  # group created after the upload
        "header_only": spec("fw://neuro/mri/s03", "Scan B"),  # its routing record is lost
    }
    paths: list[Path] = []
    for name, one in specs.items():
        paths += write_series(tmp_path / name, one)
    sent = peers.storescu(agent.config.push.port, paths)
    assert sent.returncode == 0, sent.stderr
    wait_until(lambda: agent.state.count_by_state().get("uploaded") == 3, timeout=60)

    sessions = {name: fw.sessions.find_first(f"uid={one.study_uid}") for name, one in specs.items()}
    routed = fw.get_session(sessions["routed"].id)
    assert routed.info["fwagent"]["settings"] == SETTINGS
    assert where(fw, routed.id) == ("psych", "study01", "s01", "Baseline")
    acquisition = fw.get_acquisition(fw.get_session_acquisitions(routed.id)[0].id)
    assert acquisition.info["fwagent"]["settings"] == SETTINGS
    assert acquisition.files[0].info["header"]["dicom"]["PatientComments"] == (
        "fw://psych/study01/s01"
    )
    unknown = project_id(fw, "unknown", "Unsorted")
    assert where(fw, sessions["later"].id)[:2] == ("unknown", "Unsorted")

    # mapping-audit, empty config: the agent's field, label key and timezone -> no findings
    capfd.readouterr()
    code, rows = run_gear(tmp_path, fwlite, "mapping-audit", ("project", routed.project), {})
    assert (code, rows) == (0, [])
    assert (
        "mapping settings for 1 acquisition(s): routing_field=PatientComments (recorded by the "
        "agent), session_label_key=ProtocolName (recorded by the agent), timezone=Europe/Paris "
        '(recorded by the agent), policy=opt-out field=(routing field) strings=["NOFW"] '
        "(recorded by the agent)"
    ) in capfd.readouterr().out
    # the gear config still overrides: with PatientID the same data is unroutable
    code, rows = run_gear(
        tmp_path,
        fwlite,
        "mapping-audit",
        ("project", routed.project),
        {"routing_field": "PatientID"},
    )
    assert code == 0
    assert {row["Check"] for row in rows} == {"no-routing"}

    # unsorted-mover, empty config: the recorded routing, and the recorded field for a
    # session whose routing record is gone (only the header in file info is left)
    fw.replace_session_info(sessions["header_only"].id, {"fwagent": {"settings": SETTINGS}})
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    fw.add_project({"group": "neuro", "label": "mri"})
    capfd.readouterr()
    code, rows = run_gear(tmp_path, fwlite, "unsorted-mover", ("project", unknown), {})
    assert "routing field PatientComments (recorded by the agent) for 2 session(s)" in (
        capfd.readouterr().out
    )
    reasons = {row["Session ID"]: (row["Status"], row["Reason"]) for row in rows}
    assert code == 0
    assert reasons[sessions["later"].id] == (
        "Planned",
        "routing string 'fw://neuro/mri/s02' (PatientComments, from session info)",
    )
    assert reasons[sessions["header_only"].id] == (
        "Planned",
        "routing string 'fw://neuro/mri/s03' (PatientComments, from DICOM header)",
    )
    code, rows = run_gear(
        tmp_path, fwlite, "unsorted-mover", ("project", unknown), {"dry_run": False}
    )
    assert code == 0 and {row["Status"] for row in rows} == {"Moved"}
    assert where(fw, sessions["later"].id) == ("neuro", "mri", "s02", "Scan A")
    assert where(fw, sessions["header_only"].id) == ("neuro", "mri", "s03", "Scan B")
