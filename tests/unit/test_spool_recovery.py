"""Restart recovery keeps every acknowledged file, however spool_dir is spelled."""

from __future__ import annotations

from pathlib import Path

import pytest
from fwagent.spool import Spool, recover_spool
from fwagent.state import State


def _acknowledge(spool: Spool, state: State, sop: str) -> Path:
    path = spool.instance_path("1.2.3", sop)
    path.write_bytes(b"instance")
    state.record_instance(sop, "1.2.3", "1.2", path, 8)
    return path


@pytest.mark.parametrize("spelling", ["relative", "symlink"])
def test_recovery_keeps_acknowledged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    if spelling == "symlink":
        root = tmp_path / "link"
        root.symlink_to(real)
    else:
        monkeypatch.chdir(tmp_path)
        root = Path("real")
    spool = Spool(root)
    state = State(real / "state.sqlite")
    try:
        kept = _acknowledge(spool, state, "1.2.3.1")
        stray = spool.instance_path("1.2.3", "1.2.3.2")  # on disk, never acknowledged
        stray.write_bytes(b"partial")
        found = recover_spool(Spool(root), state)
    finally:
        state.close()
    assert found["orphans"] == 1
    assert kept.exists() and not stray.exists()
