"""dicom-send with files nobody here wrote, mixed into one series, to dcmtk's storescp.

One crafted file of each kind other toolkits write (big endian, deflated, implicit VR, File
Meta saying Explicit VR over an Implicit VR body, odd character sets, a private sequence
read as UN), plus files that cannot be sent (cut short, no SOP Instance UID): the rest of
the series goes out, each bad file is named once in the log, the report says what was
not sent, and every element of every sent file equals the input's.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pydicom
import pytest
from fwmapping import SentTag, is_sent_by_flywheel
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.integration.dicom_send_helpers import received, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.oddfiles import KINDS

pytestmark = pytest.mark.peers

STORESCP_ANY = ("+xa", "+B")  # accept every syntax, write exactly what arrives


def same_elements(original: Dataset, sent: Dataset, where: str = "") -> None:
    """Every element of ``original`` is in ``sent`` with the same VR-independent value,
    sequences item by item."""
    for element in original:
        if element.tag == 0xFFFCFFFC:  # trailing padding is never transmitted
            continue
        assert element.tag in sent, f"{where}{element.tag} missing"
        other = sent[element.tag]
        if element.VR == "SQ":
            assert other.VR == "SQ" and len(other.value) == len(element.value), element.tag
            for index, (a, b) in enumerate(zip(element.value, other.value, strict=True)):
                same_elements(a, b, f"{where}{element.tag}[{index}] ")
        else:
            assert other.value == element.value, f"{where}{element.tag}"


def only_the_tag_added(original: Dataset, sent: Dataset) -> None:
    same_elements(original, sent)
    added = sorted(int(e.tag) for e in sent if e.tag not in original)
    assert added == [0x00210010, 0x00211000]
    assert is_sent_by_flywheel(sent, SentTag())


def test_odd_files_mixed_into_a_series(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    peers.require("storescp")
    spec = SeriesSpec(count=len(KINDS) + 4, rows=32, cols=32)
    plain = write_series(tmp_path / "plain", SeriesSpec(**{**spec.__dict__, "count": 4}))
    odd = {
        kind: make(spec, 4 + n, tmp_path / "odd" / f"{kind}.dcm")
        for n, (kind, make) in enumerate(KINDS.items())
    }
    cut = tmp_path / "bad" / "cut-short.dcm"
    cut.parent.mkdir()
    cut.write_bytes(plain[0].read_bytes()[:-300])
    no_uid = tmp_path / "bad" / "no-uid.dcm"
    ds = pydicom.dcmread(plain[1])
    del ds.SOPInstanceUID
    ds.save_as(no_uid)
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in [*plain, *odd.values(), cut, no_uid]:
            zf.write(path, f"{path.parent.name}/{path.name}")
        zf.writestr("README.txt", "not DICOM")

    with storescp(tmp_path / "out", STORESCP_ANY) as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})

    total = len(plain) + len(odd) + 2
    assert code == 1  # not everything was sent
    assert [(r["Images in Series"], r["Images Sent"], r["Status"]) for r in rows] == [
        (str(total), str(total - 2), "Incomplete")
    ]
    got = received(tmp_path / "out")
    assert len(got) == total - 2
    for path in plain:
        original = pydicom.dcmread(path)
        only_the_tag_added(original, got[str(original.SOPInstanceUID)])
    for kind, path in odd.items():
        original = pydicom.dcmread(path)
        sent = got[str(original.SOPInstanceUID)]
        only_the_tag_added(original, sent)
        syntax = sent.file_meta.TransferSyntaxUID
        if kind == "meta-explicit-body-implicit":
            assert syntax == ImplicitVRLittleEndian  # sent as what it really is
        else:
            assert syntax == original.file_meta.TransferSyntaxUID, kind
    log = capfd.readouterr()
    text = log.out + log.err
    assert "Traceback" not in text
    assert text.count("bad/cut-short.dcm: not sent") == 1
    assert "truncated: element (7FE0,0010)" in text
    assert text.count("bad/no-uid.dcm: not sent") == 1
    assert "odd/meta-explicit-body-implicit.dcm: File Meta says Explicit VR Little Endian" in text


def test_private_sequence_arrives_byte_for_byte(tmp_path: Path) -> None:
    """The vendor's private sequence (unknown to every dictionary, so UN) is not re-encoded."""
    peers.require("storescp")
    path = KINDS["private-sequence-un"](SeriesSpec(), 0, tmp_path / "p.dcm")
    with storescp(tmp_path / "out", STORESCP_ANY) as port:
        code, _ = run_gear(tmp_path / "gear", port, files={"file": (path, {})})
    assert code == 0
    [sent] = received(tmp_path / "out").values()
    original = pydicom.dcmread(path)
    for tag in (0x00291010, 0x00291011):
        assert original[tag].VR == "UN" and sent[tag].VR == "UN"
        assert sent[tag].value == original[tag].value


def test_nested_archives_one_level_sent_deeper_counted(tmp_path: Path) -> None:
    peers.require("storescp")
    series = write_series(tmp_path / "src", SeriesSpec(count=6))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for path in series[1:3]:
            zf.write(path, path.name)
    inner_tar = io.BytesIO()
    with tarfile.open(fileobj=inner_tar, mode="w:gz") as tf:
        for path in series[3:5]:
            tf.add(path, path.name)
    deeper = io.BytesIO()
    with zipfile.ZipFile(deeper, "w") as zf:
        level2 = io.BytesIO()
        with zipfile.ZipFile(level2, "w") as z2:
            z2.write(series[5], series[5].name)
        zf.writestr("level2.zip", level2.getvalue())
    one_level = tmp_path / "one-level.zip"
    with zipfile.ZipFile(one_level, "w") as zf:
        zf.write(series[0], series[0].name)
        zf.writestr("more/inner.zip", inner.getvalue())
        zf.writestr("more/inner.tgz", inner_tar.getvalue())
    too_deep = tmp_path / "too-deep.zip"
    with zipfile.ZipFile(too_deep, "w") as zf:
        zf.writestr("deeper.zip", deeper.getvalue())

    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "g1", port, files={"file": (one_level, {})})
        assert (code, rows[0]["Images in Series"], rows[0]["Images Sent"]) == (0, "5", "5")
        code, rows = run_gear(tmp_path / "g2", port, files={"file": (too_deep, {})})
        # never silently "Complete": the archive two levels down is one file not sent
        assert code == 1
        assert (rows[0]["Images in Series"], rows[0]["Images Sent"], rows[0]["Status"]) == (
            "1",
            "0",
            "Failed",
        )
    assert sorted(received(tmp_path / "out")) == sorted(
        str(pydicom.dcmread(p).SOPInstanceUID) for p in series[:5]
    )


def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    [one] = write_series(tmp_path / "src", SeriesSpec(count=1))
    port = peers.free_port()
    # the gear's own checks
    assert _run(tmp_path / "a", one, port=port, group="0x0020") == 2  # not a private group
    assert _run(tmp_path / "b", one, port=port, tls_enabled=True) == 2  # no key/cert
    # the manifest's schema, checked by the runtime as Flywheel does
    assert _run(tmp_path / "c", one, port=port, called_ae="X" * 17) == 2
    assert _run(tmp_path / "d", one, port="not a number") == 2
    for name in "abcd":
        assert not list((tmp_path / name / "output").iterdir())  # nothing was tried


def _run(root: Path, one: Path, **config: object) -> int:
    from gears.runtime import main as fwgear
    from tests.support.gear_root import make_gear_root

    opts = {"destination": "127.0.0.1", "called_ae": "STORESCP", **config}
    make_gear_root(
        root,
        config=opts,
        destination={"id": "000000000000000000000000", "type": "acquisition"},
        files={"file": (one, {})},
    )
    return fwgear(["run", "dicom-send", "--root", str(root)])


def test_each_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pydicom read per file decides it is DICOM and gives what is sent (issue 12.4)."""
    peers.require("storescp")
    import fwmapping.header

    series = write_series(tmp_path / "src", SeriesSpec(count=7))
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, path.name)
    reads: list[object] = []
    real = fwmapping.header.pydicom.dcmread

    def counting(*args: object, **kwargs: object) -> object:
        reads.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fwmapping.header.pydicom, "dcmread", counting)
    with storescp(tmp_path / "out") as port:
        code, rows = run_gear(tmp_path / "gear", port, files={"file": (archive, {})})
    monkeypatch.undo()
    assert (code, rows[0]["Images Sent"]) == (0, "7")
    assert len(reads) == 7
