"""unsorted-mover against fwlite with the real flywheel-sdk, data seeded by the agent's upload.

The story of a site admin's morning: data with a missing ``fw://``, a typo in the group,
group-only routing, and a project and group created only after the upload.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gears import runtime
from tests.support.dicomgen import SeriesSpec
from tests.support.gear_root import make_gear_root
from tests.support.seed import seed_series

pytestmark = pytest.mark.timeout(120)


def seed(fw: Any, tmp_path: Path, patient_id: str, study: str = "My Study") -> Any:
    """Upload a one-image series as the agent would; return its session."""
    spec = SeriesSpec(count=1, patient_id=patient_id, study_description=study)
    seed_series(fw, tmp_path, spec)
    return fw.sessions.find_first(f"uid={spec.study_uid}")


def where(fw: Any, session_id: str) -> tuple[str, str, str, str]:
    """(group, project label, subject label, session label) of a session now."""
    session = fw.get_session(session_id)
    project = fw.get_project(session.parents.project)
    subject = fw.get_subject(session.parents.subject)
    return (session.parents.group, project.label, subject.label, session.label)


def project_id(fw: Any, group: str, label: str) -> str:
    return str(fw.projects.find_first(f"parents.group={group},label={label}").id)


def snapshot(fw: Any) -> dict[str, Any]:
    """Every session with its place, info and files, every subject: to prove nothing changed."""
    state: dict[str, Any] = {}
    for project in fw.projects():
        for subject in fw.get_project_subjects(project.id):
            state[subject.id] = (project.id, subject.label)
        for session in fw.get_project_sessions(project.id):
            full = fw.get_session(session.id)
            files = sorted(
                f.name for a in fw.get_session_acquisitions(session.id) for f in a.files or []
            )
            state[session.id] = (where(fw, session.id), full.info, files)
    return state


def run_mover(
    tmp_path: Path,
    fwlite: Any,
    container: tuple[str, str],
    dry_run: bool = True,
    corrections: str | None = None,
) -> tuple[int, list[dict[str, str]], Path]:
    """Run the gear in-process (as ``fwgear run`` does); return exit code, report rows, root."""
    root = tmp_path / f"gear{len(list(tmp_path.glob('gear*')))}"
    root.mkdir()
    files = {}
    if corrections is not None:
        source = tmp_path / "corrections.csv"
        source.write_text(corrections)
        files["corrections"] = (source, {})
    make_gear_root(
        root,
        config={"dry_run": dry_run},
        destination={"type": container[0], "id": container[1]},
        api_key=fwlite.api_key,
        files=files,
    )
    code = runtime.main(["run", "unsorted-mover", "--root", str(root)])
    reports = sorted((root / "output").glob("unsorted-mover_report-*.csv"))
    assert len(reports) <= 1
    rows = list(csv.DictReader(reports[0].open())) if reports else []
    return code, rows, root


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["Session ID"]: row for row in rows}


def test_admin_morning_triage(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    fw.add_project({"group": "psych", "label": "study01"})
    routed = seed(fw, tmp_path, "fw://psych/study01/s01", "Baseline")
    no_prefix = seed(fw, tmp_path, "psych/study01/s01", "Followup")
    typo = seed(fw, tmp_path, "fw://pysch/study01/s02")
    group_only = seed(fw, tmp_path, "fw://psych")
    new_project = seed(fw, tmp_path, "fw://psych/study02/s04/ses-1")
    new_group = seed(fw, tmp_path, "fw://neuro/mri/s05")
    assert where(fw, routed.id)[:3] == ("psych", "study01", "s01")
    for session in (no_prefix, typo, new_group):
        assert where(fw, session.id)[:2] == ("unknown", "Unsorted")
    for session in (group_only, new_project):
        assert where(fw, session.id)[:2] == ("psych", "Unsorted")

    # the admin creates what was missing at upload time
    fw.add_project({"group": "psych", "label": "study02"})
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    fw.add_project({"group": "neuro", "label": "mri"})
    unknown = project_id(fw, "unknown", "Unsorted")
    before = snapshot(fw)

    # 1. dry run: the plan, nothing changed
    code, rows, root = run_mover(tmp_path, fwlite, ("project", unknown))
    assert code == 0
    plan = by_id(rows)
    assert len(rows) == 3
    assert plan[no_prefix.id]["Status"] == "Skipped"
    assert "no fw:// routing; add a correction row" in plan[no_prefix.id]["Reason"]
    assert plan[typo.id]["Status"] == "Skipped"
    assert "target missing: group 'pysch' does not exist" in plan[typo.id]["Reason"]
    assert plan[new_group.id]["Status"] == "Planned"
    assert plan[new_group.id]["To"] == "neuro/mri/s05/My Study"
    assert plan[new_group.id]["From"].startswith("unknown/Unsorted/")
    assert list(rows[0]) == [
        "Session ID", "Session Label", "Subject Label", "From", "To", "Reason", "Status",
    ]  # fmt: skip
    assert snapshot(fw) == before
    [report] = (root / "output").glob("unsorted-mover_report-Unsorted_*.csv")
    assert report.name in [f.name for f in fw.get_project(unknown).files]

    # 2. the admin supplies corrections for what routing cannot fix, and runs it for real
    corrections = (
        "session_id,study_instance_uid,target\n"
        f"{no_prefix.id},,psych/study01/s01\n"
        f",{typo.uid},psych/study01/s02\n"
    )
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", unknown), False, corrections)
    assert code == 0
    done = by_id(rows)
    assert {sid: row["Status"] for sid, row in done.items()} == {
        no_prefix.id: "Moved",
        typo.id: "Moved",
        new_group.id: "Moved",
    }
    assert done[no_prefix.id]["Reason"] == "correction row 2"
    assert done[typo.id]["Reason"] == "correction row 3"
    assert where(fw, no_prefix.id) == ("psych", "study01", "s01", "Followup")
    assert where(fw, typo.id) == ("psych", "study01", "s02", "My Study")
    assert where(fw, new_group.id) == ("neuro", "mri", "s05", "My Study")
    # merged into the existing subject s01: one s01 with both sessions
    study01 = project_id(fw, "psych", "study01")
    s01 = [s for s in fw.get_project_subjects(study01) if s.label == "s01"]
    assert len(s01) == 1
    assert {s.id for s in fw.get_subject_sessions(s01[0].id)} == {routed.id, no_prefix.id}
    # provenance kept and added; files untouched; nothing left in unknown/Unsorted
    info = fw.get_session(no_prefix.id).info
    assert info["fwagent"]["routing"]["value"] == "psych/study01/s01"
    [move] = info["unsorted_mover"]["moves"]
    assert move["from"] == before[no_prefix.id][0][0] + "/" + "/".join(before[no_prefix.id][0][1:])
    assert move["to"] == "psych/study01/s01/Followup"
    assert move["reason"] == "correction row 2"
    for session in (no_prefix, typo, new_group):
        assert snapshot(fw)[session.id][2] == before[session.id][2]
        assert len(before[session.id][2]) == 1
    assert fw.get_project_sessions(unknown) == []
    # never deletes: the emptied subject of the merged session is still there
    old_subject = no_prefix.parents.subject
    assert fw.get_subject(old_subject).id == old_subject

    # 3. same run again: changes nothing
    after = snapshot(fw)
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", unknown), False, corrections)
    assert code == 0
    again = by_id(rows)
    assert {sid: row["Status"] for sid, row in again.items()} == {
        no_prefix.id: "Skipped",
        typo.id: "Skipped",
    }
    assert again[typo.id]["Reason"] == "correction row 3; already in place"
    assert snapshot(fw) == after

    # 4. the group's Unsorted: the project created since upload now resolves
    psych_unsorted = project_id(fw, "psych", "Unsorted")
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", psych_unsorted), False)
    assert code == 0
    result = by_id(rows)
    assert result[group_only.id]["Status"] == "Skipped"
    assert result[group_only.id]["Reason"].endswith("group only; already in place")
    assert result[new_project.id]["Status"] == "Moved"
    assert where(fw, new_project.id) == ("psych", "study02", "s04", "ses-1")
    after = snapshot(fw)
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", psych_unsorted), False)
    assert code == 0 and [row["Status"] for row in rows] == ["Skipped"]
    assert snapshot(fw) == after


def test_correction_to_missing_group_fails_and_nothing_moves(
    tmp_path: Path, fwlite: Any, fw: Any
) -> None:
    lost = seed(fw, tmp_path, "12345")
    routable = seed(fw, tmp_path, "fw://neuro/mri/s05")
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    fw.add_project({"group": "neuro", "label": "mri"})
    unknown = project_id(fw, "unknown", "Unsorted")
    before = snapshot(fw)
    corrections = f"session_id,target\n{lost.id},nosuch/study01/s01\n"
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", unknown), False, corrections)
    assert code == 1
    result = by_id(rows)
    assert result[lost.id]["Status"] == "Failed"
    assert result[lost.id]["Reason"] == (
        "correction row 2: target missing: group 'nosuch' does not exist"
    )
    assert result[lost.id]["To"] == "nosuch/study01/s01"
    assert result[routable.id]["Status"] == "Skipped"
    assert "held back: the corrections CSV has errors" in result[routable.id]["Reason"]
    assert snapshot(fw) == before


def test_routing_from_dicom_header_and_session_scope_via_cli(
    tmp_path: Path, fwlite: Any, fw: Any
) -> None:
    """Data uploaded without the agent's routing record: the header of its first acquisition."""
    session = seed(fw, tmp_path, "fw://psych/study01/s09")
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    fw.add_project({"group": "psych", "label": "study01"})
    fw.delete_session_info_fields(session.id, ["fwagent"])
    assert "fwagent" not in (fw.get_session(session.id).info or {})
    root = tmp_path / "cli"
    make_gear_root(
        root,
        config={"dry_run": False},
        destination={"type": "session", "id": session.id},
        api_key=fwlite.api_key,
    )
    fwgear = Path(sys.executable).parent / "fwgear"
    proc = subprocess.run(
        [str(fwgear), "run", "unsorted-mover", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [report] = (root / "output").glob("unsorted-mover_report-My Study_*.csv")
    [row] = list(csv.DictReader(report.open()))
    assert row["Status"] == "Moved"
    assert row["Reason"] == (
        "routing string 'fw://psych/study01/s09' (PatientID, from DICOM header)"
    )
    assert where(fw, session.id) == ("psych", "study01", "s09", "My Study")
    [move] = fw.get_session(session.id).info["unsorted_mover"]["moves"]
    assert move["routing"] == {
        "field": "PatientID",
        "value": "fw://psych/study01/s09",
        "source": "DICOM header",
    }
    assert report.name in [f.name for f in fw.get_session(session.id).files]


def test_subject_scope_partial_move_creates_subject(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    """One of a subject's two sessions can move: a new subject with the same names is made."""
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    first = seed(fw, tmp_path, "fw://psych/study01/s07", "Baseline")
    second = seed(fw, tmp_path, "fw://psych/study02/s07", "Followup")
    assert first.parents.subject == second.parents.subject  # both in psych/Unsorted/s07
    fw.add_project({"group": "psych", "label": "study01"})
    code, rows, _ = run_mover(tmp_path, fwlite, ("subject", first.parents.subject), False)
    assert code == 0
    result = by_id(rows)
    assert result[first.id]["Status"] == "Moved"
    assert result[second.id]["Status"] == "Skipped"
    assert "project 'psych/study02' does not exist" in result[second.id]["Reason"]
    assert where(fw, first.id) == ("psych", "study01", "s07", "Baseline")
    assert where(fw, second.id) == ("psych", "Unsorted", "s07", "Followup")
    created = fw.get_subject(fw.get_session(first.id).parents.subject)
    assert created.id != first.parents.subject
    assert (created.firstname, created.lastname) == ("John", "Doe")


def test_header_read_from_the_file_when_no_info_kept(tmp_path: Path, fwlite: Any, fw: Any) -> None:
    """Neither routing record nor classifier header: the zip's first DICOM header is read."""
    session = seed(fw, tmp_path, "fw://psych/study01/s08")
    fw.add_group({"_id": "psych", "label": "Psychiatry"})
    fw.add_project({"group": "psych", "label": "study01"})
    fw.delete_session_info_fields(session.id, ["fwagent"])
    [acquisition] = fw.get_session_acquisitions(session.id)
    [file] = acquisition.files
    fw.replace_acquisition_file_info(acquisition.id, file.name, {})
    assert not fw.get_acquisition(acquisition.id).files[0].info
    code, rows, _ = run_mover(tmp_path, fwlite, ("session", session.id))
    assert code == 0
    [row] = rows
    assert (row["Status"], row["To"]) == ("Planned", "psych/study01/s08/My Study")
    assert "from DICOM header" in row["Reason"]


def test_bad_corrections_csv_is_one_clear_error(
    tmp_path: Path, fwlite: Any, fw: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    session = seed(fw, tmp_path, "fw://neuro/mri/s05")
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    fw.add_project({"group": "neuro", "label": "mri"})
    before = snapshot(fw)
    code, rows, _ = run_mover(
        tmp_path, fwlite, ("session", session.id), False, "session_id,where\nx,y\n"
    )
    assert (code, rows) == (runtime.EXIT_CONFIG, [])  # an input it cannot work with
    err = capfd.readouterr().err
    assert "corrections.csv needs a 'target' column" in err and "nothing was moved" in err
    assert "Traceback" not in err
    assert snapshot(fw) == before


def test_failed_move_exits_non_zero_and_a_rerun_finishes(
    tmp_path: Path, fwlite: Any, fw: Any
) -> None:
    """Flywheel refuses one move (503): that row Failed, the others Moved, exit 1; rerun ok."""
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    unlucky = seed(fw, tmp_path, "fw://neuro/mri/s01")
    lucky = seed(fw, tmp_path, "fw://neuro/mri/s02")
    fw.add_project({"group": "neuro", "label": "mri"})
    unsorted = project_id(fw, "neuro", "Unsorted")
    fwlite.set_fault(status=503, path_prefix=f"/api/subjects/{unlucky.parents.subject}")
    try:
        code, rows, _ = run_mover(tmp_path, fwlite, ("project", unsorted), False)
    finally:
        fwlite.clear_fault()
    assert code == 1
    result = by_id(rows)
    assert result[lucky.id]["Status"] == "Moved"
    assert result[unlucky.id]["Status"] == "Failed"
    assert "move failed: 503" in result[unlucky.id]["Reason"]
    assert where(fw, unlucky.id)[:2] == ("neuro", "Unsorted")
    assert "unsorted_mover" not in fw.get_session(unlucky.id).info
    code, rows, _ = run_mover(tmp_path, fwlite, ("project", unsorted), False)
    assert code == 0 and [(r["Session ID"], r["Status"]) for r in rows] == [(unlucky.id, "Moved")]
    assert where(fw, unlucky.id) == ("neuro", "mri", "s01", "My Study")


@pytest.mark.parametrize("container", [("group", "neuro"), ("session", "0123456789abcdef01234567")])
def test_destination_it_cannot_work_with_is_a_config_error(
    tmp_path: Path, fwlite: Any, fw: Any, container: tuple[str, str]
) -> None:
    """A wrong destination type and a destination that does not exist (404) exit like an
    unreadable corrections CSV: EXIT_CONFIG, nothing moved, no report."""
    fw.add_group({"_id": "neuro", "label": "Neuro"})
    before = snapshot(fw)
    code, rows, _ = run_mover(tmp_path, fwlite, container, False)
    assert (code, rows) == (runtime.EXIT_CONFIG, [])
    assert snapshot(fw) == before
