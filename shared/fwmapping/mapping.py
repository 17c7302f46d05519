"""DICOM header -> Flywheel uid-upload metadata, one object per acquisition (series).

The rules are those of Flywheel's connector (``how-the-connector-uploads.txt``); DESIGN.md
section 2 fixes the output shape. Pure: no site access (see ``placement`` for that).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydicom.dataset import Dataset

from .config import MappingConfig
from .header import text
from .names import split_patient_name
from .routing import parse_routing
from .timestamps import dicom_timestamp, zone

_DECREMENTED_IMAGE_TYPES = (
    ("DERIVED", "SECONDARY", "SCREEN SAVE"),
    ("DERIVED", "SECONDARY", "VXTL STATE"),
)


def is_siemens(ds: Dataset) -> bool:
    """Siemens in any case, with any suffix ("SIEMENS", "Siemens Healthineers")."""
    return text(ds, "Manufacturer").lower().startswith("siemens")


def _image_type(ds: Dataset) -> tuple[str, ...]:
    return tuple(part.strip().upper() for part in text(ds, "ImageType").split("\\"))


def _decrement_uid(uid: str) -> str:
    head, _, last = uid.rpartition(".")
    if not head or not last.isdigit() or int(last) == 0:
        return uid
    return f"{head}.{int(last) - 1}"


def acquisition_uid(ds: Dataset) -> str:
    """SeriesInstanceUID, decremented for screen saves / VXTL states, ``_N`` for non-Siemens
    AcquisitionNumber N > 1."""
    uid = text(ds, "SeriesInstanceUID")
    if _image_type(ds)[:3] in _DECREMENTED_IMAGE_TYPES:
        uid = _decrement_uid(uid)
    number = text(ds, "AcquisitionNumber")
    if not is_siemens(ds) and number.isdigit() and int(number) > 1:
        uid = f"{uid}_{int(number)}"
    return uid


def fallback_subject_label(ds: Dataset) -> str:
    """A stable label that carries no PHI: derived from the StudyInstanceUID alone."""
    study = text(ds, "StudyInstanceUID") or text(ds, "SeriesInstanceUID")
    return "sub-" + hashlib.sha256(study.encode()).hexdigest()[:10]


def subject_label(ds: Dataset, config: MappingConfig, routed: str | None) -> str:
    """From the routing string; else PatientID (unless it is the routing field); else a
    non-PHI fallback. Never the raw ``fw://`` value."""
    if routed:
        return routed
    if config.routing_field != "PatientID":
        patient_id = text(ds, "PatientID")
        if patient_id and not patient_id.lower().startswith("fw://"):
            return patient_id
    return fallback_subject_label(ds)


def map_dataset(ds: Dataset, config: MappingConfig | None = None) -> dict[str, Any]:
    """The uid-upload metadata for the acquisition ``ds`` belongs to (see DESIGN.md 2)."""
    config = config or MappingConfig()
    tz = zone(config.timezone)
    raw_routing = text(ds, config.routing_field)
    routing = parse_routing(raw_routing)

    session_uid = text(ds, "StudyInstanceUID")
    session_ts = dicom_timestamp(ds.get("StudyDate"), ds.get("StudyTime"), tz)
    session_label = (
        routing.session or text(ds, config.session_label_key) or session_ts or session_uid
    )
    firstname, lastname = split_patient_name(text(ds, "PatientName"))

    if is_siemens(ds):
        acq_ts = dicom_timestamp(ds.get("SeriesDate"), ds.get("SeriesTime"), tz)
    else:
        acq_ts = dicom_timestamp(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"), tz)
    acq_uid = acquisition_uid(ds)
    acq_label = (
        text(ds, "SeriesDescription")
        or text(ds, "ProtocolName")
        or text(ds, "SeriesNumber")
        or acq_uid
    )

    return {
        "group": {"_id": routing.group_id},
        "project": {"label": routing.project_label},
        "session": {
            "uid": session_uid,
            "label": session_label,
            "operator": text(ds, "OperatorsName"),
            "timestamp": session_ts,
            "timezone": config.timezone,
            "subject": {
                "label": subject_label(ds, config, routing.subject),
                "firstname": firstname,
                "lastname": lastname,
            },
        },
        "acquisition": {"uid": acq_uid, "label": acq_label, "timestamp": acq_ts or session_ts},
        "routing": {
            "field": config.routing_field,
            "value": raw_routing,
            "placement": routing.placement,
        },
    }
