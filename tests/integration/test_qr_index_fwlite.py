"""The Q/R index against fwlite through the real SDK: incremental passes download only what
changed, a full pass drops what the key can no longer see, a new file version replaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwagent.config import config_from_dict
from fwagent.qr.service import QRService

from tests.support.dicomgen import SeriesSpec
from tests.support.fwlite_server import FwliteServer
from tests.support.seed import seed_series


def downloads(fwlite: FwliteServer) -> int:
    return sum(1 for r in fwlite.requests() if "/files/" in r["path"] and r["method"] == "GET")


def test_incremental_and_full_refresh(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    first = SeriesSpec(count=3, patient_id="P1")
    seed_series(fw, tmp_path, first)
    seed_series(fw, tmp_path, SeriesSpec(count=2, patient_id="P1", study_uid=first.study_uid))
    config = config_from_dict(
        {
            "flywheel": {"api_key": fwlite.api_key},
            "spool_dir": str(tmp_path / "spool"),
            "qr": {
                "enabled": True,
                "port": 11999,
                "peers": [{"ae_title": "PACS", "host": "127.0.0.1", "port": 104}],
            },
        }
    )
    service = QRService(config, fw)
    try:
        report = service.refresher.refresh(full=True)
        assert report is not None and (report.listed, report.indexed) == (2, 2)
        counts = service.index.counts()
        assert (counts["studies"], counts["series"], counts["instances"]) == (1, 2, 5)

        # nothing changed: one listing, no download
        before = downloads(fwlite)
        report = service.refresher.refresh()
        assert report is not None and report.indexed == 0 and not report.full
        assert downloads(fwlite) == before

        # a new series and a replaced zip (same name, 4 instances now): only those two
        second = SeriesSpec(count=1, patient_id="P2")
        seed_series(fw, tmp_path, second)
        seed_series(fw, tmp_path, SeriesSpec(**{**first.__dict__, "count": 4}))
        report = service.refresher.refresh()
        assert report is not None and report.indexed == 2
        counts = service.index.counts()
        assert (counts["studies"], counts["series"], counts["instances"]) == (2, 3, 7)

        # deleted on the site: a quick pass cannot know, the full pass drops it
        session = fw.sessions.find_first(f"uid={second.study_uid}")
        fw.delete_session(session.id)
        service.refresher.refresh()
        assert service.index.counts()["studies"] == 2
        report = service.refresher.refresh(full=True)
        assert report is not None and report.removed == 1
        assert service.index.counts()["studies"] == 1
    finally:
        service.index.close()
