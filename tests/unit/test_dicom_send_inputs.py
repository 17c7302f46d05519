"""Archives are unpacked safely; non-DICOM is ignored; the input is never modified."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pydicom
import pytest
from fwmapping import SentTag, is_sent_by_flywheel
from pydicom.data import get_testdata_file

from gears.dicom_send import inputs
from gears.dicom_send.tagging import is_dicom, tag_copy
from tests.support.dicomgen import SeriesSpec, write_series


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_nothing_outside(root: Path, allowed: Path, archive: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path != archive:
            assert allowed in path.parents, f"{path} written outside {allowed}"


def test_zip_members_are_written_flat_inside_dest(tmp_path: Path) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=3))
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, f"a/b/{path.name}")
        zf.writestr("notes.txt", "not dicom")
    out = inputs.unpack(archive, tmp_path / "work" / "x")
    assert out.error is None
    assert len(out.files) == 4
    assert all(f.parent == tmp_path / "work" / "x" for f in out.files)
    assert sum(is_dicom(f) for f in out.files) == 3
    assert sorted(out.member_names.values())[-1] == "notes.txt"


def test_tar_gz_is_unpacked(tmp_path: Path) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=2))
    archive = tmp_path / "in.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for path in series:
            tf.add(path, f"series/{path.name}")
    out = inputs.unpack(archive, tmp_path / "work")
    assert out.error is None and len(out.files) == 2


@pytest.mark.parametrize("member", ["../escape.dcm", "/abs/escape.dcm", "a/../../escape.dcm"])
def test_zip_with_escaping_member_is_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.dcm", b"x")
        zf.writestr(zipfile.ZipInfo(member), b"payload")
    work = tmp_path / "work" / "dest"
    out = inputs.unpack(archive, work)
    assert out.files == [] and out.error and "refused" in out.error
    assert not (tmp_path / "escape.dcm").exists() and not Path("/abs/escape.dcm").exists()
    _assert_nothing_outside(tmp_path, tmp_path / "work", archive)


def test_zip_with_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    out = inputs.unpack(archive, tmp_path / "work")
    assert out.error and "link" in out.error


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "dotdot", "fifo"])
def test_tar_with_links_or_escapes_is_refused(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        data = b"payload"
        info = tarfile.TarInfo("fine.dcm")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        bad = tarfile.TarInfo({"dotdot": "../../escape.dcm"}.get(kind, "bad.dcm"))
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "fine.dcm"
        elif kind == "fifo":
            bad.type = tarfile.FIFOTYPE
        else:
            bad.size = len(data)
        tf.addfile(bad, io.BytesIO(data) if kind == "dotdot" else None)
    out = inputs.unpack(archive, tmp_path / "work" / "dest")
    assert out.files == [] and out.error and "refused" in out.error
    assert not (tmp_path / "escape.dcm").exists()
    _assert_nothing_outside(tmp_path, tmp_path / "work", archive)


def test_zip_bomb_is_refused_without_filling_the_disk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "SLACK_BYTES", 0)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (20 * 1024 * 1024))  # ~20 KB compressed, 1000x
    out = inputs.unpack(archive, tmp_path / "work")
    assert out.error and "far beyond" in out.error
    assert not (tmp_path / "work").exists()  # the refused extraction is removed whole


def test_lying_zip_header_is_caught_while_copying(tmp_path: Path) -> None:
    """Declared sizes can lie; the byte budget while copying catches it."""
    source = io.BytesIO(b"\0" * (3 * inputs.CHUNK))
    with pytest.raises(inputs.UnsafeArchiveError):
        inputs._copy_limited(source, tmp_path / "out", [inputs.CHUNK], "zeros")


def test_single_dicom_file_is_used_in_place(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, SeriesSpec(count=1))
    out = inputs.unpack(path, tmp_path / "work")
    assert out.files == [path] and out.error is None
    assert not (tmp_path / "work").exists()


def test_tagged_copy_leaves_input_untouched_and_keeps_every_element(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "MR_small_implicit.dcm"):
        source = Path(get_testdata_file(name))
        before = _digest(source)
        tagged = tag_copy(source, tmp_path / name, SentTag(), name)
        assert _digest(source) == before
        original, copy = pydicom.dcmread(source), pydicom.dcmread(tagged.path)
        assert is_sent_by_flywheel(copy, SentTag()) and not is_sent_by_flywheel(original, SentTag())
        assert tagged.transfer_syntax == original.file_meta.TransferSyntaxUID
        added = [e for e in copy if e.tag not in original]
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in (e.value for e in added)]
        assert values == ["Flywheel", "DICOM send"]
        assert all(e.tag.group == 0x0021 for e in added)
        for element in original:
            assert copy[element.tag].value == element.value, (name, element.tag)


def test_existing_identical_tag_is_not_duplicated(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))
    once = tag_copy(source, tmp_path / "once.dcm", SentTag())
    twice = tag_copy(once.path, tmp_path / "twice.dcm", SentTag())
    values = [str(e.value) for e in pydicom.dcmread(twice.path).group_dataset(0x0021)]
    assert values.count("DICOM send") == 1 and values.count("Flywheel") == 1
    other = tag_copy(once.path, tmp_path / "other.dcm", SentTag(0x0023, "ACME", "sent"))
    ds = pydicom.dcmread(other.path)
    assert is_sent_by_flywheel(ds, SentTag()) and is_sent_by_flywheel(
        ds, SentTag(0x0023, "ACME", "sent")
    )


def test_dicomdir_and_text_are_not_dicom_to_send(tmp_path: Path) -> None:
    dicomdir = get_testdata_file("DICOMDIR")
    assert dicomdir is not None and not is_dicom(Path(dicomdir))
    text = tmp_path / "a.txt"
    text.write_text("hello")
    assert not is_dicom(text)
