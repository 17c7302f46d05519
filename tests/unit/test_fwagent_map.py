"""``fwagent map`` as a user runs it: the real console script, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.dicomgen import SeriesSpec, write_series

FWAGENT = [sys.executable, "-m", "fwagent.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FWAGENT, "map", *args], capture_output=True, text=True, timeout=60)


def test_one_line_per_acquisition_recursive_and_non_dicom_skipped(tmp_path: Path) -> None:
    study = SeriesSpec(count=3).study_uid
    write_series(tmp_path / "a" / "one", SeriesSpec(count=3, study_uid=study))
    write_series(tmp_path / "a" / "two", SeriesSpec(count=2, study_uid=study, patient_id="x"))
    (tmp_path / "a" / "notes.txt").write_text("hello")
    result = run(str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert {line["routing"]["placement"] for line in lines} == {"routed", "unknown"}
    assert {line["session"]["uid"] for line in lines} == {study}
    assert result.stderr.count("\n") == 1 and "notes.txt" in result.stderr


def test_options_change_the_mapping(tmp_path: Path) -> None:
    spec = SeriesSpec(count=1, patient_id="MRN1", extra={"OtherPatientIDs": "fw://neuro/trial"})
    write_series(tmp_path, spec)
    result = run(
        "--routing-field",
        "OtherPatientIDs",
        "--session-label-key",
        "SeriesDescription",
        "--timezone",
        "Asia/Tokyo",
        str(tmp_path),
    )
    meta = json.loads(result.stdout)
    assert (meta["group"]["_id"], meta["project"]["label"]) == ("neuro", "trial")
    assert meta["session"]["subject"]["label"] == "MRN1"
    assert meta["session"]["label"] == "Series 002"
    assert meta["session"]["timestamp"].endswith("+09:00")


def test_no_dicom_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("nope")
    result = run(str(tmp_path), str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "no DICOM files found" in result.stderr
    assert "missing: no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr
    bad_tz = run("--timezone", "Mars/Base", str(tmp_path))
    assert bad_tz.returncode == 2 and "unknown timezone" in bad_tz.stderr
    bad_field = run("--routing-field", "PatientIdd", str(tmp_path))
    assert bad_field.returncode == 2, bad_field.stderr
    assert bad_field.stderr == (
        "fwagent map: routing field must be a DICOM keyword like PatientID, not 'PatientIdd'\n"
    )
