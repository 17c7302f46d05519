"""fwagent run --config agent.yaml: run until SIGTERM/SIGINT, then stop cleanly."""

from __future__ import annotations

import argparse
import logging
import sys

from fwagent.commands.common import add_config_argument, load_or_exit, serve_until_signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config, need_api_key=True)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from fwmapping import dimse

    dimse.quiet_library_log(logging.WARNING)
    from fwagent.agent import Agent
    from fwagent.deid import ProfileError
    from fwagent.state import NewerStateError

    try:
        agent = Agent(config)  # opens the state: a database that cannot be reached stops here
    except (NewerStateError, OSError, ValueError) as exc:
        print(f"fwagent run: cannot start: {exc}", file=sys.stderr)
        return 1
    # this process's temporary files (pynetdicom's chunked receive among them) go to the
    # spool's tmp: same file system as the spool, never a small /tmp (fwagent.chunked)
    from fwagent import chunked

    chunked.receive_into(agent.spool.tmp)
    try:
        agent.start()
    except ProfileError as exc:
        agent.stop()
        print(f"fwagent run: bad de-id profile (deid.profile): {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # port in use, unusable TLS files...
        agent.stop()
        print(f"fwagent run: cannot start: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("fwagent").info("agent running (spool %s)", config.spool_dir)
    serve_until_signal("fwagent: ready")
    agent.stop()
    logging.getLogger("fwagent").info("agent stopped")
    return 0
