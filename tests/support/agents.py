"""In-process agents for tests that read the agent's state directly (``Agent`` objects,
not ``fwagent run`` subprocesses): each one a fresh spool, a free push port, stopped at
the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fwagent.agent import Agent
from fwagent.config import config_from_dict

from tests.support import peers
from tests.support.fwlite_server import FwliteServer


@contextmanager
def in_process_agents(
    tmp_path: Path, fwlite: FwliteServer, quiet: float, **flywheel: Any
) -> Iterator[Callable[..., Agent]]:
    """``make(**push)`` starts an agent uploading to ``fwlite`` (``flywheel`` adds keys to
    its flywheel section, ``push`` to its push section); all are stopped on exit."""
    started: list[Agent] = []

    def make(**push: Any) -> Agent:
        raw = {
            "flywheel": {"api_key": fwlite.api_key, **flywheel},
            "spool_dir": str(tmp_path / f"spool-{len(started)}"),
            "spool_min_free_mb": 0,
            "push": {"port": peers.free_port(), "series_quiet_seconds": quiet, **push},
        }
        agent = Agent(config_from_dict(raw))
        agent.start()
        started.append(agent)
        return agent

    try:
        yield make
    finally:
        for agent in started:
            agent.stop()
