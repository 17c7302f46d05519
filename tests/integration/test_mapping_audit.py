"""mapping-audit against fwlite with the real flywheel-sdk: data put there as the agent does,
then crafted into each kind of disagreement the audit must find."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gears import runtime
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.gear_root import make_gear_root
from tests.support.seed import seed_series

FWGEAR = str(Path(sys.executable).parent / "fwgear")
REPORT = re.compile(r"^mapping-audit_report-(.+)_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.csv$")
COLUMNS = ["Container ID", "FW Path", "Check", "Expected", "Actual", "Severity"]


def project(fw: Any, group: str, label: str) -> str:
    if not any(g.id == group for g in fw.get_all_groups()):
        fw.add_group({"_id": group, "label": group.title()})
    found = fw.projects.find_first(f"parents.group={group},label={label}")
    return found.id if found else fw.add_project({"label": label, "group": group})


def session_of(fw: Any, metadata: dict[str, Any]) -> Any:
    return fw.sessions.find_first(f"uid={metadata['session']['uid']}")


def acquisition_of(fw: Any, metadata: dict[str, Any]) -> Any:
    return fw.acquisitions.find_first(f"uid={metadata['acquisition']['uid']}")


def audit(
    tmp_path: Path,
    server: FwliteServer,
    dest: tuple[str, str],
    config: dict[str, Any] | None = None,
    files: dict[str, Any] | None = None,
    subprocess_run: bool = False,
) -> tuple[int, str, list[dict[str, str]]]:
    """Run the gear as Flywheel would; return exit code, report name and rows."""
    root = tmp_path / f"gear-{dest[0]}-{dest[1]}"
    make_gear_root(
        root,
        config=config or {},
        destination={"type": dest[0], "id": dest[1]},
        api_key=server.api_key,
        files=files,
    )
    argv = ["run", "mapping-audit", "--root", str(root)]
    if subprocess_run:
        code = subprocess.run([FWGEAR, *argv], capture_output=True, timeout=120).returncode
    else:
        code = runtime.main(argv)
    reports = sorted((root / "output").glob("*.csv"))
    if not reports:
        return code, "", []
    with reports[0].open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return code, reports[0].name, list(reader)


def checks(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted((row["Check"], row["Container ID"]) for row in rows)


def test_clean_project_has_no_findings(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    pid = project(fw, "psych", "study01")
    study = SeriesSpec().study_uid
    seed_series(fw, tmp_path, SeriesSpec(study_uid=study))
    seed_series(fw, tmp_path, SeriesSpec(study_uid=study, series_description="T1", series_number=3))
    seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study01/s02/ses-baseline"))
    seed_series(fw, tmp_path, SeriesSpec(manufacturer="SIEMENS", acquisition_number=2))
    seed_series(fw, tmp_path, SeriesSpec(acquisition_number=3))  # uid suffixed _3
    code, name, rows = audit(tmp_path, fwlite, ("project", pid), subprocess_run=True)
    assert code == 0
    assert REPORT.match(name) and REPORT.match(name).group(1) == "study01"
    assert rows == []
    subject = fw.get_project_subjects(pid)[0]
    session = fw.get_project_sessions(pid)[0]
    for kind, cid in (("subject", subject.id), ("session", session.id)):
        code, name, rows = audit(tmp_path / kind, fwlite, (kind, cid))
        assert (code, rows) == (0, [])
        assert REPORT.match(name).group(1) == (
            subject.label if kind == "subject" else session.label
        )


def test_each_kind_of_finding(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    pid = project(fw, "psych", "study01")
    other = project(fw, "psych", "study02")
    clean = seed_series(fw, tmp_path, SeriesSpec())

    relabelled = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study01/s03"))
    ses = session_of(fw, relabelled)
    acq = acquisition_of(fw, relabelled)
    fw.modify_session(ses.id, {"label": "renamed"})
    fw.modify_acquisition(acq.id, {"label": "T1 typo", "timestamp": "2020-10-23T11:00:00+00:00"})

    moved = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study02/s04"))
    moved_ses = session_of(fw, moved)
    assert moved_ses.parents.project == other
    fw.modify_session(moved_ses.id, {"project": pid})

    phi = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study01/Doe^John"))

    # the same study in a second session of the same subject; the same series twice
    split = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study01/s05"))
    split_ses = session_of(fw, split)
    split_acq = acquisition_of(fw, split)
    header = fw.get_acquisition_file_info(split_acq.id, split_acq.files[0].name).info
    twin_ses = fw.add_session(
        {
            "project": pid,
            "subject": {"label": "s05"},
            "label": split["session"]["label"],
            "uid": split["session"]["uid"],
            "timestamp": split["session"]["timestamp"],
        }
    )
    twin_acq = fw.add_acquisition(
        {
            "session": twin_ses,
            "label": split["acquisition"]["label"],
            "uid": split["acquisition"]["uid"],
            "timestamp": split["acquisition"]["timestamp"],
        }
    )
    zip_path = tmp_path / "twin.dicom.zip"
    zip_path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: the info is what counts
    fw.upload_file_to_acquisition(twin_acq, str(zip_path))
    fw.modify_acquisition_file_info(twin_acq, zip_path.name, {"set": header})

    # a DICOM file whose header cannot be read (no info, not DICOM)
    broken = fw.add_acquisition({"session": session_of(fw, clean).id, "label": "broken"})
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    fw.upload_file_to_acquisition(broken, str(junk))
    # an acquisition without DICOM is not audited
    notes = fw.add_acquisition({"session": session_of(fw, clean).id, "label": "notes"})
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fw.upload_file_to_acquisition(notes, str(text))

    code, _, rows = audit(tmp_path, fwlite, ("project", pid), config={"tag_findings": True})
    assert code == 0
    split_acq_id = split_acq.id
    assert checks(rows) == sorted(
        [
            ("acquisition-label", acq.id),
            ("acquisition-timestamp", acq.id),
            ("header-unreadable", broken),
            ("misplaced", moved_ses.id),
            ("phi-in-routing", session_of(fw, phi).id),
            ("series-split", split_acq_id),
            ("series-split", twin_acq),
            ("session-label", ses.id),
            ("study-split", split_ses.id),
            ("study-split", twin_ses),
        ]
    )
    by_check = {row["Check"]: row for row in rows}
    assert by_check["misplaced"]["Expected"] == "psych/study02/s04"
    assert by_check["misplaced"]["Actual"] == "psych/study01/s04"
    assert by_check["misplaced"]["FW Path"] == "psych/study01/s04/My Study"
    assert by_check["misplaced"]["Severity"] == "error"
    assert by_check["session-label"]["Expected"] == "My Study"
    assert by_check["session-label"]["Actual"] == "renamed"
    assert by_check["acquisition-timestamp"]["Actual"] == "2020-10-23T11:00:00+00:00"
    assert by_check["phi-in-routing"]["Actual"] == (
        "fw://psych/study01/D**^J*** (subject: person name)"
    )
    assert "Doe" not in "".join(str(row) for row in rows)
    # tags: each flagged container once per check
    assert "mapping-audit:misplaced" in fw.get_session(moved_ses.id).tags
    assert sorted(fw.get_acquisition(acq.id).tags) == [
        "mapping-audit:acquisition-label",
        "mapping-audit:acquisition-timestamp",
    ]
    assert fw.get_session(session_of(fw, clean).id).tags == []

    # a second run finds the same and adds no tag twice
    again = tmp_path / "again"
    again.mkdir()
    code, _, rows_again = audit(again, fwlite, ("project", pid), config={"tag_findings": True})
    assert (code, checks(rows_again)) == (0, checks(rows))
    assert len(fw.get_acquisition(acq.id).tags) == 2


def test_holding_areas(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    project(fw, "psych", "study01")
    late = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://psych/study03/s07"))
    assert late["project"]["label"] == "Unsorted"  # study03 did not exist at upload
    project(fw, "psych", "study03")  # ... and now it does
    unrouted = seed_series(fw, tmp_path, SeriesSpec(patient_id="psych/study01"))
    empty = seed_series(fw, tmp_path, SeriesSpec(patient_id=""))
    record = seed_series(fw, tmp_path, SeriesSpec(patient_id="12345678"))
    typo = seed_series(fw, tmp_path, SeriesSpec(patient_id="fw://pysch/study01/s08"))

    unsorted = fw.projects.find_first("parents.group=psych,label=Unsorted").id
    code, name, rows = audit(tmp_path, fwlite, ("project", unsorted))
    assert code == 0 and REPORT.match(name).group(1) == "Unsorted"
    assert [(r["Check"], r["Expected"], r["Actual"]) for r in rows] == [
        ("unsorted-resolvable", "psych/study03/s07", "psych/Unsorted/s07")
    ]
    assert rows[0]["Container ID"] == session_of(fw, late).id

    unknown = fw.projects.find_first("parents.group=unknown,label=Unsorted").id
    code, _, rows = audit(tmp_path / "u", fwlite, ("project", unknown))
    assert code == 0
    found = {(r["Container ID"], r["Check"], r["Actual"]) for r in rows}
    assert found == {
        (session_of(fw, unrouted).id, "no-routing", "psych/study01"),
        (session_of(fw, empty).id, "no-routing", "(empty)"),
        (session_of(fw, record).id, "no-routing", "(masked)"),
        (
            session_of(fw, typo).id,
            "routing-unresolved",
            "fw://pysch/study01/s08 (group pysch not on the site)",
        ),
    }
    assert all(r["Severity"] == "warning" for r in rows)


def test_acquisition_run_with_file_input(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    """A gear rule on a new file: the file input's acquisition is audited, the local copy
    read when the site has no header info for it, and nothing downloaded."""
    pid = project(fw, "psych", "study01")
    spec = SeriesSpec(patient_id="fw://psych/study01/s01", series_description="T2")
    seeded = seed_series(fw, tmp_path, spec)
    ses = session_of(fw, seeded)
    # the same series uploaded by hand (no header info) under another label
    paths = write_series(tmp_path / "manual", spec)
    manual = fw.add_acquisition(
        {
            "session": ses.id,
            "label": "t2 manual",
            "uid": seeded["acquisition"]["uid"],
            "timestamp": seeded["acquisition"]["timestamp"],
        }
    )
    fw.upload_file_to_acquisition(manual, str(paths[0]))
    before = len(fwlite.requests())
    code, name, rows = audit(
        tmp_path,
        fwlite,
        ("acquisition", manual),
        config={"tag_findings": True},
        files={
            "file": (
                paths[0],
                {"hierarchy": {"type": "acquisition", "id": manual}},
            )
        },
        subprocess_run=True,
    )
    calls = fwlite.requests()[before:]
    assert code == 0
    assert REPORT.match(name).group(1) == "t2 manual"
    assert checks(rows) == [("acquisition-label", manual), ("series-split", manual)]
    assert rows[0]["Expected"] == "T2"
    assert not [c for c in calls if "/files/" in c["path"] and c["method"] == "GET"]
    assert fw.get_acquisition(manual).tags == [
        "mapping-audit:acquisition-label",
        "mapping-audit:series-split",
    ]
    assert fw.get_project(pid).tags == []


def test_session_run_downloads_header_when_info_is_missing(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    project(fw, "psych", "study01")
    seeded = seed_series(fw, tmp_path, SeriesSpec(series_description="DWI"))
    ses = session_of(fw, seeded)
    acq = acquisition_of(fw, seeded)
    name = acq.files[0].name
    fw.modify_acquisition_file_info(acq.id, name, {"delete": ["header"]})
    fw.modify_acquisition(acq.id, {"label": "dwi"})
    code, _, rows = audit(tmp_path, fwlite, ("session", ses.id))
    assert code == 0
    assert [(r["Check"], r["Expected"], r["Actual"]) for r in rows] == [
        ("acquisition-label", "DWI", "dwi")
    ]


def test_audit_that_cannot_run_exits_non_zero(tmp_path: Path, fwlite: FwliteServer) -> None:
    code, _, rows = audit(tmp_path, fwlite, ("group", "psych"))
    assert (code, rows) == (runtime.EXIT_CONFIG, [])  # a destination it cannot audit
    code, _, rows = audit(tmp_path / "x", fwlite, ("project", "0123456789abcdef01234567"))
    assert (code, rows) == (runtime.EXIT_CONFIG, [])  # no such destination (404)


def test_no_api_key_exits_non_zero(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    pid = project(fw, "psych", "study01")
    root = make_gear_root(tmp_path, config={}, destination={"type": "project", "id": pid})
    assert runtime.main(["run", "mapping-audit", "--root", str(root)]) == runtime.EXIT_CONFIG
    assert list((root / "output").glob("*.csv")) == []
