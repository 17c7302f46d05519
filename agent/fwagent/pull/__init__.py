"""PULL: poll a PACS with C-FIND, retrieve stable series with C-MOVE/C-GET, upload.

The hook `fwagent run` calls when ``pull.enabled``::

    stopper = fwagent.pull.start(config, state, pipeline)   # returns at once
    ...
    stopper.stop()                                           # on SIGTERM/SIGINT

It starts the pull-side Storage SCP on ``pull.port`` (C-MOVE destination, answers C-ECHO)
and a thread polling every ``pull.interval_seconds``. Retrieved series land in the shared
spool with ``source="pull"`` and are marked ``complete`` once their count checks out; the
shared pipeline then packages and uploads them. ``pipeline.wake(series_uid)`` is called
if the pipeline has it, so an upload need not wait for the next sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fwagent.config import AgentConfig
from fwagent.state import State


class Stopper(Protocol):
    def stop(self) -> None: ...


def start(
    config: AgentConfig,
    state: State,
    pipeline: Any = None,
    on_stored: Callable[[str, str], None] | None = None,
) -> Stopper:
    """Start polling (and the pull storage SCP); return what stops it. ``on_stored`` is
    the receiver hook for each retrieved instance (the agent's de-identification)."""
    from fwagent.pull.service import PullService

    wake = getattr(pipeline, "wake", None)
    service = PullService(
        config, state, on_complete=wake if callable(wake) else None, on_stored=on_stored
    )
    service.start()
    return service


def status(config: AgentConfig) -> dict[str, Any]:
    """The ``pull`` section of `fwagent status` (abandoned series with their reasons)."""
    from fwagent.pull.store import PullStore

    store = PullStore(config.state_path, config.state_url)
    try:
        return store.summary()
    finally:
        store.close()
