"""fwagent.completeness: a dataset cut short anywhere is found, a whole one never is, in
every encoding (issue 18.4). Files written by pydicom in each transfer syntax, plus
pydicom's own sample files (written by other toolkits, two of them truncated)."""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from fwagent.completeness import incomplete
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from tests.support.dicomgen import SeriesSpec, make_instance

SAMPLES = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"


def dataset_bytes(path: Path) -> tuple[bytes, str]:
    """The dataset as it would travel in a C-STORE: the file without preamble and meta."""
    with open(path, "rb") as fp:
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        return fp.read(), str(meta.TransferSyntaxUID)


def encode(ds: Dataset, syntax: str, undefined_lengths: bool = False) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = BytesIO()
    if undefined_lengths:
        for element in ds.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    read_preamble(buffer, False)
    _read_file_meta_info(buffer)
    return buffer.read()


def nested_instance() -> Dataset:
    ds = make_instance(SeriesSpec(rows=8, cols=8), 0)
    inner = Dataset()
    inner.CodeValue = "T-A0100"
    inner.CodeMeaning = "Brain"
    item = Dataset()
    item.AnatomicRegionSequence = Sequence([inner])
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    return ds


SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("undefined", [False, True])
def test_whole_datasets_pass_and_every_cut_is_found(syntax: str, undefined: bool) -> None:
    raw = encode(nested_instance(), syntax, undefined_lengths=undefined)
    assert incomplete(raw, syntax) is None
    step = 7 if syntax == DeflatedExplicitVRLittleEndian else 1
    cuts = range(1, len(raw), step)
    missed = [cut for cut in cuts if incomplete(raw[:cut], syntax) is None]
    # a cut exactly between two top-level elements leaves a whole (shorter) dataset, and a
    # few NULs after it read as padding (a big endian tag starts with one); every other cut
    # is found
    boundaries = element_boundaries(raw, syntax)
    unexplained = [
        cut
        for cut in missed
        if not any(0 <= cut - b < 8 and not raw[b:cut].strip(b"\x00") for b in boundaries)
    ]
    assert unexplained == []


def element_boundaries(raw: bytes, syntax: str) -> set[int]:
    """Offsets where a top-level element ends (a cut there leaves a shorter whole dataset),
    from pydicom re-encoding each element of the dataset it read back."""
    if syntax == DeflatedExplicitVRLittleEndian:
        return set()  # any cut of the deflate stream loses its end marker
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.filewriter import write_data_element

    ts = pydicom.uid.UID(syntax)
    ds = read_dataset(BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian)
    ends, offset = {0}, 0
    for element in ds:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = ts.is_little_endian, ts.is_implicit_VR
        write_data_element(fp, element)
        offset += len(fp.getvalue())
        ends.add(offset)
    assert offset == len(raw)
    return ends


def test_truncated_pixel_data_reports_the_element() -> None:
    raw = encode(make_instance(SeriesSpec(rows=16, cols=16), 0), ExplicitVRLittleEndian)
    reason = incomplete(raw[:-100], ExplicitVRLittleEndian)
    assert reason == "element (7FE0,0010) declares 512 bytes but only 412 follow (truncated)"


def test_encapsulated_pixel_data_needs_every_fragment_and_its_delimiter() -> None:
    ds = make_instance(SeriesSpec(rows=8, cols=8), 0)
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\x01" * 100 + b"\xff\xd9"] * 3)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    raw = encode(ds, JPEGBaseline8Bit)
    assert incomplete(raw, JPEGBaseline8Bit) is None
    assert "(7FE0,0010)" in str(incomplete(raw[:-8], JPEGBaseline8Bit))  # no delimiter
    assert "(7FE0,0010)" in str(incomplete(raw[:-60], JPEGBaseline8Bit))  # cut fragment


def test_implicit_vr_sent_as_explicit_is_walked_as_implicit() -> None:
    raw = encode(nested_instance(), ImplicitVRLittleEndian)
    assert incomplete(raw, ExplicitVRLittleEndian) is None
    assert incomplete(raw[:-3], ExplicitVRLittleEndian) is not None


def test_trailing_nul_padding_is_not_truncation() -> None:
    raw = encode(make_instance(SeriesSpec(), 0), ExplicitVRLittleEndian)
    assert incomplete(raw + b"\x00\x00", ExplicitVRLittleEndian) is None


def test_pydicom_samples_whole_ones_pass_truncated_ones_are_found() -> None:
    """Every sample pydicom reads whole passes; its two truncated samples are found."""
    checked = 0
    for path in sorted(SAMPLES.glob("*.dcm")):
        try:
            pydicom.dcmread(path)
            raw, syntax = dataset_bytes(path)
        except Exception:  # noqa: BLE001 - samples without meta or deliberately broken
            continue
        reason = incomplete(raw, syntax)
        if "truncated" in path.name:
            assert reason is not None and "truncated" in reason, path.name
        else:
            assert reason is None, (path.name, reason)
            checked += 1
    assert checked > 50


def _as_file(tmp_path: Path, raw: bytes, name: str = "received.dcm") -> tuple[Path, int]:
    """``raw`` behind a 132-byte preamble and a File Meta, as the receiver spools it."""
    from fwagent.chunked import dataset_offset
    from fwagent.dicomfile import encode_file_meta

    path = tmp_path / name
    path.write_bytes(encode_file_meta("1.2.3", "1.2.3.4", ExplicitVRLittleEndian, "AE") + raw)
    with path.open("rb") as fh:
        return path, dataset_offset(fh)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_the_file_check_agrees_with_the_bytes_check_at_every_cut(
    syntax: str, tmp_path: Path
) -> None:
    """incomplete_file (mapped file, from the dataset's offset) says what incomplete says,
    whole and cut anywhere; a deflated one is inflated to the scratch file, then removed."""
    from fwagent.completeness import incomplete_file

    raw = encode(nested_instance(), syntax, undefined_lengths=True)
    scratch = tmp_path / "scratch"
    for cut in [len(raw), *range(1, len(raw), 13)]:
        path, offset = _as_file(tmp_path, raw[:cut])
        assert incomplete_file(path, offset, syntax, scratch) == incomplete(raw[:cut], syntax)
        assert not scratch.exists()


def test_the_file_check_reads_headers_only(tmp_path: Path) -> None:
    """A 64 MiB Pixel Data is skipped by its length, not read: the check of the whole
    file and of one cut 1 byte short both come back fast and right."""
    import time

    from fwagent.completeness import incomplete_file

    ds = make_instance(SeriesSpec(rows=8, cols=8), 0)
    raw = encode(ds, ExplicitVRLittleEndian)
    head = raw[: raw.index(b"\xe0\x7f\x10\x00")]
    big = 64 << 20
    pixels = b"\xe0\x7f\x10\x00OW\x00\x00" + big.to_bytes(4, "little")
    path = tmp_path / "big.dcm"
    small, offset = _as_file(tmp_path, head + pixels)
    with small.open("rb") as src, path.open("wb") as out:
        out.write(src.read())
        out.truncate(out.tell() + big)
    started = time.perf_counter()
    assert incomplete_file(path, offset, ExplicitVRLittleEndian) is None
    with path.open("r+b") as out:
        out.truncate(path.stat().st_size - 1)
    reason = incomplete_file(path, offset, ExplicitVRLittleEndian)
    assert (
        reason == f"element (7FE0,0010) declares {big} bytes but only {big - 1} follow (truncated)"
    )
    assert time.perf_counter() - started < 1.0
