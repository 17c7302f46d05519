"""Records from what the site holds, and which subjects move whole (pure, no API)."""

from __future__ import annotations

from gears.common.hierarchy import Acquisition, File, Project, Session, Subject
from gears.unsorted_mover.move import whole_subjects
from gears.unsorted_mover.plan import PLANNED, SKIPPED, Decision, Place
from gears.unsorted_mover.records import FROM_HEADER, FROM_INFO, to_record

UNSORTED = Project("p0", "Unsorted", "unknown")


def session(sid: str, subject: str, info: dict | None = None) -> Session:
    return Session(
        sid,
        "My Study",
        "1.2." + sid,
        None,
        Subject(subject, "ex-" + subject),
        UNSORTED,
        info=info or {},
    )


def acquisition(owner: Session, label: str, header: dict | None) -> Acquisition:
    info = {"header": {"dicom": header}} if header is not None else {}
    return Acquisition(
        "a-" + label, label, None, None, owner, [File(label + ".dicom.zip", "dicom", info)]
    )


def test_routing_from_session_info_wins() -> None:
    info = {"fwagent": {"routing": {"field": "PatientComments", "value": "fw://psych/x"}}}
    s = session("s1", "u1", info)
    record = to_record(s, [acquisition(s, "A", {"PatientID": "fw://other"})], "PatientID")
    assert (record.routing_value, record.routing_field, record.routing_source) == (
        "fw://psych/x",
        "PatientComments",
        FROM_INFO,
    )
    assert record.place == Place("unknown", "Unsorted", "ex-u1", "My Study")


def test_routing_from_first_acquisition_header() -> None:
    s = session("s1", "u1")
    acqs = [
        acquisition(s, "B", {"PatientID": "fw://b"}),
        acquisition(s, "A", {"PatientID": "fw://a"}),
    ]
    record = to_record(s, acqs, "PatientID")
    assert (record.routing_value, record.routing_source) == ("fw://a", FROM_HEADER)


def test_no_routing_anywhere() -> None:
    s = session("s1", "u1")
    record = to_record(s, [acquisition(s, "A", None)], "PatientID")
    assert (record.routing_value, record.routing_source) == (None, "")


def test_whole_subjects_only_when_every_session_goes_to_one_place() -> None:
    a1, a2 = session("a1", "A"), session("a2", "A")  # both to psych/study01/s01
    b1, b2 = session("b1", "B"), session("b2", "B")  # only one of B's sessions moves
    c1, c2 = session("c1", "C"), session("c2", "C")  # C's sessions to two subjects
    sessions = {s.id: s for s in (a1, a2, b1, b2, c1, c2)}

    def moving(s: Session, subject: str = "s01") -> Decision:
        return Decision(
            to_record(s, [], "PatientID"), Place("psych", "study01", subject, "x"), "r", PLANNED
        )

    decisions = [
        moving(a1),
        moving(a2),
        moving(b1),
        Decision(to_record(b2, [], "PatientID"), None, "r", SKIPPED),
        moving(c1, "s01"),
        moving(c2, "s02"),
    ]
    assert whole_subjects(decisions, sessions) == {"A"}
