"""Synthetic DICOM series for tests and benchmarks.

Every instance gets fresh UIDs, so series never collide across tests. Sizes are chosen
with ``rows``/``cols`` (16-bit MR pixels: 256x256 is ~132 KB per file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)


@dataclass
class SeriesSpec:
    """What to generate. Unset UIDs are generated fresh."""

    count: int = 3
    rows: int = 16
    cols: int = 16
    patient_id: str = "fw://psych/study01/s01"
    patient_name: str = "Doe^John"
    manufacturer: str = "GE MEDICAL SYSTEMS"
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "ND")
    acquisition_number: int | None = 1
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    study_description: str = "My Study"
    series_description: str = "Series 002"
    series_number: int = 2
    study_date: str = "20201023"
    study_time: str = "105624"
    acquisition_date: str = "20201023"
    acquisition_time: str = "105649"
    operators_name: str = "OP^Mike"
    sop_class_uid: str = MRImageStorage
    modality: str = "MR"
    extra: dict[str, object] = field(default_factory=dict)


def make_instance(spec: SeriesSpec, index: int) -> Dataset:
    """One instance of the series (1-based InstanceNumber = index + 1)."""
    ds = Dataset()
    ds.SOPClassUID = spec.sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.StudyDescription = spec.study_description
    ds.SeriesDescription = spec.series_description
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = index + 1
    ds.StudyDate = spec.study_date
    ds.StudyTime = spec.study_time
    ds.SeriesDate = spec.study_date
    ds.SeriesTime = spec.study_time
    ds.AcquisitionDate = spec.acquisition_date
    ds.AcquisitionTime = spec.acquisition_time
    ds.OperatorsName = spec.operators_name
    ds.Manufacturer = spec.manufacturer
    ds.Modality = spec.modality
    ds.ImageType = list(spec.image_type)
    if spec.acquisition_number is not None:
        ds.AcquisitionNumber = spec.acquisition_number
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    ds.Rows = spec.rows
    ds.Columns = spec.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    pixels = (np.arange(spec.rows * spec.cols, dtype=np.uint16) + index) % 4096
    ds.PixelData = pixels.tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def write_series(out_dir: Path, spec: SeriesSpec | None = None, **overrides: object) -> list[Path]:
    """Write ``spec.count`` instances into out_dir; return their paths in order."""
    spec = spec or SeriesSpec(**overrides)  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(spec.count):
        ds = make_instance(spec, index)
        path = out_dir / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_large_instance(path: Path, frames: int, rows: int = 512, cols: int = 512) -> Path:
    """One multi-frame 16-bit instance of ``frames`` x ``rows`` x ``cols`` pixels, written
    as it goes (never whole in memory): the header by pydicom, then the Pixel Data element
    header and the frames (a repeating 16 KiB random block, each frame stamped with its
    number, so no two frames are equal and a shifted byte changes the hash)."""
    import struct

    spec = SeriesSpec(count=1, rows=rows, cols=cols, series_description="Large multi-frame")
    ds = make_instance(spec, 0)
    del ds.PixelData
    # Multi-frame Grayscale Word Secondary Capture
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7.3")
    ds.NumberOfFrames = frames
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.save_as(path, enforce_file_format=True)
    frame_bytes = rows * cols * 2
    block = np.random.default_rng(7).integers(0, 256, 16384, dtype=np.uint8).tobytes()
    frame = (block * (frame_bytes // len(block) + 1))[:frame_bytes]
    with open(path, "ab") as fh:
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, frames * frame_bytes))
        for number in range(frames):
            fh.write(struct.pack("<I", number) + frame[4:])
    return path
