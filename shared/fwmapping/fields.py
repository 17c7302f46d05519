"""The header fields the rules read, as plain JSON for Flywheel file info, and back.

The agent keeps these fields of each acquisition's first instance in the file's info (as
Flywheel's classifier would); the audit and the mover read them back from there, or from a
downloaded file through the same converter, so the rules see the same values everywhere.
Adding a field to :data:`HEADER_FIELDS` is the one change that makes it travel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from .config import MappingConfig
from .header import text
from .policy import policy_field

log = logging.getLogger(__name__)

# the patient's names and identifiers, compared with routing strings by the PHI checks
PATIENT_NAME_FIELDS = ("PatientName", "OtherPatientNames", "PatientMotherBirthName")
PATIENT_ID_FIELDS = ("PatientID", "OtherPatientIDs", "AccessionNumber")

# what the mapping rules read (names, uids, labels, timestamps, vendor rules), what the PHI
# checks compare, and what Flywheel's classifier is commonly asked for
HEADER_FIELDS: tuple[str, ...] = (
    *PATIENT_NAME_FIELDS,
    *PATIENT_ID_FIELDS,
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyDescription",
    "SeriesDescription",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionNumber",
    "ImageType",
    "Manufacturer",
    "OperatorsName",
    "SeriesNumber",
    "ProtocolName",
    "Modality",
    "SOPClassUID",
    "PatientComments",
)

# values that are not text: never copied into file info
_BINARY_VRS = {"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def header_fields(config: MappingConfig | None = None) -> tuple[str, ...]:
    """:data:`HEADER_FIELDS` plus the site's configured fields (routing, session label,
    policy), without repeats."""
    extra: tuple[str, ...] = ()
    if config is not None:
        extra = (config.routing_field, config.session_label_key, policy_field(config))
    return tuple(dict.fromkeys((*HEADER_FIELDS, *extra)))


def plain(value: Any) -> Any:
    """A header value as JSON: numbers as numbers, names and the rest as text, bytes as
    latin-1, multiple values as a list."""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace")
    if isinstance(value, pydicom.valuerep.IS):
        return int(value)
    if isinstance(value, pydicom.valuerep.DSfloat | pydicom.valuerep.DSdecimal):
        return float(value)
    return str(value)


def header_info(ds: Dataset, config: MappingConfig | None = None) -> dict[str, Any]:
    """keyword -> plain value of the :func:`header_fields` present in ``ds``."""
    info: dict[str, Any] = {}
    for keyword in header_fields(config):
        if keyword not in ds:
            continue
        element = ds[keyword]
        if element.VR in _BINARY_VRS:
            continue
        info[keyword] = plain(element.value)
    return info


def dataset_from_header(header: Mapping[str, Any]) -> Dataset:
    """A pydicom Dataset from a keyword -> value header (file info), for the rules to read.

    Values it cannot hold (unknown keywords, sequences, odd types) are left out; a DICOM
    JSON person name (``{"Alphabetic": ...}``) is taken by its alphabetic form.
    """
    ds = Dataset()
    for keyword, value in header.items():
        if isinstance(value, Mapping) and keyword in PATIENT_NAME_FIELDS:
            value = value.get("Alphabetic")
        if value is None or isinstance(value, Mapping) or tag_for_keyword(keyword) is None:
            continue
        if dictionary_VR(keyword) in _BINARY_VRS:
            continue
        if isinstance(value, list) and any(isinstance(item, Mapping | list) for item in value):
            continue
        try:
            setattr(ds, keyword, value)
        except (TypeError, ValueError, OverflowError) as exc:
            log.debug("header value %s=%r left out: %s", keyword, value, exc)
    return ds


def header_text(header: Mapping[str, Any], keyword: str) -> str | None:
    """One field of a file-info header as the rules read it (multiple values joined with
    backslashes), or None when the header lacks it."""
    if header.get(keyword) is None:
        return None
    return text(dataset_from_header({keyword: header[keyword]}), keyword)
