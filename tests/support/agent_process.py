"""``fwagent`` as a user runs it: ``python -m fwagent run|status|echo --config agent.yaml``
in subprocesses (so a kill -9 is a real kill and metrics start from zero)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support import peers
from tests.support.fwlite_server import FwliteServer

REPO = Path(__file__).resolve().parents[2]


def write_config(
    tmp_path: Path, fwlite: FwliteServer, quiet: float = 1.0, **top: Any
) -> tuple[Path, int]:
    """agent.yaml for a push agent on a free port uploading to ``fwlite``; ``top`` adds or
    replaces top-level sections. Returns (path, push port)."""
    port = peers.free_port()
    config: dict[str, Any] = {
        "flywheel": {
            "api_key": fwlite.api_key,
            "retry_max_seconds": 120,
            "retry_max_interval": 0.5,
            "failed_retry_seconds": 1,
        },
        "spool_dir": str(tmp_path / "spool"),
        "spool_min_free_mb": 0,
        "push": {"port": port, "series_quiet_seconds": quiet},
        **top,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port


def start_agent(
    config: Path, port: int, log: Path, command: str = "run"
) -> subprocess.Popen[bytes]:
    """``fwagent run`` (or ``fwagent qr``) in the background; returns once ``port`` (its
    push or Q/R SCP) accepts connections."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fwagent", command, "--config", str(config)],
            cwd=REPO,
            stdout=out,
            stderr=out,
        )
    try:
        peers.wait_for_port(port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise AssertionError(f"agent did not start: {log.read_text()[-2000:]}") from None
    return proc


def stop_agent(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait; the exit code (0 = stopped cleanly)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def fwagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One ``python -m fwagent ...`` command, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "fwagent", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def user_env() -> dict[str, str]:
    """The environment a user's shell would have: without the test suite's
    FLYWHEEL_SDK_TOTAL_RETRIES=0 (the SDK's default retries apply)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_SDK_")}


def status(config: Path) -> dict[str, Any]:
    """``fwagent status`` parsed (it must exit 0 and print one JSON document)."""
    out = fwagent("status", "--config", str(config))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))
