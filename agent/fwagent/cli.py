"""``fwagent``: the edge agent's command line (map, run, status, echo).

Each sub-command lives in its own module and is imported only when used, so
``fwagent map`` stays light and a broken optional piece never stops the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> module exposing add_arguments(parser) and main(args) -> int
COMMANDS = {
    "map": ("fwagent.commands.map", "map DICOM files to Flywheel metadata, one JSON line each"),
    "run": ("fwagent.commands.run", "run the agent until SIGTERM/SIGINT"),
    "status": ("fwagent.commands.status", "print series counts by state and failures as JSON"),
    "echo": ("fwagent.commands.echo", "C-ECHO the configured peers and check Flywheel"),
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
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
