"""Series full of PHI, the site profile that removes it, and a scan of everything fwlite
stored for any trace of it (tests and the de-id benchmark)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.support.dicomgen import SeriesSpec, make_instance

PROFILE = Path(__file__).parent / "deid" / "site-profile.yaml"

# every value a series below carries that must never reach Flywheel (case-insensitive)
PHI = {
    "PatientName": "Quixley^Marguerite",
    "PatientBirthDate": "19610407",
    "PatientAddress": "42 Wallaby Way Sydney",
    "PatientTelephoneNumbers": "555-0199-321",
    "OtherPatientNames": "Vandersloot^Margo",
    "PatientMotherBirthName": "Oyelaran^Ife",
    "InstitutionName": "St Elsewhere Hospital",
    "InstitutionAddress": "1 Hospital Road Boston",
    "ReferringPhysicianName": "Kildare^James",
    "PerformingPhysicianName": "Crane^Frasier",
    "OperatorsName": "Ratched^Mildred",
    "AccessionNumber": "ACC5551234",
}
SEQUENCE_MRN = "MRN-7788991"  # OtherPatientIDsSequence > PatientID
SEQUENCE_PHYSICIAN = "Zhivago^Yuri"  # RequestAttributesSequence > RequestingPhysician
PRIVATE_VALUE = "PRIV-SECRET-7731"  # (0029,xx10) of private creator ACME PHI
STUDY_DATE = "20201023"


def phi_spec(routing: str = "fw://psych/study01/s01", count: int = 6, **kw: Any) -> SeriesSpec:
    """A series whose UIDs end in components that hashuid truncates to leading zeros."""
    unique = str(uuid.uuid4().int)[:20]
    return SeriesSpec(
        count=count,
        patient_id=routing,
        patient_name=PHI["PatientName"],
        operators_name=PHI["OperatorsName"],
        study_uid=f"1.2.826.0.1.3680043.10.1000.{unique}.2000034",
        series_uid=f"1.2.826.0.1.3680043.10.1001.{unique}.1000012",
        **{"study_date": STUDY_DATE, "acquisition_date": STUDY_DATE, **kw},
    )


def phi_instance(spec: SeriesSpec, index: int) -> Dataset:
    ds = make_instance(spec, index)
    for keyword, value in PHI.items():
        if keyword not in ("PatientName", "OperatorsName"):
            setattr(ds, keyword, value)
    other = Dataset()
    other.PatientID = SEQUENCE_MRN
    other.IssuerOfPatientID = "SITE-MRN"
    ds.OtherPatientIDsSequence = [other]
    request = Dataset()
    request.RequestingPhysician = SEQUENCE_PHYSICIAN
    request.RequestedProcedureID = "RP1"
    ds.RequestAttributesSequence = [request]
    block = ds.private_block(0x0029, "ACME PHI", create=True)
    block.add_new(0x10, "LO", PRIVATE_VALUE)
    ds.ContentDate = spec.study_date
    return ds


def write_phi_series(out_dir: Path, spec: SeriesSpec) -> list[Path]:
    """The series as files; every other instance implicit VR little endian (as older
    scanners write them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(spec.count):
        ds = phi_instance(spec, index)
        if index % 2:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        path = out_dir / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def late_spec(spec: SeriesSpec, count: int) -> SeriesSpec:
    return replace(spec, count=count)


def phi_values(spec: SeriesSpec, sop_uids: list[str], dates: bool = True) -> list[str]:
    """What must not appear anywhere: the values above, each name part, the original
    UIDs (the profile hashes them) and (``dates``) the study date in both spellings."""
    values = [*PHI.values(), SEQUENCE_MRN, SEQUENCE_PHYSICIAN, PRIVATE_VALUE]
    for name in (PHI["PatientName"], PHI["ReferringPhysicianName"], SEQUENCE_PHYSICIAN):
        values += name.split("^")
    if dates:
        day = spec.study_date
        values += [day, f"{day[:4]}-{day[4:6]}-{day[6:]}"]
    values += [spec.study_uid, spec.series_uid, *sop_uids]
    return values


def _blobs(data: bytes, where: str) -> Iterator[tuple[str, bytes]]:
    """The bytes, or for a zip its member names and (recursively) their contents."""
    if data[:4] != b"PK\x03\x04":
        yield where, data
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                yield f"{where}!{info.filename}", info.filename.encode()
                if not info.is_dir():
                    yield from _blobs(zf.read(info), f"{where}!{info.filename}")


def stored_blobs(data_dir: Path, fw: Any) -> Iterator[tuple[str, bytes]]:
    """Every byte fwlite keeps (its data folder, zips opened) and every container and file
    as the SDK returns it."""
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        yield from _blobs(path.read_bytes(), str(path.relative_to(data_dir)))
        yield f"name:{path.relative_to(data_dir)}", str(path.relative_to(data_dir)).encode()
    containers: list[Any] = []
    for group in fw.groups():
        containers.append(fw.get_group(group.id))
        for project in fw.get_group_projects(group.id):
            containers.append(fw.get_project(project.id))
    for session in fw.sessions():
        session = fw.get_session(session.id)
        containers += [session, fw.get_subject(session.parents.subject)]
        for acquisition in fw.get_session_acquisitions(session.id):
            containers.append(fw.get_acquisition(acquisition.id))
    for container in containers:
        body = json.dumps(container.to_dict(), default=str)
        yield f"sdk:{container.container_type}:{container.id}", body.encode()


def phi_hits(data_dir: Path, fw: Any, values: list[str]) -> list[str]:
    """``where: value`` for each PHI value found (case-insensitive); empty = clean."""
    needles = [(v, v.lower().encode()) for v in values if v]
    hits = []
    for where, data in stored_blobs(data_dir, fw):
        low = data.lower()
        hits += [f"{where}: {value}" for value, needle in needles if needle in low]
    return hits
