"""Helpers shared by the run/status/echo sub-commands."""

from __future__ import annotations

import argparse
import os
import sys

from fwagent.config import AgentConfig, ConfigError, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("FWAGENT_CONFIG") or None,
        help="agent.yaml (default $FWAGENT_CONFIG; without it, defaults and environment only;"
        " FWAGENT_<SECTION>_<KEY> variables override the file)",
    )


def load_or_exit(path: str | None) -> AgentConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"fwagent: bad configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
