"""The uid-upload body the agent sends: routing provenance and header info."""

from __future__ import annotations

from fwagent.upload import upload_metadata
from fwmapping import MappingConfig, Policy, header_info, map_dataset

from tests.support.dicomgen import SeriesSpec, make_instance


def test_site_fields_travel_in_file_info() -> None:
    spec = SeriesSpec(patient_id="MRN1", extra={"OtherPatientIDs": "fw://psych/study01"})
    ds = make_instance(spec, 0)
    plain = header_info(ds)
    assert "InstitutionName" not in plain and plain["PatientID"] == "MRN1"
    config = MappingConfig(
        routing_field="OtherPatientIDs",
        session_label_key="StudyDescription",
        policy=Policy(field="InstitutionName"),
    )
    ds.InstitutionName = "Hospital"
    site = header_info(ds, config)
    assert site["OtherPatientIDs"] == "fw://psych/study01"
    assert site["InstitutionName"] == "Hospital"


def test_routing_goes_to_session_and_acquisition_info() -> None:
    metadata = map_dataset(make_instance(SeriesSpec(), 0))
    metadata["routing"]["resolved"] = "routed"
    body = upload_metadata(metadata, "Series 002.dicom.zip", {"PatientID": "x"})
    assert "routing" not in body
    assert body["session"]["info"]["fwagent"]["routing"]["value"] == "fw://psych/study01/s01"
    assert body["acquisition"]["info"]["fwagent"]["routing"]["resolved"] == "routed"
    (entry,) = body["acquisition"]["files"]
    assert entry == {
        "name": "Series 002.dicom.zip",
        "type": "dicom",
        "info": {"header": {"dicom": {"PatientID": "x"}}},
    }
    metadata["routing"]["resolved"] = "followed"  # a followed session keeps its own record
    assert "info" not in upload_metadata(metadata, "a.zip", {})["session"]


def test_settings_are_recorded_with_the_routing() -> None:
    config = MappingConfig(
        routing_field="PatientComments",
        session_label_key="SeriesDescription",
        timezone="Europe/Paris",
        policy=Policy(mode="opt-in", field="StudyComments", strings=("UPLOAD", "FW")),
    )
    metadata = map_dataset(make_instance(SeriesSpec(), 0), config)
    metadata["routing"]["resolved"] = "routed"
    body = upload_metadata(metadata, "a.zip", {}, config)
    settings = {
        "routing_field": "PatientComments",
        "session_label_key": "SeriesDescription",
        "timezone": "Europe/Paris",
        "policy": {"mode": "opt-in", "field": "StudyComments", "strings": ["UPLOAD", "FW"]},
    }
    assert body["session"]["info"]["fwagent"]["settings"] == settings
    assert body["acquisition"]["info"]["fwagent"]["settings"] == settings
    assert body["session"]["info"]["fwagent"]["routing"]["field"] == "PatientComments"
