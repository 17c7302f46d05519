"""The mapping rules of DESIGN.md section 2, each against the seed's own examples."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from fwmapping import (
    FOLLOWED,
    MappingConfig,
    NotDicomError,
    Policy,
    SentTag,
    acquisition_uid,
    add_sent_tag,
    dicom_timestamp,
    format_routing,
    is_sent_by_flywheel,
    map_dataset,
    parse_routing,
    policy_allows,
    policy_allows_value,
    read_first_header,
    read_header,
    resolve_placement,
    site_placement,
    split_patient_name,
)
from fwmapping.timestamps import zone
from hypothesis import given
from hypothesis import strategies as st

from tests.support.dicomgen import SeriesSpec, make_instance, write_series


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Doe^John", "John", "Doe"),
        ("Doe^John^Mid", "John^Mid", "Doe"),
        ("John Doe", "John", "Doe"),
        ("John Mid Doe", "John Mid", "Doe"),
        ("john doe", "John", "Doe"),
        ("JohnDoe", "", "JohnDoe"),
        ("doe^john", "John", "Doe"),
        ("Doe^John^^^", "John", "Doe"),
        ("", "", ""),
    ],
)
def test_patient_name_split_and_capitalisation(name: str, first: str, last: str) -> None:
    assert split_patient_name(name) == (first, last)


@pytest.mark.parametrize(
    ("value", "expected", "placement"),
    [
        ("fw://psych/study01/s01", ("psych", "study01", "s01", None), "routed"),
        ("fw://psych/study01/s01/ses01", ("psych", "study01", "s01", "ses01"), "routed"),
        ("fw://psych/study01", ("psych", "study01", None, None), "routed"),
        ("fw://psych", ("psych", None, None, None), "unsorted"),
        ("fw://psych/", ("psych", None, None, None), "unsorted"),
        ("  FW://Psych/Study01  ", ("psych", "Study01", None, None), "routed"),
        ("psych/study01", (None, None, None, None), "unknown"),
        ("", (None, None, None, None), "unknown"),
        (None, (None, None, None, None), "unknown"),
        ("fw://", (None, None, None, None), "unknown"),
        ("fw://bad group!/p", (None, None, None, None), "unknown"),
        # "." and ".." are no container (issue 18.12): treated as absent
        ("fw://psych/../s01", ("psych", None, "s01", None), "unsorted"),
        ("fw://psych/study01/./..", ("psych", "study01", None, None), "routed"),
        ("fw://psych/ .. /s01/.", ("psych", None, "s01", None), "unsorted"),
        ("fw://../study01", (None, None, None, None), "unknown"),
        ("fw://./study01", (None, None, None, None), "unknown"),
    ],
)
def test_parse_routing(value: str | None, expected: tuple, placement: str) -> None:
    routing = parse_routing(value)
    assert (routing.group, routing.project, routing.subject, routing.session) == expected
    assert routing.placement == placement


@given(st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=4))
def test_routing_round_trip(parts: list[str]) -> None:
    routing = parse_routing("fw://" + "/".join(parts))
    assert format_routing(routing) == "fw://" + "/".join(parts)


@pytest.mark.parametrize(
    "routing", ["fw://psych/../..", "fw://psych/./././.", "fw://psych/../../.."]
)
def test_dot_routing_parts_never_become_labels(routing: str) -> None:
    metadata = map_dataset(make_instance(SeriesSpec(patient_id=routing), 0))
    labels = [
        metadata["project"]["label"],
        metadata["session"]["subject"]["label"],
        metadata["session"]["label"],
    ]
    assert metadata["group"] == {"_id": "psych"}
    assert metadata["project"]["label"] == "Unsorted"
    assert not {".", ".."} & {label.strip() for label in labels}, labels


def test_seed_example_maps_exactly() -> None:
    spec = SeriesSpec(patient_name="doe^john", study_uid="1.2.3", series_uid="4.5.6")
    assert map_dataset(make_instance(spec, 0)) == {
        "group": {"_id": "psych"},
        "project": {"label": "study01"},
        "session": {
            "uid": "1.2.3",
            "label": "My Study",
            "operator": "OP^Mike",
            "timestamp": "2020-10-23T10:56:24+00:00",
            "timezone": "UTC",
            "subject": {"label": "s01", "firstname": "John", "lastname": "Doe"},
        },
        "acquisition": {
            "uid": "4.5.6",
            "label": "Series 002",
            "timestamp": "2020-10-23T10:56:49+00:00",
        },
        "routing": {"field": "PatientID", "value": "fw://psych/study01/s01", "placement": "routed"},
    }


@pytest.mark.parametrize(
    ("image_type", "manufacturer", "number", "uid"),
    [
        (("ORIGINAL", "PRIMARY"), "GE", 1, "1.2.3.4"),
        (("DERIVED", "SECONDARY", "SCREEN SAVE"), "GE", 1, "1.2.3.3"),
        (("DERIVED", "SECONDARY", "VXTL STATE"), "SIEMENS", 1, "1.2.3.3"),
        (("ORIGINAL", "PRIMARY"), "SIEMENS", 2, "1.2.3.4"),
        (("ORIGINAL", "PRIMARY"), "Siemens Healthineers", 3, "1.2.3.4"),
        (("ORIGINAL", "PRIMARY"), "GE", 2, "1.2.3.4_2"),
        (("ORIGINAL", "PRIMARY"), "GE", None, "1.2.3.4"),
    ],
)
def test_acquisition_uid(
    image_type: tuple, manufacturer: str, number: int | None, uid: str
) -> None:
    spec = SeriesSpec(
        series_uid="1.2.3.4",
        image_type=image_type,
        manufacturer=manufacturer,
        acquisition_number=number,
    )
    assert acquisition_uid(make_instance(spec, 0)) == uid


def test_siemens_acquisition_timestamp_from_series_date_and_time() -> None:
    spec = SeriesSpec(manufacturer="SIEMENS", extra={"SeriesTime": "111111"})
    assert map_dataset(make_instance(spec, 0))["acquisition"]["timestamp"] == (
        "2020-10-23T11:11:11+00:00"
    )
    broken = SeriesSpec(manufacturer="SIEMENS", extra={"SeriesDate": "garbage"})
    meta = map_dataset(make_instance(broken, 0))
    assert meta["acquisition"]["timestamp"] == meta["session"]["timestamp"]


def test_timezone_and_partial_times() -> None:
    berlin = zone("Europe/Berlin")
    assert dicom_timestamp("20201023", "105624.5", berlin) == "2020-10-23T10:56:24.500000+02:00"
    assert dicom_timestamp("20201023", "1056", zone("UTC")) == "2020-10-23T10:56:00+00:00"
    assert dicom_timestamp("20201023", "10:56:24", zone("UTC")) == "2020-10-23T10:56:24+00:00"
    assert dicom_timestamp("", "105624", zone("UTC")) is None
    assert dicom_timestamp("20201399", "", zone("UTC")) is None
    with pytest.raises(ValueError, match="unknown timezone"):
        zone("Mars/Olympus")
    meta = map_dataset(make_instance(SeriesSpec(), 0), MappingConfig(timezone="America/New_York"))
    assert meta["session"]["timestamp"] == "2020-10-23T10:56:24-04:00"
    assert meta["session"]["timezone"] == "America/New_York"


def test_labels_and_fallbacks() -> None:
    spec = SeriesSpec(patient_id="fw://psych/study01/s01/ses-a", series_description="")
    meta = map_dataset(make_instance(spec, 0))
    assert meta["session"]["label"] == "ses-a"
    assert meta["acquisition"]["label"] == "2"  # SeriesNumber when no description/protocol
    config = MappingConfig(session_label_key="StudyID")
    meta = map_dataset(make_instance(SeriesSpec(extra={"StudyID": "E123"}), 0), config)
    assert meta["session"]["label"] == "E123"
    meta = map_dataset(make_instance(SeriesSpec(study_description=""), 0))
    assert meta["session"]["label"] == "2020-10-23T10:56:24+00:00"


def test_subject_label_never_the_routing_string() -> None:
    meta = map_dataset(make_instance(SeriesSpec(patient_id="fw://psych/study01"), 0))
    label = meta["session"]["subject"]["label"]
    assert label.startswith("sub-") and "fw://" not in label
    again = map_dataset(make_instance(SeriesSpec(patient_id="fw://psych/study01"), 1))
    assert len(label) == 14 and label != again["session"]["subject"]["label"]  # per study
    config = MappingConfig(routing_field="OtherPatientIDs")
    spec = SeriesSpec(patient_id="MRN123", extra={"OtherPatientIDs": "fw://psych/study01"})
    assert map_dataset(make_instance(spec, 0), config)["session"]["subject"]["label"] == "MRN123"


def test_unknown_and_unsorted_placement_keep_the_raw_value() -> None:
    meta = map_dataset(make_instance(SeriesSpec(patient_id="psych/study01"), 0))
    assert (meta["group"], meta["project"]) == ({"_id": "unknown"}, {"label": "Unsorted"})
    assert meta["routing"] == {
        "field": "PatientID",
        "value": "psych/study01",
        "placement": "unknown",
    }
    meta = map_dataset(make_instance(SeriesSpec(patient_id="fw://psych"), 0))
    assert (meta["group"], meta["project"]) == ({"_id": "psych"}, {"label": "Unsorted"})


def test_opt_in_and_opt_out() -> None:
    out = MappingConfig()
    assert policy_allows(make_instance(SeriesSpec(), 0), out)
    assert not policy_allows(make_instance(SeriesSpec(patient_id="fw://a/b nofw"), 0), out)
    opt_in = MappingConfig(policy=Policy(mode="opt-in", field="StudyComments", strings=("UPLOAD",)))
    assert not policy_allows(make_instance(SeriesSpec(), 0), opt_in)
    tagged = make_instance(SeriesSpec(extra={"StudyComments": "please upload"}), 0)
    assert policy_allows(tagged, opt_in)
    assert policy_allows_value(None, Policy())
    assert not policy_allows_value(None, Policy(mode="opt-in", strings=("X",)))
    with pytest.raises(ValueError, match="policy mode"):
        Policy(mode="sometimes")


def test_sent_tag_added_once_and_detected(tmp_path: Path) -> None:
    ds = make_instance(SeriesSpec(), 0)
    tag = SentTag()
    assert not is_sent_by_flywheel(ds, tag)
    add_sent_tag(ds, tag)
    add_sent_tag(ds, tag)
    assert len(ds.group_dataset(0x0021)) == 2  # creator + value, not duplicated
    path = tmp_path / "sent.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert is_sent_by_flywheel(read_header(path), tag)
    assert not is_sent_by_flywheel(read_header(path), SentTag(group=0x0023))


def test_read_header_refuses_non_dicom(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(NotDicomError, match="not a DICOM file"):
        read_header(tmp_path / "notes.txt")
    with pytest.raises(NotDicomError, match="cannot read"):
        read_header(tmp_path / "missing.dcm")
    path = write_series(tmp_path / "s", SeriesSpec(count=1))[0]
    assert "PixelData" not in read_header(path)


class FakeSite:
    """A plain in-memory site for the pure placement rules (the SDK path is tested on fwlite)."""

    def __init__(self, groups: dict[str, set[str]], sessions: dict[str, tuple[str, str, str]]):
        self.groups, self.sessions = groups, sessions

    def group_exists(self, group_id: str) -> bool:
        return group_id in self.groups

    def project_exists(self, group_id: str, project_label: str) -> bool:
        return project_label in self.groups.get(group_id, set())

    def session_location(self, session_uid: str) -> tuple[str, str, str] | None:
        return self.sessions.get(session_uid)


def test_resolve_placement_rules() -> None:
    meta = map_dataset(make_instance(SeriesSpec(study_uid="9.9"), 0))
    site = FakeSite({"psych": {"study01"}}, {})
    assert resolve_placement(meta, site)["routing"]["resolved"] == "routed"
    placed = resolve_placement(meta, FakeSite({"psych": set()}, {}))
    assert placed["project"] == {"label": "Unsorted"}
    assert placed["routing"]["resolved"] == "unsorted"
    placed = resolve_placement(meta, FakeSite({"psyche": {"study01"}}, {}))
    assert (placed["group"], placed["project"]) == ({"_id": "unknown"}, {"label": "Unsorted"})
    assert placed["routing"]["value"] == "fw://psych/study01/s01"
    moved = FakeSite({"psych": {"study01"}}, {"9.9": ("neuro", "trial", "p7")})
    placed = resolve_placement(meta, moved)
    assert placed["group"] == {"_id": "neuro"}
    assert placed["session"]["subject"]["label"] == "p7"
    assert placed["routing"]["resolved"] == FOLLOWED
    assert meta["group"] == {"_id": "psych"}  # the input is not changed


def test_first_header_of_a_file_or_of_a_zip(tmp_path: Path) -> None:
    [dicom] = write_series(tmp_path / "d", SeriesSpec(count=1))
    archive = tmp_path / "series.dicom.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a-readme.txt", "not dicom")
        out.write(dicom, "series/one.dcm")
    uid = read_header(dicom).SOPInstanceUID
    assert read_first_header(archive).SOPInstanceUID == uid
    assert read_first_header(dicom).SOPInstanceUID == uid
    assert "PixelData" not in read_first_header(archive)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as out:
        out.writestr("notes.txt", "nothing")
    with pytest.raises(NotDicomError, match="no DICOM file in the zip"):
        read_first_header(empty)


def test_placement_without_following_sessions() -> None:
    meta = map_dataset(make_instance(SeriesSpec(study_uid="9.9"), 0))
    moved = FakeSite({"psych": {"study01"}}, {"9.9": ("neuro", "trial", "p7")})
    placed = resolve_placement(meta, moved, follow_sessions=False)
    assert (placed["group"], placed["project"]) == ({"_id": "psych"}, {"label": "study01"})
    assert placed["routing"]["resolved"] == "routed"
    assert site_placement("psyche", "study01", "routed", moved) == (
        "unknown",
        "Unsorted",
        "unknown",
    )
    assert site_placement("psych", "nope", "routed", moved) == ("psych", "Unsorted", "unsorted")
    assert site_placement("psych", "Unsorted", "unsorted", moved) == (
        "psych",
        "Unsorted",
        "unsorted",
    )
