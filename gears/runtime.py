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

import jsonschema
from fw_gear.context import GearContext

log = logging.getLogger("fwgear")

GEARS = {
    "dicom-send": "gears.dicom_send.gear",
    "unsorted-mover": "gears.unsorted_mover.gear",
    "mapping-audit": "gears.mapping_audit.gear",
}

EXIT_FAILED = 1  # the gear ran and something it had to do did not happen
EXIT_CONFIG = 2  # configuration, inputs or destination the gear cannot work with: nothing done

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
        if not isinstance(location, dict):
            continue
        path = location.get("path")
        if isinstance(path, str) and path.startswith(GEAR_ROOT + "/"):
            location["path"] = str(root / path[len(GEAR_ROOT) + 1 :])


def check_config(context: GearContext) -> str | None:
    """Fill manifest defaults for missing options and validate, as Flywheel does at job
    creation; return one readable message for the first problem, or None."""
    manifest = context.manifest
    if manifest is None:
        return None
    opts = context.config.opts
    for key, spec in (manifest.get_value("config") or {}).items():
        if key not in opts and isinstance(spec, dict) and "default" in spec:
            opts[key] = spec["default"]
    schema = manifest.derive_config_schema(full=True)
    errors = sorted(
        jsonschema.Draft4Validator(schema).iter_errors({"config": opts}),
        key=lambda error: list(error.path),
    )
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(part) for part in first.path) or "config"
    return f"{where}: {first.message}"


def run_gear(gear: str, root: Path) -> int:
    """Run one gear with DIR as its /flywheel/v0 and return its exit code."""
    config = root / "config.json"
    if not config.is_file():
        log.error("no config.json in %s: a gear needs Flywheel's config.json to run", root)
        return EXIT_CONFIG
    module = importlib.import_module(GEARS[gear])
    try:
        context = GearContext(
            gear_path=str(root),
            manifest_path=str(manifest_path(gear, root)),
            config_path=str(config),
        )
    except Exception as exc:  # bad config.json, manifest or api-key: say so in one line
        log.debug("gear context for %s failed", gear, exc_info=True)
        log.error("%s cannot start: %s: %s", gear, type(exc).__name__, exc)
        return EXIT_CONFIG
    with context:
        context.init_logging()
        rebase_inputs(context, root)
        problem = check_config(context)
        if problem:
            log.error("%s: invalid configuration: %s", gear, problem)
            return EXIT_CONFIG
        try:
            code = int(module.run(context))
        except Exception as exc:  # the one place a gear's unexpected error becomes a message
            log.debug("gear %s failed", gear, exc_info=True)
            log.error("%s failed: %s: %s", gear, type(exc).__name__, exc)
            return EXIT_FAILED
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
        return EXIT_CONFIG
    return run_gear(args.gear, root)


if __name__ == "__main__":
    sys.exit(main())
