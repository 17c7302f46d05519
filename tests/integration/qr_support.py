"""Shared set-up for the Q/R tests: a site on fwlite filled by the agent itself, and the
dcmtk clients' output read back as datasets."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flywheel
import pydicom
from pydicom.data import get_testdata_file

from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series

QR_AET = "FWQR"


@dataclass
class Site:
    """What was uploaded, as the tests' ground truth (read from the files themselves)."""

    files: dict[str, Path] = field(default_factory=dict)  # SOPInstanceUID -> original file
    studies: dict[str, list[str]] = field(default_factory=dict)  # study -> SOP UIDs
    series: dict[str, list[str]] = field(default_factory=dict)  # series -> SOP UIDs

    def add(self, path: Path) -> None:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        self.files[ds.SOPInstanceUID] = path
        self.studies.setdefault(ds.StudyInstanceUID, []).append(ds.SOPInstanceUID)
        self.series.setdefault(ds.SeriesInstanceUID, []).append(ds.SOPInstanceUID)


# study A (2 series) and B for patient PAT-A, study C for PAT-B, all through the agent
SPECS = {
    "a1": dict(
        count=3, patient_id="PAT-A", patient_name="Doe^John", study_date="20201023",
        study_description="Brain MRI", series_description="T1", series_number=1,
    ),
    "a2": dict(count=2, series_description="T2", series_number=2),
    "b": dict(
        count=4, patient_id="PAT-A", patient_name="Doe^John", study_date="20210315",
        study_time="083000", study_description="Knee", modality="CT",
        series_description="Axial",
    ),
    "c": dict(
        count=1, patient_id="PAT-B", patient_name="Smith^Anna", study_date="20191201",
        study_time="153000", study_description="Chest [PA]",
    ),
}  # fmt: skip
# files nobody here wrote, uploaded to Flywheel as single DICOM files
SAMPLES = ("SC_rgb_jpeg_gdcm.dcm", "MR_small_implicit.dcm", "CT_small.dcm")


def generate(tmp: Path) -> tuple[list[Path], list[Path]]:
    """(instances the agent receives by storescu, sample files uploaded one by one)."""
    a1 = SeriesSpec(**SPECS["a1"])  # type: ignore[arg-type]
    a2 = SeriesSpec(
        **{**SPECS["a1"], **SPECS["a2"], "study_uid": a1.study_uid}  # type: ignore[arg-type]
    )
    pushed: list[Path] = []
    for name, spec in (
        ("a1", a1),
        ("a2", a2),
        ("b", SeriesSpec(**SPECS["b"])),  # type: ignore[arg-type]
        ("c", SeriesSpec(**SPECS["c"])),  # type: ignore[arg-type]
    ):
        pushed += write_series(tmp / name, spec)
    samples = []
    for name in SAMPLES:
        target = tmp / "samples" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(str(get_testdata_file(name)), target)
        samples.append(target)
    samples.append(undecodable_jpeg(tmp / "samples" / "broken_jpeg.dcm"))
    return pushed, samples


def undecodable_jpeg(path: Path) -> Path:
    """A JPEG Lossless instance (own UIDs) whose compressed stream is garbage: its header
    is fine, its pixels cannot be decompressed."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(str(get_testdata_file("SC_rgb_jpeg_gdcm.dcm")))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDescription = "Broken JPEG"
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(range(256)) * 4])
    ds.save_as(path, enforce_file_format=True)
    return path


def upload_single_files(fw: Any, paths: list[Path]) -> None:
    """Single DICOM files on an acquisition, as a user's upload would leave them."""
    if "samples" not in {g.id for g in fw.groups()}:
        fw.add_group(flywheel.Group(id="samples", label="Samples"))
    project = fw.get_group("samples").add_project(label="vendors")
    subject = project.add_subject(label="s1")
    session = subject.add_session(label="ses1")
    for path in paths:
        acquisition = session.add_acquisition(label=path.stem)
        acquisition.upload_file(str(path))


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the file meta group (what must arrive unchanged)."""
    meta = pydicom.filereader.read_file_meta_info(path)
    raw = path.read_bytes()
    offset = 128 + 4 + 12 + int(meta.FileMetaInformationGroupLength)
    return raw[offset:]


def findscu(
    port: int, level: str, keys: dict[str, str], model: str = "-S", aet: str = "FINDSCU"
) -> tuple[list[pydicom.Dataset], subprocess.CompletedProcess[str], Path]:
    """Run findscu with ``-X`` (responses written as files); return them parsed."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="findscu-"))
    command = ["findscu", model, "-aet", aet, "-aec", QR_AET, "-X", "-od", str(out)]
    command += ["-k", f"QueryRetrieveLevel={level}"]
    for key, value in keys.items():
        command += ["-k", f"{key}={value}" if value else key]
    command += ["127.0.0.1", str(port)]
    done = subprocess.run(command, env=peers.PEER_ENV, capture_output=True, text=True, timeout=60)
    answers: list[pydicom.Dataset] = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    return answers, done, out


def values(answers: list[pydicom.Dataset], keyword: str) -> list[str]:
    return sorted(str(a.get(keyword, "")) for a in answers)


def pynetdicom_find(
    port: int, requests: list[pydicom.Dataset], aet: str = "FINDSCU", patient_root: bool = False
) -> list[list[tuple[int, pydicom.Dataset | None]]]:
    """Several C-FINDs on ONE association (so a refusal that dropped it would show):
    per request, every (status, identifier) answered."""
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
    )

    model = (
        PatientRootQueryRetrieveInformationModelFind
        if patient_root
        else StudyRootQueryRetrieveInformationModelFind
    )
    ae = AE(ae_title=aet)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title=QR_AET)
    assert assoc.is_established, "association refused"
    results = []
    try:
        for request in requests:
            answers = []
            for status, identifier in assoc.send_c_find(request, model):
                assert status is not None, "no answer: the association was dropped"
                answers.append((int(status.Status), identifier))
            results.append(answers)
        assert assoc.is_established
    finally:
        assoc.release()
    return results
