"""The demo's sample studies: a mix of routing strings a real site sees every day.

Generated with pydicom (fresh UIDs each run, tiny pixels) so the demo needs no data files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass(frozen=True)
class SampleStudy:
    """One study of the demo and why it is there."""

    patient_id: str
    patient_name: str
    description: str
    why: str
    series: tuple[str, ...] = ("T1 MPRAGE", "BOLD rest")
    images: int = 3


SAMPLES = (
    SampleStudy("fw://psych/study01/s01", "Doe^John", "Baseline", "full routing string"),
    SampleStudy("fw://psych", "Roe^Jane", "Pilot", "group only: psych/Unsorted"),
    SampleStudy("psych/study01/s02", "Smith^Ann", "Follow-up", "no fw://: unknown/Unsorted"),
    SampleStudy("fw://nosuchgroup/x", "Poe^Ed", "Typo", "group missing on the site"),
    SampleStudy("fw://psych/study01 NOFW", "Lee^Bo", "Opted out", "opt-out string: not uploaded"),
)


def write_study(out_dir: Path, sample: SampleStudy) -> list[Path]:
    """Write every series of ``sample`` under out_dir; return the files."""
    study_uid = generate_uid()
    paths = []
    for number, description in enumerate(sample.series, start=1):
        series_uid = generate_uid()
        for index in range(sample.images):
            ds = Dataset()
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.PatientID, ds.PatientName = sample.patient_id, sample.patient_name
            ds.StudyDescription, ds.SeriesDescription = sample.description, description
            ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = number, index + 1, 1
            ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20261127"
            ds.StudyTime, ds.SeriesTime = "090000", f"09{number:02d}00"
            ds.AcquisitionTime = ds.SeriesTime
            ds.Modality, ds.Manufacturer, ds.OperatorsName = "MR", "GE MEDICAL SYSTEMS", "TECH^A"
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = (np.arange(64, dtype=np.uint16) + index).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            path = out_dir / series_uid / f"{ds.SOPInstanceUID}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths
