"""``fwlite serve`` and ``fwlite tree``."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from fwlite.tickets import LIFETIME


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds (argparse type)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwlite", description="A local stand-in for Flywheel Core."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the REST API persisted in DIR")
    serve.add_argument("--data", type=Path, required=True, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8088)
    serve.add_argument(
        "--api-key",
        default=os.environ.get("FWLITE_API_KEY", "fwlite-key"),
        help="the one key accepted (default $FWLITE_API_KEY or 'fwlite-key')",
    )
    serve.add_argument(
        "--restricted-key",
        action="append",
        default=[],
        type=restricted_key,
        metavar="KEY:GROUP",
        help="another key, that may only read the files of group GROUP (repeatable)",
    )
    serve.add_argument(
        "--ticket-lifetime",
        type=seconds,
        default=LIFETIME,
        metavar="SECONDS",
        help=f"how long a download ticket stays valid (default {LIFETIME:g})",
    )
    tree = sub.add_parser("tree", help="print group > project > subject > session > acquisition")
    tree.add_argument("--data", type=Path, metavar="DIR", help="read DIR directly")
    tree.add_argument("--url", help="or ask a running site, e.g. http://127.0.0.1:8088")
    tree.add_argument("--api-key", help="with --url: the key")
    return parser


def restricted_key(value: str) -> tuple[str, str]:
    key, _, group = value.rpartition(":")
    if not key or not group:
        raise argparse.ArgumentTypeError(f"expected KEY:GROUP, got {value!r}")
    return key, group


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fwlite.server import create_app

    restricted = dict(args.restricted_key)
    app = create_app(args.data, args.api_key, args.ticket_lifetime, restricted)
    print(f"fwlite serving {args.data} on http://{args.host}:{args.port}/api", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def tree(args: argparse.Namespace) -> int:
    if args.data:
        from fwlite.tree import print_tree

        if not (args.data / "fwlite.sqlite").is_file():
            print(f"fwlite: no fwlite data in {args.data}", file=sys.stderr)
            return 2
        return print_tree(args.data)
    if not args.url or not args.api_key:
        print("fwlite tree: give --data DIR, or --url URL and --api-key KEY", file=sys.stderr)
        return 2
    import flywheel

    from fwlite.tree import tree_from_client

    host_port = args.url.split("://", 1)[-1].rstrip("/").removesuffix("/api")
    insecure = ":__force_insecure" if args.url.startswith("http://") else ""
    if ":" not in host_port:
        host_port += ":443" if not insecure else ":80"
    client = flywheel.Client(f"{host_port}{insecure}:{args.api_key}")
    for line in tree_from_client(client):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return serve(args) if args.command == "serve" else tree(args)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"fwlite: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
