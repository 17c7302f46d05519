"""fwagent status --config agent.yaml: series by state, failures with reasons, quarantine,
per scanner (calling AE title) counts; see :mod:`fwagent.report`."""

from __future__ import annotations

import argparse
import json
import sys

from fwagent.commands.common import add_config_argument, load_or_exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    if not config.state_url and not config.state_path.exists():
        print(f"fwagent status: no state yet at {config.state_path}", file=sys.stderr)
        return 1
    from fwagent import report
    from fwagent.state import NewerStateError

    try:
        state = config.open_state()
    except NewerStateError as exc:
        print(f"fwagent status: {exc}", file=sys.stderr)
        return 1
    except (ConnectionError, OSError) as exc:
        print(f"fwagent status: cannot open the state: {exc}", file=sys.stderr)
        return 1
    try:
        summary = report.status(config, state)
    finally:
        state.close()
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0
