"""fwagent.chunked: reading a spooled file without loading it (issue 16.4): where its
dataset starts, its header up to the pixel data (large values left on disk until asked
for), File Meta replaced with the dataset copied byte for byte, deflate inflated to disk,
partial files of dead associations swept."""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from pathlib import Path

import pydicom
from fwagent import chunked
from fwagent.dicomfile import encode_file_meta
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from tests.support.dicomgen import SeriesSpec, make_instance


def _saved(tmp_path: Path, **private: bytes) -> Path:
    ds = make_instance(SeriesSpec(rows=32, cols=32), 0)
    for tag, value in private.items():
        ds.add_new(int(tag, 16), "OB", value)
    path = tmp_path / "in.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_offset_and_header_from_the_file_large_values_deferred(tmp_path: Path) -> None:
    blob = os.urandom(200_000)
    path = _saved(tmp_path, **{"00291010": blob})
    with path.open("rb") as fh:
        offset = chunked.dataset_offset(fh)
        fh.seek(offset)
        first_tag = fh.read(4)
    assert first_tag == b"\x08\x00\x08\x00"  # (0008,0008) ImageType: the first element
    header = chunked.read_header(path, offset, ExplicitVRLittleEndian)
    assert "PixelData" not in header
    assert header._dict[0x00291010].value is None  # left on disk while not asked for
    assert header[0x00291010].value == blob  # read from the file when asked for
    assert header.SeriesInstanceUID == pydicom.dcmread(path).SeriesInstanceUID


def test_replaced_meta_keeps_the_dataset_bytes(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    with path.open("rb") as fh:
        offset = chunked.dataset_offset(fh)
        dataset = fh.read()
    meta = encode_file_meta("1.2.840.10008.5.1.4.1.1.4", "9.8.7", ExplicitVRLittleEndian, "CT1")
    out = tmp_path / "out.dcm"
    chunked.replace_meta(path, offset, meta, out)
    with out.open("rb") as fh:
        assert chunked.dataset_offset(fh) == len(meta)
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(dataset).digest()
    with out.open("rb") as fh:
        assert chunked.read_meta(fh) == (len(meta), "1.2.840.10008.5.1.4.1.1.4", "9.8.7")
    assert pydicom.dcmread(out).file_meta.SourceApplicationEntityTitle == "CT1"


def test_deflated_dataset_is_inflated_to_disk_and_a_cut_one_is_named(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    with path.open("rb") as fh:
        fh.seek(chunked.dataset_offset(fh))
        plain = fh.read()
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = packer.compress(plain) + packer.flush()
    meta = encode_file_meta("1.2.3", "1.2.3.4", DeflatedExplicitVRLittleEndian, "")
    spooled = tmp_path / "deflated.dcm"
    spooled.write_bytes(meta + deflated)
    out = tmp_path / "inflated"
    assert chunked.inflate(spooled, len(meta), out) is None
    assert out.read_bytes() == plain
    assert chunked.read_deflated_header(out).SOPInstanceUID
    spooled.write_bytes(meta + deflated[:-20])
    assert chunked.inflate(spooled, len(meta), out) == (
        "deflated dataset ends before its end-of-stream marker"
    )


def test_only_stale_partial_receive_files_are_swept(tmp_path: Path) -> None:
    stale, live, ours = tmp_path / "tmpold.dcm", tmp_path / "tmpnew.dcm", tmp_path / "x.part"
    for path in (stale, live, ours):
        path.write_bytes(b"partial")
    old = time.time() - chunked.STALE_SECONDS - 5
    os.utime(stale, (old, old))
    os.utime(ours, (old, old))
    assert chunked.sweep_stale(tmp_path) == 1
    assert not stale.exists() and live.exists() and ours.exists()


def test_receive_into_points_temporary_files_at_the_spool_and_release_restores(
    tmp_path: Path,
) -> None:
    import tempfile

    from pynetdicom import _config

    before = tempfile.tempdir
    spool_tmp = tmp_path / "spool" / "tmp"
    chunked.receive_into(spool_tmp)
    try:
        assert _config.STORE_RECV_CHUNKED_DATASET is True
        with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:  # as pynetdicom makes them
            assert Path(fh.name).parent == spool_tmp
    finally:
        chunked.release(spool_tmp)
    assert tempfile.tempdir == before
