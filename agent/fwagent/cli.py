"""``fwagent``: the edge agent's command line (map, run, status, echo, qr).

Each sub-command lives in its own module and is imported only when used, so
``fwagent map`` stays light and a broken optional piece never stops the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# sub-command -> module exposing add_arguments(parser) and main(args) -> int
COMMANDS = {
    "map": ("fwagent.commands.map", "map DICOM files to Flywheel metadata, one JSON line each"),
    "run": ("fwagent.commands.run", "run the agent until SIGTERM/SIGINT"),
    "status": ("fwagent.commands.status", "print series counts by state and failures as JSON"),
    "echo": ("fwagent.commands.echo", "C-ECHO the configured peers and check Flywheel"),
    "qr": ("fwagent.commands.qr", "run only the DICOM Query/Retrieve service (qr section)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fwagent", description="Flywheel DICOM edge agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=summary, description=summary)
        module.add_arguments(command)
        command.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, never a bare traceback
        if os.environ.get("FWAGENT_DEBUG"):
            raise
        print(
            f"fwagent {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(set FWAGENT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
