"""The receiver's File Meta encoder writes exactly what pydicom's own writer writes for the
same meta, and the header parse reads what other toolkits send."""

from __future__ import annotations

import zlib
from io import BytesIO

import pytest
from fwagent.dicomfile import IMPLEMENTATION_VERSION, encode_file_meta, parse_header
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)


def pydicom_meta(sop_class: str, sop_instance: str, ts: str, source_ae: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae.strip():
        meta.SourceApplicationEntityTitle = source_ae.strip()
    fp = DicomBytesIO()
    write_file_meta_info(fp, meta, enforce_standard=True)  # adds version and group length
    return b"\x00" * 128 + b"DICM" + fp.getvalue()


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "ts", "source_ae"),
    [
        # odd-length UIDs are padded with NUL, even ones are not
        ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5", ExplicitVRLittleEndian, "MODALITY"),
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.44", ImplicitVRLittleEndian, "CT1"),
        ("1.2.840.10008.5.1.4.1.1.7", "2.25." + "9" * 59, ExplicitVRBigEndian, "  PADDED  "),
        ("1.3.6.1.4.1.9590.100.1.2.1", "1.2.3", DeflatedExplicitVRLittleEndian, ""),  # private
    ],
)
def test_file_meta_equals_pydicoms_writer(
    sop_class: str, sop_instance: str, ts: str, source_ae: str
) -> None:
    ours = encode_file_meta(sop_class, sop_instance, ts, source_ae)
    assert ours == pydicom_meta(sop_class, sop_instance, ts, source_ae)
    meta = dcmread(BytesIO(ours + _dataset(ts)), force=False).file_meta
    assert (meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID) == (sop_instance, ts)


def _dataset(ts: str) -> bytes:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.SeriesDescription = "T1 axial"
    ds.add_new(0x7FE00010, "OW", b"\x00\x01" * 8)
    fp = DicomBytesIO()
    fp.is_little_endian = ts != ExplicitVRBigEndian
    fp.is_implicit_VR = ts == ImplicitVRLittleEndian
    write_dataset(fp, ds)
    raw = fp.getvalue()
    if ts == DeflatedExplicitVRLittleEndian:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        raw = compressor.compress(raw) + compressor.flush()
    return raw


@pytest.mark.parametrize(
    "ts",
    [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    ],
)
def test_header_stops_before_pixel_data(ts: str) -> None:
    header = parse_header(_dataset(ts), ts)
    assert str(header.PatientName) == "Doe^Jane"
    assert header.SeriesDescription == "T1 axial"
    assert "PixelData" not in header
