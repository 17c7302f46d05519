"""Bounded memory (issue 16.4, 18.9): a 1 GB instance streams through the agent, and a
peer announcing a PDU over our maximum is aborted before its body is read.

Peak memory is the kernel's own high-water mark of the agent process (VmHWM in
/proc/PID/status), so no short peak between two samples is missed.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import IO

import pydicom
import pytest
import yaml
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.support import agent_process, dicomgen, peers
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until

pytestmark = pytest.mark.peers

MB = 1 << 20


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def dataset_sha256(fh: IO[bytes]) -> tuple[str, int]:
    """SHA-256 and size of a PS3.10 file's dataset (everything after its File Meta), read
    sequentially (works on a zip member)."""
    head = fh.read(132)
    assert head[128:] == b"DICM", "not a PS3.10 file"
    digest = hashlib.sha256()
    while True:
        element = fh.read(8)
        if struct.unpack("<H", element[:2])[0] != 0x0002:
            break
        if element[4:6] in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            extra = fh.read(4)
            fh.read(struct.unpack("<I", extra)[0])
        else:
            fh.read(struct.unpack("<H", element[6:8])[0])
    digest.update(element)
    size = len(element)
    while chunk := fh.read(4 * MB):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _state(spool: Path, series_uid: str) -> str:
    try:
        with sqlite3.connect(spool / "state.sqlite", timeout=5) as db:
            row = db.execute(
                "SELECT state FROM series WHERE series_uid=?", (series_uid,)
            ).fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


@pytest.mark.slow
def test_one_gigabyte_instance_lands_intact_with_flat_memory(tmp_path: Path) -> None:
    peers.require("storescu")
    frames = 2048  # x 512 x 512 x 2 bytes = 1 GiB of pixel data
    source = dicomgen.write_large_instance(tmp_path / "large.dcm", frames)
    with source.open("rb") as fh:
        want = dataset_sha256(fh)
    assert want[1] > 1024 * MB
    series_uid = str(pydicom.dcmread(source, stop_before_pixels=True).SeriesInstanceUID)
    fwlite = FwliteServer(tmp_path / "fwlite").start()
    proc = None
    try:
        config, port = agent_process.write_config(tmp_path, fwlite, quiet=1.0)
        proc = agent_process.start_agent(config, port, tmp_path / "agent.log")
        sent = subprocess.run(
            peers.storescu_command(port, [source]),
            env=peers.PEER_ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        source.unlink()  # the big files do not outlive their use
        wait_until(lambda: _state(tmp_path / "spool", series_uid) == "uploaded", timeout=120)
        peak = peak_rss_mb(proc.pid)
    finally:
        if proc is not None:
            assert agent_process.stop_agent(proc) == 0
        fwlite.stop()
    stored = list((tmp_path / "fwlite" / "files").iterdir())
    assert len(stored) == 1, stored
    with zipfile.ZipFile(stored[0]) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        assert len(members) == 1, members
        with zf.open(members[0]) as member:
            got = dataset_sha256(member)
    stored[0].unlink()
    print(f"1 GiB instance: agent peak RSS {peak:.0f} MB")
    assert got == want, "the dataset in Flywheel differs from the one sent"
    assert peak < 300, f"agent peak RSS {peak:.0f} MB for a 1 GiB instance"


def test_pdu_over_our_maximum_is_aborted_unread(tmp_path: Path) -> None:
    """A peer that announces a 512 MB P-DATA-TF (and starts sending it) is aborted after the
    PDU header: the agent's memory does not grow, later associations work."""
    port = peers.free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "flywheel": {"api_key": "127.0.0.1:9:__force_insecure:KEY"},
                "spool_dir": str(tmp_path / "spool"),
                "spool_min_free_mb": 0,
                "push": {"port": port, "series_quiet_seconds": 3600},
            }
        )
    )
    proc = agent_process.start_agent(config, port, tmp_path / "agent.log")
    try:
        ae = AE(ae_title="ATTACKER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="FWAGENT")
        assert assoc.is_established
        assert assoc.acceptor.maximum_length is not None
        assert 0 < assoc.acceptor.maximum_length <= 1 * MB  # bounded, announced
        before = peak_rss_mb(proc.pid)
        assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
        raw: socket.socket = assoc.dul.socket.socket
        declared = 512 * MB
        chunk = b"\x00" * MB
        sent = 0
        raw.settimeout(10)
        try:
            raw.sendall(struct.pack(">BBI", 0x04, 0, declared))
            while sent < 256 * MB:  # far more than the socket buffers hold
                raw.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the agent closed the connection: expected
        wait_until(lambda: assoc.is_aborted or not assoc.is_established, timeout=10)
        assert sent < 64 * MB, f"the agent read {sent} bytes of an oversized PDU"
        after = peak_rss_mb(proc.pid)
        assert after - before < 20, f"agent peak RSS {before:.0f} -> {after:.0f} MB"
        again = ae.associate("127.0.0.1", port, ae_title="FWAGENT")
        assert again.is_established
        assert again.send_c_echo().Status == 0x0000
        again.release()
        log = (tmp_path / "agent.log").read_text()
        assert f"a PDU of {declared} bytes, over our maximum" in log
    finally:
        assert agent_process.stop_agent(proc) == 0
