"""Under CI a missing DICOM peer fails the test instead of skipping it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import peers


def test_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="not installed: no-such-peer-xyz"):
        peers.require("no-such-peer-xyz")


def test_missing_peer_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        peers.require("no-such-peer-xyz")


def test_present_program_is_found() -> None:
    assert peers.require("sh")["sh"].endswith("/sh")


def test_dcmtk_storescu_wins_over_pynetdicom_app() -> None:
    """pynetdicom's apps in the venv must never stand in for dcmtk's peers."""
    path = shutil.which("storescu")
    if path is None:
        peers.require("storescu")
        return
    assert Path(path).parent != Path(sys.prefix) / "bin"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    assert "dcmtk" in (version.stdout + version.stderr).lower()
