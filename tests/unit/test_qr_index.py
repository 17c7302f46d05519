"""The Q/R index and the C-FIND / retrieve selection on top of it, filled directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fwagent.qr.attributes import ALL_HEADER
from fwagent.qr.index import Index, Source
from fwagent.qr.matching import IdentifierError
from fwagent.qr.query import PATIENT_ROOT, STUDY_ROOT, find, select
from pydicom.dataset import Dataset


def values(study: str, series: str, sop: str, number: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ALL_HEADER)
    row.update(
        PatientID="P1",
        PatientName="Doe^John",
        StudyInstanceUID=study,
        StudyDate="20200101",
        SeriesInstanceUID=series,
        Modality="MR",
        SOPInstanceUID=sop,
        SOPClassUID="1.2.840.10008.5.1.4.1.1.4",
        InstanceNumber=str(number),
    )
    row.update(extra)
    return row


def zip_rows(study: str, series: str, n: int, **extra: Any) -> list[tuple[str, str, dict]]:
    return [
        (f"s/{i}.dcm", "1.2.840.10008.1.2.1", values(study, series, f"{series}.{i}", i, **extra))
        for i in range(1, n + 1)
    ]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    idx = Index(tmp_path / "qr.sqlite", "key-1")
    idx.put_source(Source("f1", 1, "acq1", "T1.dicom.zip"), zip_rows("1.1", "1.1.1", 3))
    idx.put_source(Source("f2", 1, "acq2", "T2.dicom.zip"), zip_rows("1.1", "1.1.2", 2))
    rows = zip_rows("1.2", "1.2.1", 4, PatientID="P2", Modality="CT", StudyDate="20210101")
    idx.put_source(Source("f3", 1, "acq3", "CT.dicom.zip"), rows)
    return idx


def request(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


def test_levels_and_counts(index: Index) -> None:
    studies, truncated = find(
        index,
        request(
            "STUDY", StudyInstanceUID="", NumberOfStudyRelatedInstances="", ModalitiesInStudy=""
        ),
        STUDY_ROOT,
        "FWQR",
        100,
    )
    assert not truncated
    got = {
        str(s.StudyInstanceUID): (int(s.NumberOfStudyRelatedInstances), s.ModalitiesInStudy)
        for s in studies
    }
    assert got == {"1.1": (5, "MR"), "1.2": (4, "CT")}
    patients, _ = find(
        index,
        request("PATIENT", PatientID="", NumberOfPatientRelatedStudies=""),
        PATIENT_ROOT,
        "FWQR",
        100,
    )
    assert sorted((str(p.PatientID), int(p.NumberOfPatientRelatedStudies)) for p in patients) == [
        ("P1", 1),
        ("P2", 1),
    ]
    series, _ = find(
        index,
        request(
            "SERIES",
            StudyInstanceUID="1.1",
            SeriesInstanceUID="",
            NumberOfSeriesRelatedInstances="",
        ),
        STUDY_ROOT,
        "FWQR",
        100,
    )
    assert sorted(
        (str(s.SeriesInstanceUID), int(s.NumberOfSeriesRelatedInstances)) for s in series
    ) == [("1.1.1", 3), ("1.1.2", 2)]
    # a SERIES query may be narrowed by a study attribute (joined)
    with pytest.raises(IdentifierError, match="StudyDate"):  # not a DA value
        find(index, request("SERIES", StudyDate="2021"), STUDY_ROOT, "FWQR", 100)
    ct, _ = find(
        index, request("SERIES", StudyDate="20210101-", SeriesInstanceUID=""), STUDY_ROOT, "A", 9
    )
    assert [str(s.SeriesInstanceUID) for s in ct] == ["1.2.1"]


def test_same_instance_in_two_files_is_answered_once_and_survives_one_removal(index: Index) -> None:
    # the T1 series uploaded again elsewhere (another project, a single file...)
    index.put_source(Source("f9", 1, "acq9", "copy.dicom.zip"), zip_rows("1.1", "1.1.1", 3))
    images, _ = find(
        index, request("IMAGE", SeriesInstanceUID="1.1.1", SOPInstanceUID=""), STUDY_ROOT, "AE", 100
    )
    assert len(images) == 3
    (study,) = find(
        index,
        request("STUDY", StudyInstanceUID="1.1", NumberOfStudyRelatedInstances=""),
        STUDY_ROOT,
        "AE",
        100,
    )[0]
    assert int(study.NumberOfStudyRelatedInstances) == 5
    index.remove_source("f1")
    assert (
        len(
            select(
                index,
                request("SERIES", StudyInstanceUID="1.1", SeriesInstanceUID="1.1.1"),
                STUDY_ROOT,
            )
        )
        == 3
    )
    index.remove_source("f9")
    assert select(index, request("SERIES", SeriesInstanceUID="1.1.1"), STUDY_ROOT) == []
    (study,) = find(
        index,
        request("STUDY", StudyInstanceUID="1.1", NumberOfStudyRelatedInstances=""),
        STUDY_ROOT,
        "AE",
        100,
    )[0]
    assert int(study.NumberOfStudyRelatedInstances) == 2
    assert index.counts()["series"] == 2


def test_replaced_file_version_replaces_its_instances(index: Index) -> None:
    index.put_source(Source("f2", 2, "acq2", "T2.dicom.zip"), zip_rows("1.1", "1.1.2", 5))
    assert len(select(index, request("SERIES", SeriesInstanceUID="1.1.2"), STUDY_ROOT)) == 5
    assert index.sources()["f2"].version == 2


def test_results_are_limited_and_say_so(index: Index) -> None:
    answers, truncated = find(index, request("IMAGE", SOPInstanceUID=""), STUDY_ROOT, "AE", 4)
    assert len(answers) == 4 and truncated


def test_retrieve_selection_needs_the_unique_key_of_its_level(index: Index) -> None:
    located = select(index, request("STUDY", StudyInstanceUID="1.1\\1.2"), STUDY_ROOT)
    assert len(located) == 9
    assert {x.source.file_id for x in located} == {"f1", "f2", "f3"}
    assert len(select(index, request("PATIENT", PatientID="P2"), PATIENT_ROOT)) == 4
    with pytest.raises(IdentifierError, match="SeriesInstanceUID"):
        select(index, request("SERIES", StudyInstanceUID="1.1"), STUDY_ROOT)
    with pytest.raises(IdentifierError, match="wildcards"):
        select(index, request("STUDY", StudyInstanceUID="1.*"), STUDY_ROOT)
    with pytest.raises(IdentifierError, match="PATIENT"):
        select(index, request("PATIENT", PatientID="P2"), STUDY_ROOT)


def test_another_api_key_starts_from_an_empty_index(tmp_path: Path, index: Index) -> None:
    index.close()
    same = Index(tmp_path / "qr.sqlite", "key-1")
    assert same.counts()["instances"] == 9
    same.close()
    other = Index(tmp_path / "qr.sqlite", "key-2")
    assert other.counts() == dict.fromkeys(
        ("sources", "instances", "series", "studies", "patients"), 0
    )


def test_non_ascii_values_come_back_in_utf8(index: Index) -> None:
    rows = zip_rows("1.3", "1.3.1", 1, PatientName="Müller^Jürgen", PatientID="P3")
    index.put_source(Source("f4", 1, "acq4", "x.dicom.zip"), rows)
    (answer,), _ = find(index, request("STUDY", PatientName="müller*"), STUDY_ROOT, "AE", 10)
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert str(answer.PatientName) == "Müller^Jürgen"
