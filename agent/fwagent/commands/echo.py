"""fwagent echo (placeholder until its issue lands)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="agent.yaml")


def main(args: argparse.Namespace) -> int:
    print("fwagent echo: not built yet")
    return 2
