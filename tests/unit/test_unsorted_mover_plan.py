"""Planning rules of the unsorted-mover, on an in-memory site (no API here by design)."""

from __future__ import annotations

from fwmapping import Routing

from gears.unsorted_mover.corrections import Correction
from gears.unsorted_mover.plan import (
    FAILED,
    PLANNED,
    SKIPPED,
    Place,
    SessionRecord,
    plan,
)


class MemorySite:
    """Groups and projects that exist on a pretend site."""

    def __init__(self, projects: dict[str, list[str]]) -> None:
        self.projects = projects

    def group_exists(self, group_id: str) -> bool:
        return group_id in self.projects

    def project_exists(self, group_id: str, project_label: str) -> bool:
        return project_label in self.projects.get(group_id, [])


SITE = MemorySite({"unknown": ["Unsorted"], "psych": ["Unsorted", "study01"], "neuro": []})
UNKNOWN_PLACE = Place("unknown", "Unsorted", "ex1234", "My Study")


def record(
    value: str | None, place: Place = UNKNOWN_PLACE, sid: str = "s1", **kw: object
) -> SessionRecord:
    return SessionRecord(
        id=sid,
        place=place,
        uid=kw.pop("uid", "1.2." + sid),
        routing_value=value,
        routing_field="PatientID",
        routing_source="session info",
        **kw,  # type: ignore[arg-type]
    )


def one(value: str | None, place: Place = UNKNOWN_PLACE) -> tuple[str, str | None, str]:
    [decision] = plan([record(value, place)], [], SITE)
    return decision.status, decision.to.path() if decision.to else None, decision.reason


def test_routed_now_resolves() -> None:
    status, to, reason = one("fw://psych/study01/s01")
    assert (status, to) == (PLANNED, "psych/study01/s01/My Study")
    assert reason == "routing string 'fw://psych/study01/s01' (PatientID, from session info)"


def test_session_label_from_routing() -> None:
    assert one("fw://psych/study01/s01/ses-1")[1] == "psych/study01/s01/ses-1"


def test_no_subject_keeps_current_label() -> None:
    assert one("fw://psych/study01")[1] == "psych/study01/ex1234/My Study"


def test_missing_fw_prefix_is_skipped() -> None:
    status, to, reason = one("psych/study01/s01")
    assert (status, to) == (SKIPPED, None)
    assert "no fw:// routing; add a correction row" in reason


def test_empty_routing_is_skipped() -> None:
    assert one(None)[0] == SKIPPED
    assert "is empty" in one("  ")[2]


def test_typo_group_stays_unknown() -> None:
    status, to, reason = one("fw://pysch/study01/s01")
    assert (status, to) == (SKIPPED, None)
    assert "target missing: group 'pysch' does not exist; already in place" in reason


def test_missing_project_goes_to_group_unsorted() -> None:
    status, to, reason = one("fw://psych/study99/s01")
    assert (status, to) == (PLANNED, "psych/Unsorted/s01/My Study")
    assert "target missing: project 'psych/study99' does not exist" in reason


def test_group_only() -> None:
    status, to, reason = one("fw://psych")
    assert (status, to) == (PLANNED, "psych/Unsorted/ex1234/My Study")
    assert reason.endswith("group only")


def test_group_only_already_there_is_skipped() -> None:
    place = Place("psych", "Unsorted", "ex1234", "My Study")
    assert one("fw://psych", place)[0] == SKIPPED


def test_never_moved_out_of_a_real_project_by_routing() -> None:
    place = Place("psych", "study01", "s01", "My Study")
    status, _, reason = one("fw://psych", place)
    assert status == SKIPPED and "not in the unknown group or an Unsorted project" in reason


def test_never_moved_back_to_unknown() -> None:
    place = Place("psych", "Unsorted", "s01", "My Study")
    status, _, reason = one("fw://gone/p/s01", place)
    assert status == SKIPPED and reason.endswith("left where it is")


def test_correction_wins_over_routing() -> None:
    rows = [Correction(2, Routing("psych", "study01", "s07"), session_id="s1")]
    [decision] = plan([record("fw://psych")], rows, SITE)
    assert decision.status == PLANNED
    assert decision.to == Place("psych", "study01", "s07", "My Study")
    assert decision.reason == "correction row 2"


def test_correction_by_study_uid() -> None:
    rows = [Correction(2, Routing("psych", "study01"), study_uid="1.2.s2")]
    decisions = plan([record(None, sid="s1"), record(None, sid="s2")], rows, SITE)
    assert [(d.record.id, d.status) for d in decisions] == [("s1", SKIPPED), ("s2", PLANNED)]


def test_correction_to_missing_group_fails_and_nothing_moves() -> None:
    rows = [
        Correction(2, Routing("nosuch", "p"), session_id="s1"),
        Correction(3, Routing("psych", "study01"), session_id="s2"),
    ]
    records = [record(None, sid="s1"), record(None, sid="s2"), record("fw://psych", sid="s3")]
    decisions = {d.record.id: d for d in plan(records, rows, SITE)}
    assert decisions["s1"].status == FAILED
    assert (
        decisions["s1"].reason == "correction row 2: target missing: group 'nosuch' does not exist"
    )
    for sid in ("s2", "s3"):
        assert decisions[sid].status == SKIPPED
        assert decisions[sid].to is None
        assert "held back: the corrections CSV has errors" in decisions[sid].reason
    assert "would go to psych/study01/ex1234/My Study" in decisions["s2"].reason


def test_correction_to_missing_project_fails() -> None:
    rows = [Correction(2, Routing("neuro", "p1"), session_id="s1")]
    [decision] = plan([record(None)], rows, SITE)
    assert decision.status == FAILED
    assert "project 'neuro/p1' does not exist" in decision.reason


def test_correction_matching_nothing_fails() -> None:
    rows = [Correction(4, Routing("psych", "study01"), session_id="zzz")]
    decisions = plan([record(None)], rows, SITE)
    assert [(d.record.id, d.status, d.reason) for d in decisions] == [
        ("zzz", FAILED, "correction row 4: no session zzz found"),
        ("s1", SKIPPED, decisions[1].reason),
    ]


def test_ambiguous_rows() -> None:
    rows = [
        Correction(2, Routing("psych", "study01"), session_id="s1"),
        Correction(3, Routing("psych", "Unsorted"), session_id="s1"),
    ]
    [decision] = plan([record(None)], rows, SITE)
    assert decision.status == FAILED
    assert decision.reason == "correction rows 2, 3: ambiguous: different targets for one session"
    # the same target twice is fine
    rows[1] = Correction(3, Routing("psych", "study01"), session_id="s1")
    assert plan([record(None)], rows, SITE)[0].status == PLANNED


def test_ambiguous_study_uid() -> None:
    rows = [Correction(2, Routing("psych", "study01"), study_uid="1.2.3")]
    records = [record(None, sid="a", uid="1.2.3"), record(None, sid="b", uid="1.2.3")]
    decisions = plan(records, rows, SITE)
    assert [d.status for d in decisions] == [FAILED, FAILED]
    assert "ambiguous: StudyInstanceUID 1.2.3 matches 2 sessions" in decisions[0].reason


def test_id_and_uid_disagree() -> None:
    rows = [Correction(2, Routing("psych", "study01"), session_id="s1", study_uid="9.9")]
    [decision] = plan([record(None)], rows, SITE)
    assert decision.status == FAILED and "ambiguous" in decision.reason


def test_out_of_scope_session_already_moved_is_skipped() -> None:
    """Re-running with the same corrections after the move changes nothing."""
    moved = Place("psych", "study01", "s07", "My Study")
    rows = [Correction(2, Routing("psych", "study01", "s07"), session_id="s1")]
    [decision] = plan([record(None, place=moved, in_scope=False)], rows, SITE)
    assert decision.status == SKIPPED
    assert decision.reason == "correction row 2; already in place"


def test_out_of_scope_session_elsewhere_fails() -> None:
    elsewhere = Place("psych", "Unsorted", "x", "y")
    rows = [Correction(2, Routing("psych", "study01"), session_id="s1")]
    [decision] = plan([record(None, place=elsewhere, in_scope=False)], rows, SITE)
    assert decision.status == FAILED and "not under the container" in decision.reason


def test_second_plan_after_moves_changes_nothing() -> None:
    first = plan([record("fw://psych/study01/s01/ses-1")], [], SITE)[0]
    assert first.to is not None
    again = plan([record("fw://psych/study01/s01/ses-1", place=first.to)], [], SITE)[0]
    assert again.status == SKIPPED
