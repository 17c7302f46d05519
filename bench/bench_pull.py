"""PULL benchmark (one run, real Orthanc and dcmtk on loopback).

1. The same 500-image series retrieved from Orthanc by the agent (C-MOVE into its own
   Storage SCP, spool + SQLite) vs dcmtk's movescu into storescp: seconds and ratio.
2. C-FIND requests per poll as the PACS holds 10, 100 and 1,000 studies, of which 5 are
   inside the look-back window (the rest is history): first poll, the poll that
   retrieves, and the steady state. It must not grow with the history.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fwagent.config import AgentConfig, config_from_dict
from fwagent.pull.service import PullService
from fwagent.state import State

from tests.support import dicomgen, peers
from tests.support.orthanc import OrthancServer, pull_config

TODAY = dt.date.today().strftime("%Y%m%d")
SERIES_IMAGES = 500
IN_WINDOW = 5


def _config(work: Path, orthanc: OrthancServer, port: int) -> AgentConfig:
    return config_from_dict(
        pull_config(work, orthanc, port, lookback_days=7, retrieve_timeout_seconds=120)
    )


def bench_retrieve(work: Path) -> dict[str, Any]:
    agent_port, scp_port = peers.free_port(), peers.free_port()
    orthanc = OrthancServer(
        work / "orthanc",
        modalities={
            "FWAGENT": ("FWAGENT", "127.0.0.1", agent_port),
            "STORESCP": ("STORESCP", "127.0.0.1", scp_port),
        },
    ).start()
    try:
        spec = dicomgen.SeriesSpec(count=SERIES_IMAGES, rows=256, cols=256, study_date=TODAY)
        orthanc.upload_many(dicomgen.write_series(work / "series", spec))

        config = _config(work / "agent", orthanc, agent_port)
        state = State(config.state_path)
        service = PullService(config, state)
        service.scp.start("FWAGENT", "127.0.0.1", agent_port)
        try:
            start = time.perf_counter()
            received = service.retriever.retrieve(spec.study_uid, spec.series_uid, spec.count)
            agent_s = time.perf_counter() - start
        finally:
            service.stop()
            state.close()

        out = work / "storescp"
        scp = peers.start_storescp(out, scp_port)
        try:
            start = time.perf_counter()
            subprocess.run(
                [
                    "movescu", "-S", "-aet", "STORESCP", "-aec", orthanc.aet, "-aem", "STORESCP",
                    "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={spec.study_uid}",
                    "-k", f"SeriesInstanceUID={spec.series_uid}",
                    "127.0.0.1", str(orthanc.dicom_port),
                ],
                env=peers.PEER_ENV, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            dcmtk_s = time.perf_counter() - start
        finally:
            peers.stop(scp)
        dcmtk_received = len(list(out.iterdir()))
    finally:
        orthanc.stop()
    return {
        "images": SERIES_IMAGES,
        "image_bytes": 256 * 256 * 2,
        "agent_received": received,
        "agent_seconds": round(agent_s, 2),
        "agent_images_per_s": round(received / agent_s, 1),
        "movescu_storescp_received": dcmtk_received,
        "movescu_storescp_seconds": round(dcmtk_s, 2),
        "movescu_images_per_s": round(dcmtk_received / dcmtk_s, 1),
        "agent_time_over_dcmtk_time": round(agent_s / dcmtk_s, 2),
    }


def bench_find(work: Path, studies: int) -> dict[str, Any]:
    port = peers.free_port()
    orthanc = OrthancServer(
        work / f"orthanc-{studies}", modalities={"FWAGENT": ("FWAGENT", "127.0.0.1", port)}
    ).start()
    try:
        for index in range(studies):
            date = TODAY if index < IN_WINDOW else "20150101"
            spec = dicomgen.SeriesSpec(count=1, study_date=date)
            orthanc.upload(dicomgen.write_series(work / f"s{studies}", spec)[0])
        config = _config(work / f"agent-{studies}", orthanc, port)
        state = State(config.state_path)
        service = PullService(config, state)
        service.scp.start("FWAGENT", "127.0.0.1", port)
        try:
            polls = []
            for _ in range(4):
                start = time.perf_counter()
                report = service.cycle()
                polls.append(
                    {
                        "find_requests": report.find_requests,
                        "retrieved": len(report.retrieved),
                        "seconds": round(time.perf_counter() - start, 3),
                    }
                )
        finally:
            service.stop()
            state.close()
    finally:
        orthanc.stop()
    return {"studies_on_pacs": studies, "in_lookback_window": IN_WINDOW, "polls": polls}


def main() -> dict[str, Any]:
    peers.require("Orthanc", "movescu", "storescp")
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {
            "retrieve_500": bench_retrieve(work / "retrieve"),
            "cfind_per_poll": [bench_find(work / "find", n) for n in (10, 100, 1000)],
        }
    print(json.dumps({"bench_pull": result}, indent=2))
    retrieve = result["retrieve_500"]
    print(
        f"retrieve 500 x 128 KB: agent {retrieve['agent_images_per_s']:.0f} img/s, "
        f"movescu+storescp {retrieve['movescu_images_per_s']:.0f} img/s: the agent takes "
        f"{retrieve['agent_time_over_dcmtk_time']:.1f}x dcmtk's time (1.0 is the limit)"
    )
    for row in result["cfind_per_poll"]:
        counts = [poll["find_requests"] for poll in row["polls"]]
        print(f"C-FIND requests per poll, {row['studies_on_pacs']} studies on the PACS: {counts}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
