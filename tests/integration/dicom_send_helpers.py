"""Shared helpers for the dicom-send integration tests (real storescp/Orthanc, fwlite)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom

from gears.runtime import main as fwgear
from tests.support import peers
from tests.support.gear_root import make_gear_root


@contextmanager
def storescp(out: Path, extra: tuple[str, ...] = ()) -> Iterator[int]:
    """dcmtk storescp on a free port; yields the port."""
    port = peers.free_port()
    proc = peers.start_storescp(out, port, extra)
    try:
        yield port
    finally:
        peers.stop(proc)


def run_gear(
    root: Path,
    port: int,
    *,
    files: dict[str, tuple[Path, dict[str, Any]]] | None = None,
    api_key: str | None = None,
    destination: dict[str, str] | None = None,
    **config: Any,
) -> tuple[int, list[dict[str, str]]]:
    """Run dicom-send in-process exactly as ``fwgear run``; return exit code and report rows."""
    opts = {"destination": "127.0.0.1", "called_ae": "STORESCP", "port": port, **config}
    make_gear_root(
        root,
        config=opts,
        destination=destination or {"id": "000000000000000000000000", "type": "acquisition"},
        api_key=api_key,
        files=files,
    )
    code = fwgear(["run", "dicom-send", "--root", str(root)])
    return code, report_rows(root)


def report_rows(root: Path) -> list[dict[str, str]]:
    reports = sorted((root / "output").glob("dicom-send_report-*.csv"))
    assert len(reports) == 1, reports
    with reports[0].open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [
            "Acquisition ID",
            "FW Path",
            "Filename",
            "Images in Series",
            "Images Sent",
            "Status",
        ]
        return list(reader)


def received(out: Path) -> dict[str, pydicom.Dataset]:
    """SOPInstanceUID -> dataset of every file storescp wrote."""
    found = {}
    for path in out.iterdir():
        if path.is_file():
            ds = pydicom.dcmread(path)
            found[str(ds.SOPInstanceUID)] = ds
    return found
