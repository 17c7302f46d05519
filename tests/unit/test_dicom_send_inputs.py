"""Archives are opened safely (one nested level); each file is read once and tagged;
non-DICOM is ignored; the input is never modified."""

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
from gears.dicom_send.tagging import prepare
from tests.support.dicomgen import SeriesSpec, write_series


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_nothing_outside(root: Path, allowed: Path, archive: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path != archive:
            assert allowed in path.parents, f"{path} written outside {allowed}"


def _members(path: Path, work: Path) -> list[inputs.Member]:
    return list(inputs.members(path, work))


def _is_dicom(member: inputs.Member) -> bool:
    source = member.data if member.data is not None else member.path
    assert source is not None
    return prepare(source, member.name, SentTag()) is not None


def test_zip_members_are_read_one_by_one_without_their_names(tmp_path: Path) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=3))
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, f"a/b/{path.name}")
        zf.writestr("notes.txt", "not dicom")
    out = _members(archive, tmp_path / "work" / "x")
    assert [m.name for m in out] == [f"a/b/{p.name}" for p in series] + ["notes.txt"]
    assert all(m.data is not None and m.path is None and m.error is None for m in out)
    assert sum(_is_dicom(m) for m in out) == 3


def test_large_members_go_to_numbered_files_inside_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "IN_MEMORY", 10)
    series = write_series(tmp_path / "src", SeriesSpec(count=2))
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, f"x/{path.name}")
    out = _members(archive, tmp_path / "work")
    assert [m.path.name for m in out if m.path] == ["000000", "000001"]
    assert all(m.path and m.path.parent == (tmp_path / "work").resolve() for m in out)


def test_an_archive_inside_is_opened_one_level_deep(tmp_path: Path) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=3))
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(series[1], "one.dcm")
        deeper = io.BytesIO()
        with zipfile.ZipFile(deeper, "w") as dz:
            dz.write(series[2], "two.dcm")
        zf.writestr("deeper.zip", deeper.getvalue())
    tar_inner = io.BytesIO()
    with tarfile.open(fileobj=tar_inner, mode="w:gz") as tf:
        tf.add(series[2], "three.dcm")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(series[0], "zero.dcm")
        zf.write(inner, "nested/inner.zip")
        zf.writestr("t.tgz", tar_inner.getvalue())
    out = _members(outer, tmp_path / "work")
    assert [(m.name, m.error is None) for m in out] == [
        ("zero.dcm", True),
        ("nested/inner.zip/one.dcm", True),
        ("nested/inner.zip/deeper.zip", False),
        ("t.tgz/three.dcm", True),
    ]
    assert "nested more than one level" in (out[2].error or "")
    assert sum(_is_dicom(m) for m in out if m.error is None) == 3
    assert not any((tmp_path / "work").iterdir())  # nested archives are cleaned up


def test_an_unsafe_archive_inside_is_refused_alone(tmp_path: Path) -> None:
    [one] = write_series(tmp_path / "src", SeriesSpec(count=1))
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.write(one, "../../escape.dcm")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(one, "ok.dcm")
        zf.writestr("evil.zip", evil.getvalue())
    out = _members(outer, tmp_path / "work")
    assert [m.name for m in out] == ["ok.dcm", "evil.zip"]
    assert out[1].error and "refused" in out[1].error and ".." in out[1].error
    assert not list(tmp_path.parent.rglob("escape.dcm"))
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_tar_gz_is_unpacked(tmp_path: Path) -> None:
    series = write_series(tmp_path / "src", SeriesSpec(count=2))
    archive = tmp_path / "in.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for path in series:
            tf.add(path, f"series/{path.name}")
    out = _members(archive, tmp_path / "work")
    assert [m.name for m in out] == [f"series/{p.name}" for p in series]


@pytest.mark.parametrize("member", ["../escape.dcm", "/abs/escape.dcm", "a/../../escape.dcm"])
def test_zip_with_escaping_member_is_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.dcm", b"x")
        zf.writestr(zipfile.ZipInfo(member), b"payload")
    work = tmp_path / "work" / "dest"
    with pytest.raises(inputs.ArchiveError, match="refused"):
        _members(archive, work)
    assert not (tmp_path / "escape.dcm").exists() and not Path("/abs/escape.dcm").exists()
    _assert_nothing_outside(tmp_path, tmp_path / "work", archive)


def test_zip_with_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(inputs.ArchiveError, match="link"):
        _members(archive, tmp_path / "work")


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
    with pytest.raises(inputs.ArchiveError, match="refused"):
        _members(archive, tmp_path / "work" / "dest")
    assert not (tmp_path / "escape.dcm").exists()
    _assert_nothing_outside(tmp_path, tmp_path / "work", archive)


def test_zip_bomb_is_refused_without_filling_the_disk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "SLACK_BYTES", 0)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (20 * 1024 * 1024))  # ~20 KB compressed, 1000x
    with pytest.raises(inputs.ArchiveError, match="far beyond"):
        _members(archive, tmp_path / "work")
    assert not (tmp_path / "work").exists()  # nothing of a refused archive is written


def test_lying_zip_header_is_caught_while_copying(tmp_path: Path) -> None:
    """Declared sizes can lie; the byte budget while copying catches it."""
    source = io.BytesIO(b"\0" * (3 * inputs.CHUNK))
    with pytest.raises(inputs.UnsafeArchiveError):
        inputs._copy_limited(source, tmp_path / "out", [inputs.CHUNK], "zeros")


def test_single_dicom_file_is_used_in_place(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, SeriesSpec(count=1))
    [member] = _members(path, tmp_path / "work")
    assert member.path == path and member.data is None and member.error is None
    assert not (tmp_path / "work").exists()


def _written(item, dest: Path) -> Path:  # type: ignore[no-untyped-def]
    assert item.dataset is not None
    item.dataset.save_as(dest, enforce_file_format=True)
    return dest


def test_tagged_copy_leaves_input_untouched_and_keeps_every_element(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "MR_small_implicit.dcm"):
        source = Path(get_testdata_file(name))
        before = _digest(source)
        tagged = prepare(source, name, SentTag())
        assert tagged is not None
        assert _digest(source) == before
        original = pydicom.dcmread(source)
        copy = pydicom.dcmread(_written(tagged, tmp_path / name))
        assert is_sent_by_flywheel(copy, SentTag()) and not is_sent_by_flywheel(original, SentTag())
        assert tagged.transfer_syntax == original.file_meta.TransferSyntaxUID
        added = [e for e in copy if e.tag not in original]
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in (e.value for e in added)]
        assert values == ["Flywheel", "DICOM send"]
        assert all(e.tag.group == 0x0021 for e in added)
        for element in original:
            assert copy[element.tag].value == element.value, (name, element.tag)


def test_large_files_are_tagged_to_disk(tmp_path: Path, monkeypatch) -> None:
    from gears.dicom_send import tagging

    monkeypatch.setattr(tagging, "IN_MEMORY", 10)
    source = Path(get_testdata_file("CT_small.dcm"))
    item = prepare(source, "CT_small.dcm", SentTag(), tmp_path / "spill" / "1.dcm")
    assert item is not None and item.dataset is None and item.path == tmp_path / "spill" / "1.dcm"
    assert is_sent_by_flywheel(pydicom.dcmread(item.path), SentTag())
    item.release()
    assert not item.path.exists()


def test_existing_identical_tag_is_not_duplicated(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))
    once = _written(prepare(source, "a", SentTag()), tmp_path / "once.dcm")
    twice = _written(prepare(once, "b", SentTag()), tmp_path / "twice.dcm")
    values = [str(e.value) for e in pydicom.dcmread(twice).group_dataset(0x0021)]
    assert values.count("DICOM send") == 1 and values.count("Flywheel") == 1
    other = _written(prepare(once, "c", SentTag(0x0023, "ACME", "sent")), tmp_path / "o.dcm")
    ds = pydicom.dcmread(other)
    assert is_sent_by_flywheel(ds, SentTag()) and is_sent_by_flywheel(
        ds, SentTag(0x0023, "ACME", "sent")
    )


def test_dicomdir_and_text_are_not_dicom_to_send(tmp_path: Path) -> None:
    dicomdir = get_testdata_file("DICOMDIR")
    assert dicomdir is not None and prepare(Path(dicomdir), "DICOMDIR", SentTag()) is None
    text = tmp_path / "a.txt"
    text.write_text("hello")
    assert prepare(text, "a.txt", SentTag()) is None
    assert prepare(b"PK\x03\x04 not really", "x", SentTag()) is None


def _inner_zip(member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", member)
    return buffer.getvalue()


def test_nested_archives_share_the_inputs_one_size_allowance(tmp_path: Path) -> None:
    """Each inner zip is small and fine alone, but together they expand far beyond what
    the input may: the ones past the input's allowance are refused fast, each counted."""
    size = 20 * 1024 * 1024
    inner = _inner_zip(b"x" * size)  # ~20 KB each
    count = 10
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        for number in range(count):
            zf.writestr(f"part{number}.zip", inner)
    allowance = outer.stat().st_size * inputs.MAX_RATIO + inputs.SLACK_BYTES
    assert count * size > allowance  # the premise: together they are too much
    extracted = 0
    out = []
    for member in inputs.members(outer, tmp_path / "work"):
        if member.path is not None:
            extracted += member.path.stat().st_size
        out.append(member)
        member.discard()
    refused = [m for m in out if m.error]
    assert len(out) == count
    assert extracted <= allowance
    assert len(refused) == count - allowance // size
    assert all("allowance" in (m.error or "") for m in refused)
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_a_big_run_of_zeros_is_a_plain_member_not_an_archive(tmp_path: Path) -> None:
    """tarfile.is_tarfile says True for zeros; the byte-signature rule (ustar at 257) is
    used whatever the member's size, so a big member is judged like a small one."""
    zeros = b"\0" * (20 * 1024 * 1024)
    assert len(zeros) > inputs.IN_MEMORY and tarfile.is_tarfile(io.BytesIO(zeros))
    top = tmp_path / "top.zip"
    with zipfile.ZipFile(top, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", zeros)
        zf.writestr("inner.zip", _inner_zip(zeros))
    out = _members(top, tmp_path / "work")
    assert [(m.name, m.error) for m in out] == [
        ("zeros.bin", None),
        ("inner.zip/big.bin", None),
    ]
    assert out[0].path is not None and out[0].path.stat().st_size == len(zeros)
