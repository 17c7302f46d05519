"""mapping-audit on 100 and 1,000 acquisitions: API calls measured in fwlite's request log."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from fwagent.package import zip_series
from fwagent.upload import upload_acquisition
from fwmapping import dataset_from_header, header_info, map_dataset
from pydicom.uid import generate_uid

from gears import runtime
from gears.common.hierarchy import PAGE
from tests.support.dicomgen import SeriesSpec, make_instance, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.gear_root import make_gear_root

PER_SESSION = 10


def seed_project(fw: Any, tmp_path: Path, label: str, count: int) -> str:
    """``count`` acquisitions (PER_SESSION per session) uploaded through the agent's path.

    One small zip is reused; each acquisition gets its own uids and the header info the
    agent would write for it, so every upload is one /upload/uid request.
    """
    pid = fw.add_project({"label": label, "group": "psych"})
    zip_path = zip_series(write_series(tmp_path / label, SeriesSpec(count=1)), tmp_path / "a.zip")
    base = header_info(make_instance(SeriesSpec(patient_id=f"fw://psych/{label}/s"), 0))
    for index in range(count):
        header = copy.deepcopy(base)
        if index % PER_SESSION == 0:
            study = generate_uid()
        header.update(
            StudyInstanceUID=study,
            SeriesInstanceUID=generate_uid(),
            PatientID=f"fw://psych/{label}/s{index // (PER_SESSION * 5):03d}",
            SeriesDescription=f"series {index % PER_SESSION}",
        )
        metadata = map_dataset(dataset_from_header(header))
        metadata["routing"]["resolved"] = "routed"  # placed already: no per-upload lookups
        upload_acquisition(fw, metadata, zip_path, header=header)
    return pid


def audit_calls(tmp_path: Path, server: FwliteServer, pid: str) -> tuple[int, int, float]:
    """(API requests, report rows, seconds) of one project audit."""
    root = make_gear_root(
        tmp_path / f"gear-{pid}",
        config={},
        destination={"type": "project", "id": pid},
        api_key=server.api_key,
    )
    before = len(server.requests())
    start = time.perf_counter()
    assert runtime.main(["run", "mapping-audit", "--root", str(root)]) == 0
    seconds = time.perf_counter() - start
    [report] = (root / "output").glob("*.csv")
    rows = len(report.read_text().splitlines()) - 1
    return len(server.requests()) - before, rows, seconds


def test_api_calls_grow_at_most_linearly(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    fw.add_group({"_id": "psych", "label": "Psych"})
    small = seed_project(fw, tmp_path, "p100", 100)
    large = seed_project(fw, tmp_path, "p1000", 1000)
    assert len(fw.get_all_acquisitions(filter=f"parents.project={large}")) == 1000

    calls_100, rows_100, secs_100 = audit_calls(tmp_path, fwlite, small)
    calls_1000, rows_1000, secs_1000 = audit_calls(tmp_path, fwlite, large)
    print(
        f"\nmapping-audit API calls: 100 acq -> {calls_100} ({secs_100:.2f}s), "
        f"1000 acq -> {calls_1000} ({secs_1000:.2f}s)"
    )
    assert (rows_100, rows_1000) == (0, 0)
    # linear at worst; in fact one paged listing per level: +1 call per PAGE containers
    assert calls_1000 <= 10 * calls_100
    assert calls_1000 - calls_100 <= 3 * (1000 // PAGE + 1)
