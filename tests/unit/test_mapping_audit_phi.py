"""PHI heuristics on routing strings (mapping-audit)."""

from __future__ import annotations

import pytest

from gears.mapping_audit.phi import PhiHit, looks_like_phi, mask, masked_routing, routing_phi

HEADER = {"PatientName": "Doe^John", "PatientID": "MRN0042", "PatientBirthDate": "19700101"}


@pytest.mark.parametrize(
    "value",
    [
        "fw://psych/study01/s01",
        "fw://psych/study01/sub-001/ses-baseline",
        "fw://psych/study-parkinsons-2024/patient-abc123/ses-followup-6mo",
        "fw://psych",
        "fw://psych/study01/s01/visit 2",
    ],
)
def test_clean_routing_strings_have_no_hits(value: str) -> None:
    assert routing_phi(value, HEADER) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fw://psych/study01/Doe^John", [PhiHit("subject", "person name")]),
        ("fw://psych/study01/john.doe", [PhiHit("subject", "person name")]),
        ("fw://psych/study01/s01/19700101", [PhiHit("session", "date")]),
        ("fw://psych/study01/s01/2020-10-23", [PhiHit("session", "date")]),
        ("fw://psych/study01/s01/23.10.2020", [PhiHit("session", "date")]),
        ("fw://psych/study01/s01/23Oct2020", [PhiHit("session", "date")]),
        ("fw://psych/study01/12345678", [PhiHit("subject", "long digit run (record number?)")]),
        ("fw://psych/study01/123-45-6789", [PhiHit("subject", "social security number")]),
        ("fw://psych/study01/jd@example.org", [PhiHit("subject", "e-mail address")]),
    ],
)
def test_each_kind_is_found(value: str, expected: list[PhiHit]) -> None:
    assert routing_phi(value, HEADER, routing_field="OtherPatientIDs") == expected


def test_patient_id_in_routing_is_found_when_it_is_not_the_routing_field() -> None:
    header = {"PatientID": "MRN0042", "PatientComments": "fw://psych/study01/MRN0042"}
    hits = routing_phi(header["PatientComments"], header, routing_field="PatientComments")
    assert hits == [PhiHit("subject", "patient identifier")]


def test_values_without_scheme_are_not_routing_strings() -> None:
    assert routing_phi("Doe^John", HEADER) == []
    assert routing_phi(None, HEADER) == []


def test_masking_keeps_shape_and_hides_content() -> None:
    assert mask("Doe^John") == "D**^J***"
    hits = routing_phi("fw://psych/study01/Doe^John/19700101", HEADER)
    assert {hit.part for hit in hits} == {"subject", "session"}
    assert masked_routing("fw://psych/study01/Doe^John/19700101", hits) == (
        "fw://psych/study01/D**^J***/1*******"
    )


def test_looks_like_phi_for_raw_values() -> None:
    assert looks_like_phi("12345678")
    assert looks_like_phi("Doe^John")
    assert not looks_like_phi("psych/study01")
