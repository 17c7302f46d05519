"""fwagent qr --config agent.yaml: run only the Q/R service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys

from fwagent.commands.common import add_config_argument, load_or_exit, serve_until_signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from fwmapping import dimse

    dimse.quiet_library_log(logging.WARNING)
    if not config.flywheel.api_key:
        print("fwagent qr: no Flywheel API key (flywheel.api_key)", file=sys.stderr)
        return 2
    from fwagent import qr

    try:
        service = qr.start(config)
    except (OSError, ValueError) as exc:  # port in use, unusable TLS files...
        print(f"fwagent qr: cannot start: {exc}", file=sys.stderr)
        return 1
    serve_until_signal("fwagent qr: ready")
    service.stop()
    return 0
