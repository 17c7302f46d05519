"""No-input mode against fwlite through the real flywheel-sdk: the whole session is sent."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import flywheel
import pytest

from gears import runtime
from tests.integration.dicom_send_helpers import received, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.seed import seed_series

pytestmark = pytest.mark.peers


def _seed_session(fw: Any, tmp_path: Path) -> Any:
    first = SeriesSpec(count=3, series_description="T1", series_number=1)
    second = SeriesSpec(
        count=2, study_uid=first.study_uid, series_description="T2", series_number=2
    )
    seed_series(fw, tmp_path, first)
    seed_series(fw, tmp_path, second)
    session = fw.sessions.find_first(f"uid={first.study_uid}")
    assert session is not None
    return session


def test_whole_session_is_sent_and_report_attached(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    peers.require("storescp")
    session = _seed_session(fw, tmp_path)
    fwlite.set_fault(status=503, count=2, path_prefix="/api/acquisitions")  # 2 failed downloads
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(
            tmp_path / "gear",
            port,
            api_key=fwlite.api_key,
            destination={"id": session.id, "type": "session"},
        )
    assert code == 0
    assert [
        (r["FW Path"].split("/")[:4], r["Images in Series"], r["Images Sent"], r["Status"])
        for r in rows
    ] == [
        (["unknown", "Unsorted", "s01", "My Study"], "3", "3", "Complete"),
        (["unknown", "Unsorted", "s01", "My Study"], "2", "2", "Complete"),
    ]
    assert [r["FW Path"].split("/")[4] for r in rows] == ["T1", "T2"]
    assert all(
        r["Acquisition ID"] and r["FW Path"].endswith("/files/" + r["Filename"]) for r in rows
    )
    assert len(received(tmp_path / "out")) == 5
    downloads = [r for r in fwlite.requests() if r["method"] == "GET" and "/files/" in r["path"]]
    assert [r["status"] for r in downloads].count(503) == 2
    assert [r["status"] for r in downloads].count(200) == 2
    [report] = (tmp_path / "gear" / "output").glob("dicom-send_report-My Study_*.csv")
    attached = [f.name for f in fw.get_session(session.id).files]
    assert report.name in attached
    assert list((tmp_path / "gear" / "work").iterdir()) == []


def test_download_gives_up_after_retry_time(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    peers.require("storescp")
    session = _seed_session(fw, tmp_path)
    fwlite.set_fault(status=503, count=None, path_prefix="/api/acquisitions")
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(
            tmp_path / "gear",
            port,
            api_key=fwlite.api_key,
            destination={"id": session.id, "type": "session"},
            file_download_retry_time=1,
        )
    assert code == 1
    assert [(r["Images Sent"], r["Status"]) for r in rows] == [("0", "Failed"), ("0", "Failed")]
    assert list((tmp_path / "out").iterdir()) == []


def _dicom_bytes(tmp_path: Path, spec: SeriesSpec) -> bytes:
    [path] = write_series(tmp_path / "extra" / spec.series_uid, spec)
    return path.read_bytes()


def test_session_files_hostile_names_and_a_long_label(
    tmp_path: Path, fwlite: Any, fw: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """DICOM attached to the session itself gets its own row; a remote file name is never
    a path; cells that would run as formulas in a spreadsheet are neutralised; a 300-
    character session label still gives a report that is written and attached."""
    peers.require("storescp")
    session = _seed_session(fw, tmp_path)
    [t1, _] = sorted(fw.get_session_acquisitions(session.id), key=lambda a: a.label)
    study = session.uid
    escape = f"x-{uuid.uuid4().hex}.dcm"
    hostile = {
        f"../../../../tmp/{escape}": SeriesSpec(count=1, study_uid=study),
        "=1+2+cmd|' -C calc'!A0.dcm": SeriesSpec(count=1, study_uid=study),
    }
    for name, spec in hostile.items():
        fw.upload_file_to_acquisition(
            t1.id, flywheel.FileSpec(name, _dicom_bytes(tmp_path, spec), "application/dicom")
        )
    fw.upload_file_to_session(
        session.id,
        flywheel.FileSpec(
            "session-level.dcm",
            _dicom_bytes(tmp_path, SeriesSpec(count=1, study_uid=study)),
            "application/dicom",
        ),
    )
    long_label = "L" * 300
    fw.modify_session(session.id, {"label": long_label})
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(
            tmp_path / "gear",
            port,
            api_key=fwlite.api_key,
            destination={"id": session.id, "type": "session"},
        )
    assert code == 0
    assert len(received(tmp_path / "out")) == 5 + 3
    by_name = {r["Filename"]: r for r in rows}
    assert len(rows) == 5
    assert {"'=1+2+cmd|' -C calc'!A0.dcm", f"../../../../tmp/{escape}", "session-level.dcm"} < set(
        by_name
    )  # the formula is shown as text: a leading quote
    assert all(r["Status"] == "Complete" for r in rows)
    session_row = by_name["session-level.dcm"]
    assert session_row["Acquisition ID"] == ""
    assert session_row["FW Path"] == f"unknown/Unsorted/s01/{long_label}/files/session-level.dcm"
    assert (session_row["Images in Series"], session_row["Images Sent"]) == ("1", "1")
    # the download never left the gear's folder
    assert not (Path("/tmp") / escape).exists()
    assert not [p for p in tmp_path.rglob(escape)]
    assert list((tmp_path / "gear" / "work").iterdir()) == []
    # the report: a short name, written, attached
    [report] = (tmp_path / "gear" / "output").glob("dicom-send_report-*.csv")
    assert len(report.name.encode()) <= 200 and report.name.startswith("dicom-send_report-LLL")
    assert report.name in [f.name for f in fw.get_session(session.id).files]
    assert "Traceback" not in capfd.readouterr().err


def test_peer_down_nothing_downloaded_report_written(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    session = _seed_session(fw, tmp_path)
    port = peers.free_port()  # nothing listens there
    code, rows = run_gear(
        tmp_path / "gear",
        port,
        api_key=fwlite.api_key,
        destination={"id": session.id, "type": "session"},
    )
    assert code == 1
    assert [(r["Images Sent"], r["Status"]) for r in rows] == [("0", "Failed"), ("0", "Failed")]
    downloads = [r for r in fwlite.requests() if r["method"] == "GET" and "/files/" in r["path"]]
    assert downloads == []  # nothing would go out: nothing is fetched
    [report] = (tmp_path / "gear" / "output").glob("dicom-send_report-My Study_*.csv")
    assert report.name in [f.name for f in fw.get_session(session.id).files]


@pytest.mark.parametrize(
    "destination",
    [{"id": "psych", "type": "group"}, {"id": "0123456789abcdef01234567", "type": "session"}],
)
def test_destination_it_cannot_work_with_is_a_config_error(
    tmp_path: Path, fwlite: Any, destination: dict[str, str]
) -> None:
    """A destination dicom-send cannot list (a group; a session that does not exist: 404)
    is a configuration problem: EXIT_CONFIG (gears.runtime), like every gear; the (empty)
    report is still written."""
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(
            tmp_path / "gear", port, api_key=fwlite.api_key, destination=destination
        )
    assert (code, rows) == (runtime.EXIT_CONFIG, [])
    assert not any((tmp_path / "out").iterdir())
