"""mapping-audit checks: pure functions over headers, expected metadata and containers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fwmapping import (
    MappingConfig,
    dataset_from_header,
    header_info,
    map_dataset,
    resolve_placement,
)

from gears.common.hierarchy import Acquisition, File, Project, Session, Subject
from gears.mapping_audit.checks import (
    Audited,
    check_item,
    check_splits,
    dedupe,
)
from tests.support.dicomgen import SeriesSpec, make_instance


class Site:
    """A site with fixed groups and projects (the fwmapping Site protocol)."""

    def __init__(self, groups: set[str], projects: set[tuple[str, str]]) -> None:
        self.groups, self.projects = groups, projects

    def group_exists(self, group_id: str) -> bool:
        return group_id in self.groups

    def project_exists(self, group_id: str, project_label: str) -> bool:
        return (group_id, project_label) in self.projects

    def session_location(self, session_uid: str) -> tuple[str, str, str] | None:
        return ("other", "elsewhere", "x")  # the audit must not follow it


SITE = Site(
    {"psych", "unknown"}, {("psych", "study01"), ("psych", "Unsorted"), ("unknown", "Unsorted")}
)


def expected_for(spec: SeriesSpec, config: MappingConfig | None = None) -> tuple[dict, dict]:
    header = header_info(make_instance(spec, 0))
    metadata = map_dataset(dataset_from_header(header), config or MappingConfig())
    return header, resolve_placement(metadata, SITE, follow_sessions=False)


def as_uploaded(header: dict, expected: dict, ids: str = "1") -> Audited:
    """Containers exactly as the agent would have created them from ``expected``."""
    ses = expected["session"]
    acq = expected["acquisition"]
    project = Project(f"p{ids}", expected["project"]["label"], expected["group"]["_id"])
    session = Session(
        f"ses{ids}",
        ses["label"],
        ses["uid"],
        datetime.fromisoformat(ses["timestamp"]),
        Subject(f"sub{ids}", ses["subject"]["label"]),
        project,
    )
    acquisition = Acquisition(
        f"acq{ids}", acq["label"], acq["uid"], datetime.fromisoformat(acq["timestamp"]), session
    )
    file = File("Series 002.dicom.zip", "dicom", {"header": {"dicom": header}})
    acquisition.files.append(file)
    return Audited(acquisition, file, header, expected)


def checks_of(findings: list[Any]) -> list[str]:
    return sorted(finding.check for finding in findings)


def test_header_round_trip_maps_like_the_file() -> None:
    ds = make_instance(SeriesSpec(), 0)
    header = header_info(ds)
    assert map_dataset(dataset_from_header(header)) == map_dataset(ds)


def test_clean_acquisition_has_no_findings() -> None:
    item = as_uploaded(*expected_for(SeriesSpec()))
    assert check_item(item) == []
    assert check_splits([item]) == []


def test_misplaced_session_is_flagged_with_both_locations() -> None:
    item = as_uploaded(*expected_for(SeriesSpec()))
    session = item.acquisition.session
    session.project = Project("p9", "study02", "psych")
    [finding] = check_item(item)
    assert finding.check == "misplaced"
    assert (finding.expected, finding.actual) == ("psych/study01/s01", "psych/study02/s01")
    assert (finding.container_id, finding.container_type, finding.severity) == (
        "ses1",
        "session",
        "error",
    )
    assert finding.fw_path == "psych/study02/s01/My Study"


def test_wrong_subject_is_misplaced() -> None:
    item = as_uploaded(*expected_for(SeriesSpec()))
    item.acquisition.session.subject = Subject("sub9", "s02")
    assert checks_of(check_item(item)) == ["misplaced"]


def test_unknown_data_whose_routing_now_resolves() -> None:
    item = as_uploaded(*expected_for(SeriesSpec()))
    item.acquisition.session.project = Project("p0", "Unsorted", "unknown")
    [finding] = check_item(item)
    assert finding.check == "unsorted-resolvable"
    assert (finding.expected, finding.actual) == ("psych/study01/s01", "unknown/Unsorted/s01")


def test_moved_by_unsorted_mover_is_not_misplaced() -> None:
    header, expected = expected_for(SeriesSpec(patient_id="no routing"))
    item = as_uploaded(header, expected)
    session = item.acquisition.session
    session.project = Project("p1", "study01", "psych")
    session.info = {"unsorted_mover": {"moves": [{"to": "psych/study01/s01/My Study"}]}}
    assert checks_of(check_item(item)) == ["no-routing"]


def test_no_routing_value_and_unresolvable_routing() -> None:
    for value, shown in (
        ("", "(empty)"),
        ("psych/study01", "psych/study01"),
        ("12345678", "(masked)"),
    ):
        item = as_uploaded(*expected_for(SeriesSpec(patient_id=value)))
        [finding] = check_item(item)
        assert (finding.check, finding.actual, finding.severity) == ("no-routing", shown, "warning")
        assert item.expected["group"]["_id"] == "unknown"

    item = as_uploaded(*expected_for(SeriesSpec(patient_id="fw://nosuch/study01/s01")))
    [finding] = check_item(item)
    assert finding.check == "routing-unresolved"
    assert finding.expected == "existing group nosuch"

    item = as_uploaded(*expected_for(SeriesSpec(patient_id="fw://psych/nosuch/s01")))
    [finding] = check_item(item)
    assert (finding.check, finding.expected) == (
        "routing-unresolved",
        "existing project psych/nosuch",
    )


def test_phi_in_routing_is_reported_masked() -> None:
    item = as_uploaded(*expected_for(SeriesSpec(patient_id="fw://psych/study01/Doe^John")))
    [finding] = check_item(item)
    assert finding.check == "phi-in-routing"
    assert finding.actual == "fw://psych/study01/D**^J*** (subject: person name)"
    assert "Doe" not in finding.actual and "John" not in finding.actual


def test_label_timestamp_and_uid_mismatches() -> None:
    item = as_uploaded(*expected_for(SeriesSpec(study_uid="1.2.3", series_uid="4.5.6")))
    session, acq = item.acquisition.session, item.acquisition
    session.label = "renamed"
    session.timestamp = datetime.fromisoformat("2020-10-23T11:56:24+00:00")
    session.uid = "9.9"
    acq.label = "T1"
    acq.timestamp = None
    acq.uid = "4.5.7"
    findings = {finding.check: finding for finding in check_item(item)}
    assert sorted(findings) == [
        "acquisition-label",
        "acquisition-timestamp",
        "acquisition-uid",
        "session-label",
        "session-timestamp",
        "session-uid",
    ]
    assert (findings["session-label"].expected, findings["session-label"].actual) == (
        "My Study",
        "renamed",
    )
    assert findings["session-timestamp"].expected == "2020-10-23T10:56:24+00:00"
    assert findings["acquisition-timestamp"].actual == "(none)"
    assert (findings["acquisition-uid"].expected, findings["acquisition-uid"].actual) == (
        "4.5.6",
        "4.5.7",
    )
    assert findings["acquisition-label"].container_type == "acquisition"


def test_same_instant_in_another_offset_is_not_a_mismatch() -> None:
    item = as_uploaded(*expected_for(SeriesSpec()))
    item.acquisition.session.timestamp = datetime.fromisoformat("2020-10-23T12:56:24+02:00")
    assert check_item(item) == []


def test_timezone_config_changes_expectation() -> None:
    spec = SeriesSpec()
    header, expected = expected_for(spec, MappingConfig(timezone="Europe/Paris"))
    item = as_uploaded(header, expected_for(spec)[1])  # uploaded with UTC
    item.expected = expected
    assert checks_of(check_item(item)) == ["acquisition-timestamp", "session-timestamp"]


def test_study_split_and_series_split() -> None:
    spec = SeriesSpec(study_uid="1.2.3", series_uid="4.5.6")
    first = as_uploaded(*expected_for(spec), ids="1")
    second = as_uploaded(*expected_for(spec), ids="2")  # same study and series, elsewhere
    findings = check_splits([first, second])
    assert checks_of(findings) == ["series-split", "series-split", "study-split", "study-split"]
    study = next(f for f in findings if f.check == "study-split")
    assert study.expected == "one session for study 1.2.3"
    assert study.actual.startswith("2 sessions: ")


def test_split_found_elsewhere_on_the_site_flags_only_what_is_in_scope() -> None:
    spec = SeriesSpec(study_uid="1.2.3", series_uid="4.5.6")
    item = as_uploaded(*expected_for(spec), ids="1")
    other = as_uploaded(*expected_for(spec), ids="2").acquisition
    findings = check_splits([item], {"1.2.3": [other.session]}, {"4.5.6": [other]})
    assert [(f.check, f.container_id) for f in findings] == [
        ("study-split", "ses1"),
        ("series-split", "acq1"),
    ]


def test_session_findings_are_reported_once_per_session() -> None:
    header, expected = expected_for(SeriesSpec())
    first = as_uploaded(header, expected)
    second = as_uploaded(header, expected)
    second.acquisition.session = first.acquisition.session
    first.acquisition.session.label = "renamed"
    findings = dedupe(check_item(first) + check_item(second))
    assert checks_of(findings) == ["session-label"]


def test_dataset_from_header_skips_unusable_values() -> None:
    ds = dataset_from_header(
        {
            "PatientName": {"Alphabetic": "Doe^John"},
            "NotAKeyword": "x",
            "ReferencedSeriesSequence": [{"a": 1}],
            "ImageType": ["ORIGINAL", "PRIMARY"],
        }
    )
    assert sorted(element.keyword for element in ds) == ["ImageType", "PatientName"]
    assert str(ds.PatientName) == "Doe^John"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]


def test_hand_triaged_unroutable_data_is_not_misplaced() -> None:
    item = as_uploaded(*expected_for(SeriesSpec(patient_id="")))
    item.acquisition.session.project = Project("p1", "study01", "psych")
    item.acquisition.session.subject = Subject("sub1", "s01")
    assert checks_of(check_item(item)) == ["no-routing"]
