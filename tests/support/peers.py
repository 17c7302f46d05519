"""Real third-party DICOM peers (dcmtk, Orthanc) for tests.

A test that needs a peer calls :func:`require`. Locally a missing peer skips the test;
under ``CI=true`` it fails, so CI can never pass without the real peers installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Debian's dcmtk and Orthanc need TCP_NODELAY=1, else Nagle + delayed ACK cap ~17 img/s.
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


def require(*programs: str) -> dict[str, str]:
    """Return {program: path} for each program, or skip (locally) / fail (CI) if missing."""
    found: dict[str, str] = {}
    missing = []
    for name in programs:
        path = shutil.which(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        message = f"real DICOM peer(s) not installed: {', '.join(missing)} (apt-get install dcmtk orthanc)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def start_storescp(out_dir: Path, port: int, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start dcmtk's storescp writing into out_dir on 127.0.0.1:port."""
    require("storescp")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["storescp", *extra, "-od", str(out_dir), str(port)],
        env=PEER_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"storescp did not start: {err.decode(errors='replace')}") from None
    return proc


def storescu_command(
    port: int,
    paths: Sequence[Path],
    aet: str = "STORESCU",
    aec: str = "FWAGENT",
    extra: Sequence[str] = (),
) -> list[str]:
    """dcmtk's storescu sending ``paths`` to 127.0.0.1:port (run it with PEER_ENV)."""
    require("storescu")
    return ["storescu", "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port), *map(str, paths)]


def storescu(
    port: int,
    paths: Sequence[Path],
    aet: str = "STORESCU",
    aec: str = "FWAGENT",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run storescu to the end; its output is kept for the test's assertions."""
    command = storescu_command(port, paths, aet, aec, extra)
    return subprocess.run(command, env=PEER_ENV, capture_output=True, text=True, timeout=60)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a peer and wait for it (Orthanc takes 3-5 s on SIGTERM)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
