"""dicom-send against dcmtk's storescp: every file arrives tagged, otherwise unchanged."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from fwmapping import SentTag, is_sent_by_flywheel
from pydicom.data import get_testdata_file
from pynetdicom.sop_class import _STORAGE_CLASSES  # type: ignore[attr-defined]

from gears import runtime
from tests.integration.dicom_send_helpers import received, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.polling import wait_until

pytestmark = pytest.mark.peers


def _zip(paths: list[Path], dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in paths:
            zf.write(path, f"series/{path.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


def _same_elements(original: pydicom.Dataset, sent: pydicom.Dataset) -> None:
    """Every element of the original arrives with identical bytes; only the tag is added."""
    for element in original:
        if element.tag == 0xFFFCFFFC:  # trailing padding is never transmitted
            continue
        assert sent[element.tag].value == element.value, element.tag
    added = [e for e in sent if e.tag not in original]
    assert len(added) == 2 and all(e.tag.group == 0x0021 for e in added)
    assert is_sent_by_flywheel(sent, SentTag())


def test_zip_is_sent_whole_tagged_and_unchanged(tmp_path: Path) -> None:
    peers.require("storescp")
    series = write_series(tmp_path / "src", SeriesSpec(count=12))
    archive = _zip(series, tmp_path / "series.dicom.zip", {"notes.txt": b"not DICOM"})
    before = archive.read_bytes()
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 0
    assert rows == [
        {
            "Acquisition ID": "",
            "FW Path": "series.dicom.zip",
            "Filename": "series.dicom.zip",
            "Images in Series": "12",
            "Images Sent": "12",
            "Status": "Complete",
        }
    ]
    got = received(tmp_path / "out")
    assert len(got) == 12
    for path in series:
        original = pydicom.dcmread(path)
        _same_elements(original, got[str(original.SOPInstanceUID)])
    assert archive.read_bytes() == before  # the input is never modified
    assert list((tmp_path / "gear" / "work").iterdir()) == []  # nothing left behind


def test_single_file_and_tar_inputs(tmp_path: Path) -> None:
    peers.require("storescp")
    series = write_series(tmp_path / "src", SeriesSpec(count=3))
    tar_path = tmp_path / "series.tar"
    with tarfile.open(tar_path, "w") as tf:
        for path in series:
            tf.add(path, path.name)
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "g1", port, files={"file": (series[0], {})})
        assert (code, rows[0]["Images Sent"], rows[0]["Status"]) == (0, "1", "Complete")
        code, rows = run_gear(tmp_path / "g2", port, files={"file": (tar_path, {})})
        assert (code, rows[0]["Images Sent"], rows[0]["Status"]) == (0, "3", "Complete")
    assert len(received(tmp_path / "out")) == 3


def test_archive_without_dicom_fails_clearly(tmp_path: Path, caplog) -> None:
    peers.require("storescp")
    archive = _zip([], tmp_path / "docs.zip", {"a.txt": b"x", "b.pdf": b"%PDF"})
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 1
    assert (rows[0]["Images in Series"], rows[0]["Images Sent"], rows[0]["Status"]) == (
        "0",
        "0",
        "Failed",
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_unsafe_archive_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    peers.require("storescp")
    [one] = write_series(tmp_path / "src", SeriesSpec(count=1))
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(one, "ok.dcm")
        zf.write(one, "../../escaped.dcm")
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 1 and rows[0]["Status"] == "Failed"
    assert (
        not (tmp_path / "escaped.dcm").exists() and not (tmp_path / "gear" / "escaped.dcm").exists()
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_nested_archives_beyond_the_inputs_allowance_are_refused_fast(tmp_path: Path) -> None:
    """A ~600 KB input holding 30 inner zips of 60 MB each (1.8 GB): they share the input's
    one allowance, so the gear refuses the inner zips past it quickly, sends the DICOM it
    holds, writes the report (each refused zip one image not sent) and leaves no work."""
    peers.require("storescp")
    [one] = write_series(tmp_path / "src", SeriesSpec(count=1))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"x" * (60 * 1024 * 1024))
    inner = buffer.getvalue()
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(one, "ok.dcm")
        for number in range(30):
            zf.writestr(f"part{number:02d}.zip", inner)
    started = time.monotonic()
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    took = time.monotonic() - started
    allowance = archive.stat().st_size * 200 + 64 * 1024 * 1024
    refused = 30 - allowance // (60 * 1024 * 1024)
    assert code == runtime.EXIT_FAILED
    assert [(r["Images in Series"], r["Images Sent"]) for r in rows] == [(str(1 + refused), "1")]
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert list((tmp_path / "gear" / "work").iterdir()) == []
    assert took < 60, f"{took:.0f} s"


COMPRESSED = [
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_RLE.dcm",  # RLE Lossless
    "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
]


def _samples(tmp_path: Path) -> list[Path]:
    found = [get_testdata_file(name) for name in [*COMPRESSED, "CT_small.dcm"]]
    assert all(found), "pydicom's bundled samples are missing"
    return [Path(str(path)) for path in found]


def test_compressed_syntaxes_are_sent_as_they_are(tmp_path: Path) -> None:
    peers.require("storescp")
    samples = _samples(tmp_path)
    archive = _zip(samples, tmp_path / "compressed.zip")
    with storescp(tmp_path / "out", ("+xa",)) as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 0 and rows[0]["Images Sent"] == str(len(samples))
    got = received(tmp_path / "out")
    for path in samples:
        original = pydicom.dcmread(path)
        sent = got[str(original.SOPInstanceUID)]
        assert sent.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        _same_elements(original, sent)


def test_peer_accepting_only_uncompressed_gets_every_file_decompressed(tmp_path: Path) -> None:
    """storescp by default accepts only uncompressed syntaxes: each compressed file goes
    through the uncompressed fallback context, decoded here (pylibjpeg, openjpeg, CharLS),
    with the same SOP Instance UID and the same pixels."""
    peers.require("storescp")
    samples = _samples(tmp_path)
    archive = _zip(samples, tmp_path / "compressed.zip")
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    got = received(tmp_path / "out")
    assert code == 0
    assert (rows[0]["Images in Series"], rows[0]["Images Sent"], rows[0]["Status"]) == (
        "6",
        "6",
        "Complete",
    )
    originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in samples}
    assert sorted(got) == sorted(originals)
    for uid, ds in got.items():
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert is_sent_by_flywheel(ds, SentTag())
        assert (ds.pixel_array == originals[uid].pixel_array).all()


def test_more_than_128_sop_classes(tmp_path: Path) -> None:
    peers.require("storescp")
    classes = sorted(set(_STORAGE_CLASSES.values()))[:130]
    paths: list[Path] = []
    for n, sop_class in enumerate(classes):
        paths += write_series(
            tmp_path / "src", SeriesSpec(count=1, sop_class_uid=sop_class, series_number=n)
        )
    archive = _zip(paths, tmp_path / "many.zip")
    with storescp(tmp_path / "out", ("-pm",)) as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 0 and rows[0]["Images Sent"] == "130"
    assert {str(ds.SOPClassUID) for ds in received(tmp_path / "out").values()} == set(classes)


def test_unreachable_peer_is_one_clear_message(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=2))
    archive = _zip(series, tmp_path / "s.zip")
    port = peers.free_port()  # nothing listens there
    code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    assert code == 1
    assert rows[0]["Images in Series"] == "2" and rows[0]["Status"] == "Failed"
    log = capfd.readouterr()
    text = log.out + log.err
    message = (
        f"cannot connect to STORESCP@127.0.0.1:{port}: Connection refused "
        "(check destination, port and firewall)"
    )
    assert f"ERROR    ]  {message}" in text
    assert "aborted" not in text and "Traceback" not in text


def test_peer_stopped_mid_send_is_incomplete(tmp_path: Path) -> None:
    peers.require("storescp")
    series = write_series(tmp_path / "src", SeriesSpec(count=400))
    archive = _zip(series, tmp_path / "big.zip")
    out = tmp_path / "out"
    port = peers.free_port()
    proc = peers.start_storescp(out, port)
    result: dict[str, object] = {}

    def send() -> None:
        result["code"], result["rows"] = run_gear(
            tmp_path / "gear", port, files={"file": (archive, {})}
        )

    thread = threading.Thread(target=send)
    thread.start()
    wait_until(lambda: len(list(out.iterdir())) >= 40, timeout=30, every=0.005)
    proc.kill()
    proc.wait()
    thread.join(60)
    arrived = len([p for p in out.iterdir() if p.is_file()])
    rows = result["rows"]
    assert result["code"] == 1
    [row] = rows  # type: ignore[misc]
    assert row["Status"] == "Incomplete" and row["Images in Series"] == "400"
    sent = int(row["Images Sent"])
    assert arrived >= 40 and sent < 400  # storescp was killed with its 40th file on disk,
    assert sent <= arrived <= sent + 1  # which it may not have confirmed yet
