"""Several ``fwagent run`` replicas sharing one spool and one PostgreSQL state, each its own
process on its own push port (what a Kubernetes Deployment with N replicas behind one
Service amounts to), for tests and the scale benchmark."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import peers
from tests.support.agent_process import start_agent, stop_agent
from tests.support.polling import wait_until


@dataclass
class Replica:
    name: str
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Replica:
        """Start and wait until it says ready (its signal handlers are in place then: a
        SIGTERM before that would kill it rather than stop it)."""
        already = self.log_text().count("fwagent: ready")
        self.proc = start_agent(self.config, self.port, self.log)
        wait_until(lambda: self.log_text().count("fwagent: ready") > already, timeout=30)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return int(self.proc.returncode)
        return stop_agent(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def make_replicas(
    work: Path, base: dict[str, Any], count: int, per_replica: Any = None
) -> list[Replica]:
    """``count`` replica configs from ``base`` (agent.yaml as a dict, sharing spool_dir and
    state_url), each with its own free push port; ``per_replica(i, config)`` may adjust one."""
    out = []
    for i in range(count):
        config = copy.deepcopy(base)
        port = peers.free_port()
        config.setdefault("push", {})["port"] = port
        if per_replica is not None:
            per_replica(i, config)
        path = work / f"replica{i}.yaml"
        path.write_text(yaml.safe_dump(config))
        out.append(Replica(f"replica{i}", path, port, work / f"replica{i}.log"))
    return out


def stop_all(replicas: list[Replica]) -> list[int]:
    """SIGTERM every live replica; their exit codes (0 = clean)."""
    return [r.stop() for r in replicas if r.alive]
