"""What a C-MOVE proposes to its destination, and when an instance is decompressed."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from fwagent.qr.index import Located, Source
from fwagent.qr.retrieve import Fetcher, fit, wanted_contexts
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
)

MR = "1.2.840.10008.5.1.4.1.1.4"
SC = "1.2.840.10008.5.1.4.1.1.7"
SRC = Source("f", 1, "a", "x.dicom.zip")


def located(sop_class: str, ts: str, n: int = 1) -> list[Located]:
    return [Located(f"{sop_class}.{ts}.{i}", sop_class, ts, SRC, str(i)) for i in range(n)]


def test_stored_syntax_alone_then_an_uncompressed_fallback() -> None:
    items = [
        *located(MR, str(ImplicitVRLittleEndian), 3),
        *located(SC, str(JPEGLosslessSV1)),
        *located(SC, str(JPEGBaseline8Bit)),
    ]
    explicit, implicit = str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)
    assert wanted_contexts(items) == [
        (MR, [implicit, explicit]),
        (SC, [str(JPEGBaseline8Bit)]),
        (SC, [explicit, implicit]),  # one fallback per SOP class
        (SC, [str(JPEGLosslessSV1)]),
    ]


def test_at_most_128_contexts() -> None:
    items = [x for n in range(200) for x in located(f"1.2.3.{n}", str(ExplicitVRLittleEndian))]
    assert len(wanted_contexts(items)) == 128


def test_fit_keeps_what_is_accepted_and_decompresses_the_rest() -> None:
    path = str(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    ds = pydicom.dcmread(path)
    same = fit(ds, lambda sop, ts: ts == str(JPEGLosslessSV1))
    assert same.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    out = fit(pydicom.dcmread(path), lambda sop, ts: False)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.SOPInstanceUID == ds.SOPInstanceUID  # the same instance, losslessly unpacked
    assert (out.pixel_array == pydicom.dcmread(path).pixel_array).all()


class _Client:
    """The one SDK call the fetcher makes: writes a real DICOM file where it is told to."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.dests: list[Path] = []

    def download_file_from_container(self, parent_id: str, name: str, dest: str) -> None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(self.data)
        self.dests.append(Path(dest))


@pytest.mark.parametrize("file_id", ["../../escaped", "/tmp/absolute-escape", "..", "a/../../b"])
def test_hostile_file_id_stays_inside_the_work_dir(tmp_path: Path, file_id: str) -> None:
    """A file id is the server's word; one that names a parent or an absolute path
    (issue 18.1) is downloaded inside the request's folder all the same."""
    sample = Path(str(get_testdata_file("CT_small.dcm")))
    ds = pydicom.dcmread(sample)
    work = tmp_path / "root" / "work"
    client = _Client(sample.read_bytes())
    item = Located(ds.SOPInstanceUID, ds.SOPClassUID, "", Source(file_id, 1, "acq", "ct.dcm"), "")
    got = list(Fetcher(client, work).datasets([item]))
    assert [(i, d.SOPInstanceUID if d else None) for i, d in got] == [(item, ds.SOPInstanceUID)]
    (dest,) = client.dests
    assert work.resolve() in dest.resolve().parents
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []  # cleaned up, none outside
    assert not Path("/tmp/absolute-escape").exists()
