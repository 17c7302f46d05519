"""``fwagent map PATH...``: print where each acquisition would land, one JSON line each.

Offline: the mapping rules only, no site checks (the agent's upload resolves missing
groups and projects against the site). Directories are read recursively; files that are
not DICOM are skipped with a one-line note on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fwmapping import MappingConfig, NotDicomError, map_dataset, read_header

from fwagent.deid.profile import Profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = MappingConfig()
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or directories")
    parser.add_argument(
        "--routing-field",
        default=defaults.routing_field,
        metavar="KW",
        help="header keyword holding fw://group/project/subject/session (default: %(default)s)",
    )
    parser.add_argument(
        "--session-label-key",
        default=defaults.session_label_key,
        metavar="KW",
        help="header keyword for the session label (default: %(default)s)",
    )
    parser.add_argument(
        "--timezone", default=defaults.timezone, metavar="TZ", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--deid-profile",
        metavar="PATH",
        help="preview what would be uploaded after this Flywheel de-id profile (routing"
        " still read from the original header)",
    )


def iter_files(paths: list[str]) -> Iterator[Path]:
    """Every file under the given paths, in a stable order; notes missing paths."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            print(f"fwagent map: {name}: no such file or directory", file=sys.stderr)


def map_paths(paths: list[str], config: MappingConfig) -> Iterator[dict[str, Any]]:
    """One metadata object per acquisition, in order of first appearance."""
    seen: set[tuple[str, str]] = set()
    for path in iter_files(paths):
        try:
            ds = read_header(path)
        except NotDicomError as exc:
            print(f"fwagent map: skipped {exc}", file=sys.stderr)
            continue
        metadata = map_dataset(ds, config)
        key = (metadata["session"]["uid"], metadata["acquisition"]["uid"])
        if key not in seen:
            seen.add(key)
            yield metadata


def map_deidentified_paths(
    paths: list[str], config: MappingConfig, profile: Profile
) -> Iterator[dict[str, Any]]:
    """As :func:`map_paths`, after de-identifying each file with ``profile`` (in a worker
    process, into a temporary folder removed afterwards); a file the profile cannot
    process is skipped with a note, never shown raw."""
    import tempfile

    from fwagent.deid import worker
    from fwagent.deid.mapping import map_deidentified
    from fwagent.deid.pool import new_pool

    seen: set[tuple[str, str]] = set()
    with tempfile.TemporaryDirectory(prefix="fwagent-map-") as tmp, new_pool(1) as pool:
        originals = []
        for path in iter_files(paths):
            try:
                originals.append((path, read_header(path)))
            except NotDicomError as exc:
                print(f"fwagent map: skipped {exc}", file=sys.stderr)
        futures = [
            pool.submit(worker.deidentify, profile, worker.Task(str(path), f"{tmp}/{n}"))
            for n, (path, _) in enumerate(originals)
        ]
        for (path, original), future in zip(originals, futures, strict=True):
            result = future.result()
            if not result.ok:
                print(f"fwagent map: skipped {path}: {result.reason}", file=sys.stderr)
                continue
            metadata = map_deidentified(original, read_header(result.path), config)
            key = (metadata["session"]["uid"], metadata["acquisition"]["uid"])
            if key not in seen:
                seen.add(key)
                yield metadata


def main(args: argparse.Namespace) -> int:
    try:
        config = MappingConfig(
            routing_field=args.routing_field,
            session_label_key=args.session_label_key,
            timezone=args.timezone,
        )
    except ValueError as exc:  # fwmapping checks its own settings
        print(f"fwagent map: {exc}", file=sys.stderr)
        return 2
    if args.deid_profile:
        from fwagent.deid import ProfileError
        from fwagent.deid.service import validate

        try:
            profile = validate(args.deid_profile)
        except ProfileError as exc:
            print(f"fwagent map: bad de-id profile: {exc}", file=sys.stderr)
            return 2
        mapped_all = map_deidentified_paths(args.paths, config, profile)
    else:
        mapped_all = map_paths(args.paths, config)
    mapped = 0
    for metadata in mapped_all:
        print(json.dumps(metadata), flush=True)
        mapped += 1
    if not mapped:
        print("fwagent map: no DICOM files found in " + ", ".join(args.paths), file=sys.stderr)
        return 1
    return 0
