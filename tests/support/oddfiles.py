"""DICOM files as other toolkits and vendors write them, not as this project would.

Each maker writes one instance of a series (fresh SOP Instance UID) to ``dest`` and returns
the path. The kinds: Explicit VR Big Endian, Deflated Explicit VR Little Endian, Implicit
VR Little Endian, File Meta saying Explicit VR LE over an Implicit VR body, odd character
sets (ISO 2022 Japanese, Latin-1, GB18030), and a private sequence read back as UN.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tests.support.dicomgen import SeriesSpec, make_instance


def _instance(spec: SeriesSpec, index: int) -> Dataset:
    ds = make_instance(spec, index)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _save(ds: Dataset, dest: Path, syntax: str) -> Path:
    ds.file_meta.TransferSyntaxUID = syntax
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


def big_endian(spec: SeriesSpec, index: int, dest: Path) -> Path:
    return _save(_instance(spec, index), dest, ExplicitVRBigEndian)


def deflated(spec: SeriesSpec, index: int, dest: Path) -> Path:
    return _save(_instance(spec, index), dest, DeflatedExplicitVRLittleEndian)


def implicit_vr(spec: SeriesSpec, index: int, dest: Path) -> Path:
    return _save(_instance(spec, index), dest, ImplicitVRLittleEndian)


def meta_says_explicit_body_implicit(spec: SeriesSpec, index: int, dest: Path) -> Path:
    """File Meta: Explicit VR Little Endian; the data set itself: Implicit VR Little Endian
    (written this way by some older PACS exports)."""
    ds = _instance(spec, index)
    ds.add_new((0x0019, 0x0010), "LO", "ACME 1.0")
    ds.add_new((0x0019, 0x1001), "DS", "12.5")
    meta = ds.file_meta
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian = True
    body.is_implicit_VR = True
    write_dataset(body, ds)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(head.getvalue() + body.getvalue())
    return dest


def japanese(spec: SeriesSpec, index: int, dest: Path) -> Path:
    """ISO 2022 with Japanese (JIS X 0208) in names and descriptions."""
    ds = _instance(spec, index)
    ds.SpecificCharacterSet = ["ISO 2022 IR 13", "ISO 2022 IR 87"]
    ds.PatientName = "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    ds.InstitutionName = "東京病院"
    return _save(ds, dest, ExplicitVRLittleEndian)


def latin1(spec: SeriesSpec, index: int, dest: Path) -> Path:
    ds = _instance(spec, index)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.InstitutionName = "Hôpital Européen"
    return _save(ds, dest, ImplicitVRLittleEndian)


def gb18030(spec: SeriesSpec, index: int, dest: Path) -> Path:
    ds = _instance(spec, index)
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = "王^小东"
    ds.StudyComments = "中文注释"
    return _save(ds, dest, ExplicitVRLittleEndian)


def private_sequence_as_un(spec: SeriesSpec, index: int, dest: Path) -> Path:
    """A vendor's private sequence, written Implicit VR (so any reader without the vendor's
    dictionary sees it as UN), with nested private and public elements."""
    ds = _instance(spec, index)
    ds.add_new((0x0029, 0x0010), "LO", "ACME MR HEADER")
    item = Dataset()
    item.add_new((0x0029, 0x0010), "LO", "ACME MR HEADER")
    item.add_new((0x0029, 0x1001), "LO", "shim=on")
    item.add_new((0x0029, 0x1002), "OB", b"\x01\x02\x03\x04")
    item.ContentDate = "20201023"
    ds.add_new((0x0029, 0x1010), "SQ", Sequence([item]))
    ds.add_new((0x0029, 0x1011), "UN", b"\x00\x01raw-bytes\xff")
    return _save(ds, dest, ImplicitVRLittleEndian)


KINDS: dict[str, Callable[[SeriesSpec, int, Path], Path]] = {
    "big-endian": big_endian,
    "deflated": deflated,
    "implicit-vr": implicit_vr,
    "meta-explicit-body-implicit": meta_says_explicit_body_implicit,
    "iso2022-japanese": japanese,
    "latin1": latin1,
    "gb18030": gb18030,
    "private-sequence-un": private_sequence_as_un,
}
