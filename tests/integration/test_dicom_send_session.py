"""No-input mode against fwlite through the real flywheel-sdk: the whole session is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.dicom_send_helpers import received, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec
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
