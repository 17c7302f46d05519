"""kill -9 of ``fwagent run`` mid-receive and mid-upload, then restart: nothing acknowledged
is lost, nothing is duplicated in Flywheel."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support import peers
from tests.support.agent_process import start_agent, status, stop_agent, write_config
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.site_files import only_acquisition_members


def wait_uploaded(config: Path, n_series: int, timeout: float = 40) -> dict[str, Any]:
    """``fwagent status`` once ``n_series`` are uploaded and nothing waits in the spool."""
    return dict(
        wait_until(
            lambda: (
                (summary := status(config))["series"]["uploaded"] == n_series
                and summary["instances_waiting"] == 0
                and summary
            ),
            timeout=timeout,
            every=0.3,
        )
    )


def test_kill_9_mid_receive_then_restart(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    peers.require("storescu")
    config, port = write_config(tmp_path, fwlite)
    log = tmp_path / "agent.log"
    paths = write_series(tmp_path / "a", SeriesSpec(count=150))
    agent = start_agent(config, port, log)
    sender = subprocess.Popen(
        peers.storescu_command(port, paths, extra=["-v"]),
        env=peers.PEER_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    spool = tmp_path / "spool" / "instances"
    wait_until(lambda: len(list(spool.rglob("*.dcm"))) >= 40, timeout=20, every=0.005)
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait()
    output, _ = sender.communicate(timeout=30)
    acknowledged = output.count("Received Store Response (Success)")
    assert 0 < acknowledged < 150, output[-500:]
    # read while the agent is down (a restarted one may upload them before status runs)
    recorded = status(config)["instances_waiting"]
    # every acknowledged instance was recorded (at most one more was in flight)
    assert acknowledged <= recorded <= acknowledged + 1
    agent = start_agent(config, port, log)
    try:
        wait_uploaded(config, 1)
        assert len(only_acquisition_members(fw)) == recorded
        # the scanner sends the whole series again: still one acquisition, one file, 150
        again = peers.storescu(port, paths)
        assert again.returncode == 0
        # acknowledged means recorded: 150 wait in the spool until the re-upload is done
        wait_uploaded(config, 1)
        assert len(only_acquisition_members(fw)) == 150
        assert len(set(only_acquisition_members(fw))) == 150
    finally:
        assert stop_agent(agent) == 0  # SIGTERM: a clean stop


def test_kill_9_mid_upload_then_restart(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    peers.require("storescu")
    config, port = write_config(tmp_path, fwlite)
    log = tmp_path / "agent.log"
    paths = write_series(tmp_path / "a", SeriesSpec(count=20))
    agent = start_agent(config, port, log)
    fwlite.set_fault(status=503, path_prefix="/api/upload")  # the upload keeps failing
    sent = peers.storescu(port, paths)
    assert sent.returncode == 0
    wait_until(  # the upload has been tried (and refused) at least twice
        lambda: sum(r["path"].startswith("/api/upload") for r in fwlite.requests()) >= 2,
        timeout=20,
        every=0.1,
    )
    # parked between attempts with the reason (one attempt per sweep, own backoff)
    parked = wait_until(
        lambda: (s := status(config))["series"]["failed"] == 1 and s, timeout=20, every=0.1
    )
    assert parked["failures"][0]["last_error"].startswith("HTTP 503")
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait()
    fwlite.clear_fault()
    before = status(config)
    assert before["instances_waiting"] == 20
    agent = start_agent(config, port, log)
    try:
        after = wait_uploaded(config, 1)
        assert after["instances_waiting"] == 0
        assert sorted(only_acquisition_members(fw)) == sorted(f"Series 002/{p.name}" for p in paths)
        assert len(fw.subjects()) == 1 and len(fw.acquisitions()) == 1
        assert list((tmp_path / "spool" / "instances").rglob("*.dcm")) == []
    finally:
        assert stop_agent(agent) == 0  # SIGTERM: a clean stop


def test_kill_9_mid_zip_then_restart(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    peers.require("storescu")
    config, port = write_config(tmp_path, fwlite)
    log = tmp_path / "agent.log"
    paths = write_series(tmp_path / "a", SeriesSpec(count=400, rows=128, cols=128))
    agent = start_agent(config, port, log)
    sent = peers.storescu(port, paths)
    assert sent.returncode == 0
    work = tmp_path / "spool" / "work"
    # the agent has started writing the zip
    partial = wait_until(lambda: list(work.glob("*/*.zip.part")), timeout=20, every=0.001)
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait()
    # killed while packaging: the half-written zip is on disk, nothing reached Flywheel
    assert partial[0].exists()
    assert fw.acquisitions() == []
    before = status(config)
    assert before["series"]["uploading"] == 1 and before["instances_waiting"] == 400
    agent = start_agent(config, port, log)
    try:
        wait_uploaded(config, 1)
        assert "1 work folders removed" in log.read_text()  # the restart cleared it first
        (session,) = fw.sessions()
        (acquisition,) = fw.get_session_acquisitions(session.id)
        assert len(fw.get_acquisition(acquisition.id).files) == 1
        members = only_acquisition_members(fw)
        assert len(members) == 400
        assert set(members) == {f"Series 002/{p.name}" for p in paths}
        spool = tmp_path / "spool"
        # the uploader removes its work folder right after recording the upload
        wait_until(
            lambda: not [p for p in spool.rglob("*") if p.name.endswith((".part", ".zip"))],
            timeout=10,
        )
        assert list((spool / "instances").iterdir()) == []
        assert status(config)["instances_waiting"] == 0
    finally:
        assert stop_agent(agent) == 0  # SIGTERM: a clean stop


def test_restart_with_spool_dir_through_a_symlink_keeps_every_instance(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    """A spool_dir given through a symbolic link (a mounted volume, /var/lib/fwagent ->
    /data/fwagent): restart recovery must not take the acknowledged files for orphans."""
    peers.require("storescu")
    real = tmp_path / "volume"
    real.mkdir()
    (tmp_path / "spool").symlink_to(real)  # write_config's spool_dir is tmp_path/"spool"
    config, port = write_config(tmp_path, fwlite, quiet=3600)
    log = tmp_path / "agent.log"
    paths = write_series(tmp_path / "a", SeriesSpec(count=3))
    agent = start_agent(config, port, log)
    try:
        sent = peers.storescu(port, paths)
        assert sent.returncode == 0, sent.stderr
    finally:
        assert stop_agent(agent) == 0
    assert status(config)["instances_waiting"] == 3
    agent = start_agent(config, port, log)  # recovery runs at start
    assert stop_agent(agent) == 0
    assert status(config)["instances_waiting"] == 3
    assert len(list((real / "instances").rglob("*.dcm"))) == 3
