"""``fwgear run GEAR --root DIR``: run a gear exactly as Flywheel would, DIR being /flywheel/v0.

One entry point and one logging set-up for every gear. Each gear is a module exposing
``run(context: GearContext) -> int`` (its exit code); the runtime builds the fw-gear
GearContext from ``DIR/config.json`` and the gear's manifest, and turns any error that
escapes a gear into one clear log line and a non-zero exit, never a bare traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from fw_gear.context import GearContext

log = logging.getLogger("fwgear")

GEARS = {
    "dicom-send": "gears.dicom_send.gear",
    "unsorted-mover": "gears.unsorted_mover.gear",
    "mapping-audit": "gears.mapping_audit.gear",
}

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
GEAR_ROOT = "/flywheel/v0"


def manifest_path(gear: str, root: Path) -> Path:
    """The gear's manifest: DIR/manifest.json inside a container, else the repository's."""
    inside = root / "manifest.json"
    return inside if inside.is_file() else MANIFESTS / f"{gear}.json"


def rebase_inputs(context: GearContext, root: Path) -> None:
    """Point input paths written for /flywheel/v0 at DIR when DIR is somewhere else."""
    if str(root) == GEAR_ROOT:
        return
    for value in context.config.inputs.values():
        location = value.get("location") if isinstance(value, dict) else None
        path = location.get("path") if isinstance(location, dict) else None
        if isinstance(path, str) and path.startswith(GEAR_ROOT + "/"):
            location["path"] = str(root / path[len(GEAR_ROOT) + 1 :])


def run_gear(gear: str, root: Path) -> int:
    """Run one gear with DIR as its /flywheel/v0 and return its exit code."""
    config = root / "config.json"
    if not config.is_file():
        log.error("no config.json in %s: a gear needs Flywheel's config.json to run", root)
        return 2
    module = importlib.import_module(GEARS[gear])
    with GearContext(
        gear_path=str(root),
        manifest_path=str(manifest_path(gear, root)),
        config_path=str(config),
    ) as context:
        context.init_logging()
        rebase_inputs(context, root)
        try:
            code = int(module.run(context))
        except Exception as exc:  # the one place a gear's unexpected error becomes a message
            log.debug("gear %s failed", gear, exc_info=True)
            log.error("%s failed: %s: %s", gear, type(exc).__name__, exc)
            return 1
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fwgear", description="Run a Flywheel gear locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run GEAR with --root as its /flywheel/v0")
    run.add_argument("gear", choices=sorted(GEARS))
    run.add_argument(
        "--root", default=GEAR_ROOT, help="the gear's /flywheel/v0 (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    root = Path(args.root).resolve()
    if not root.is_dir():
        log.error("gear root %s does not exist", root)
        return 2
    return run_gear(args.gear, root)


if __name__ == "__main__":
    sys.exit(main())
