"""Which DICOM attributes the Q/R index keeps, per level, and how they are read from a header.

Values are kept as the text DICOM would show (multi-values joined with a backslash), so
what C-FIND returns is what the instances say, not Flywheel's labels.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

PATIENT = "PATIENT"
STUDY = "STUDY"
SERIES = "SERIES"
IMAGE = "IMAGE"
LEVELS = (PATIENT, STUDY, SERIES, IMAGE)

# attributes read from each instance, by the level they belong to
HEADER_KEYWORDS: dict[str, tuple[str, ...]] = {
    PATIENT: (
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
    ),
    STUDY: (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
    ),
    SERIES: (
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "ProtocolName",
    ),
    IMAGE: (
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "ContentDate",
        "ContentTime",
        "Rows",
        "Columns",
        "NumberOfFrames",
    ),
}

# attributes the index computes (return keys only: a value in the request is ignored)
COMPUTED: dict[str, tuple[str, ...]] = {
    PATIENT: (
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ),
    STUDY: (
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    SERIES: ("NumberOfSeriesRelatedInstances",),
    IMAGE: (),
}

UNIQUE_KEY = {
    PATIENT: "PatientID",
    STUDY: "StudyInstanceUID",
    SERIES: "SeriesInstanceUID",
    IMAGE: "SOPInstanceUID",
}

ALL_HEADER = tuple(k for level in LEVELS for k in HEADER_KEYWORDS[level])
MULTI_VALUED = frozenset({"ModalitiesInStudy"})


def level_keywords(level: str, with_patient: bool = True) -> tuple[str, ...]:
    """Keywords answerable at ``level`` (header + computed); a study row also carries the
    patient's attributes (Study Root puts them at STUDY level)."""
    out = [*HEADER_KEYWORDS[level], *COMPUTED[level]]
    if level == STUDY and with_patient:
        out = [*HEADER_KEYWORDS[PATIENT], *out]
    return tuple(out)


def vr_of(keyword: str) -> str:
    return str(dictionary_VR(keyword))


def header_values(ds: Dataset) -> dict[str, str | None]:
    """The indexed attributes of one instance as text (None when absent or empty)."""
    values: dict[str, str | None] = {}
    for keyword in ALL_HEADER:
        values[keyword] = text_value(ds.get(keyword))
    return values


def text_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        joined = "\\".join(str(v) for v in value)
        return joined or None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    text = str(value).strip()
    return text or None
