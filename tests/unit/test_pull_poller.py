"""The poller against a real (pynetdicom) C-FIND SCP that leaves the series count empty."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from fwagent.config import config_from_dict
from fwagent.pull.options import PullOptions
from fwagent.pull.poller import Poller, date_range
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from tests.support import peers


def test_date_range() -> None:
    assert date_range(0) == ""
    assert date_range(7, dt.date(2024, 3, 5)) == "20240227-"


def _answers(query: Dataset) -> Iterator[tuple[int, Dataset | None]]:
    level = query.QueryRetrieveLevel
    rows: list[dict[str, Any]] = []
    if level == "STUDY":
        rows = [{"StudyInstanceUID": "1.9", "StudyDate": "20240301", "PatientID": "fw://a/b"}]
    elif level == "SERIES":
        rows = [
            {"SeriesInstanceUID": "1.9.1", "PatientID": "fw://a/b"},  # no count returned
            {"SeriesInstanceUID": "1.9.2", "NumberOfSeriesRelatedInstances": "2"},
        ]
    elif level == "IMAGE" and query.SeriesInstanceUID == "1.9.1":
        rows = [{"SOPInstanceUID": f"1.9.1.{i}"} for i in range(4)]
    for row in rows:
        answer = Dataset()
        answer.QueryRetrieveLevel = level
        answer.StudyInstanceUID = "1.9"
        for key, value in row.items():
            setattr(answer, key, value)
        yield 0xFF00, answer
    yield 0x0000, None


def test_image_level_count_when_the_peer_leaves_the_series_count_empty() -> None:
    port = peers.free_port()
    scp = AE(ae_title="MINIPACS")
    scp.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    server = scp.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_FIND, lambda event: _answers(event.identifier))],
    )
    try:
        config = config_from_dict(
            {"pull": {"peer": {"ae_title": "MINIPACS", "host": "127.0.0.1", "port": port}}}
        )
        result = Poller(PullOptions.from_config(config)).poll()
    finally:
        server.shutdown()
    counts = {s.series_uid: s.count for s in result.series}
    assert counts == {"1.9.1": 4, "1.9.2": 2}
    assert (result.find_requests, result.image_level_counts) == (3, 1)
    allowed = {s.series_uid: s.allowed for s in result.series}
    # policy field returned (at series or study level) -> decided on the answer
    assert allowed == {"1.9.1": True, "1.9.2": True}
