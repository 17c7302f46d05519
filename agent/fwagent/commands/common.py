"""Helpers shared by the run/status/echo sub-commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from fwagent.config import AgentConfig, ConfigError, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("FWAGENT_CONFIG") or None,
        help="agent.yaml (default $FWAGENT_CONFIG; without it, defaults and environment only;"
        " FWAGENT_<SECTION>_<KEY> variables override the file)",
    )


def load_or_exit(path: str | None, need_api_key: bool = False) -> AgentConfig:
    """The configuration, or exit 2 with one line naming the key. ``need_api_key``: the
    command talks to Flywheel, so an empty ``flywheel.api_key`` is refused now rather than
    failing every upload later."""
    try:
        config = load_config(path)
        if need_api_key and not config.flywheel.api_key.strip():
            raise ConfigError(
                "flywheel.api_key: required (set it in agent.yaml or FWAGENT_FLYWHEEL_API_KEY)"
            )
    except ConfigError as exc:
        print(f"fwagent: bad configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return config


def serve_until_signal(ready: str) -> None:
    """Install SIGTERM/SIGINT handlers, then print ``ready`` (what tests and service
    managers wait for: a signal after it always stops cleanly) and block until one comes."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("fwagent").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(ready, flush=True)
    while not stop.wait(1.0):
        pass
