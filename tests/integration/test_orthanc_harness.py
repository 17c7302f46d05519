"""Smoke test of the Orthanc harness: start, store, find, move, restart keeps data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import dicomgen, peers
from tests.support.orthanc import OrthancServer

pytestmark = pytest.mark.peers


def test_orthanc_stores_finds_moves_and_survives_restart(tmp_path: Path) -> None:
    peers.require("Orthanc", "storescu", "storescp", "findscu", "movescu")
    scp_port = peers.free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"SCP": ("STORESCP", "127.0.0.1", scp_port)}
    )
    orthanc.start()
    try:
        spec = dicomgen.SeriesSpec(count=3)
        paths = dicomgen.write_series(tmp_path / "in", spec)
        orthanc.upload(paths[0])
        # storescu over DIMSE as a scanner would
        sent = peers.storescu(orthanc.dicom_port, paths[1:], aec=orthanc.aet)
        assert sent.returncode == 0, sent.stderr
        assert orthanc.instance_count() == 3
        assert orthanc.series_instance_count(spec.series_uid) == 3

        # SERIES-level C-FIND from a listed AE answers the instance count
        out = subprocess.run(
            [
                "findscu", "-S", "-aet", "STORESCP", "-aec", orthanc.aet,
                "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={spec.study_uid}",
                "-k", "SeriesInstanceUID", "-k", "NumberOfSeriesRelatedInstances",
                "127.0.0.1", str(orthanc.dicom_port),
            ],
            env=peers.PEER_ENV, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert spec.series_uid in out.stderr + out.stdout

        # C-MOVE to a listed destination
        scp = peers.start_storescp(tmp_path / "moved", scp_port)
        try:
            subprocess.run(
                [
                    "movescu", "-S", "-aet", "STORESCP", "-aec", orthanc.aet, "-aem", "STORESCP",
                    "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={spec.study_uid}",
                    "-k", f"SeriesInstanceUID={spec.series_uid}",
                    "127.0.0.1", str(orthanc.dicom_port),
                ],
                env=peers.PEER_ENV, capture_output=True, check=True, timeout=60,
            )  # fmt: skip
        finally:
            peers.stop(scp)
        assert len(list((tmp_path / "moved").iterdir())) == 3

        ports = (orthanc.dicom_port, orthanc.http_port)
        orthanc.restart()
        assert (orthanc.dicom_port, orthanc.http_port) == ports
        assert orthanc.instance_count() == 3
    finally:
        orthanc.stop()
    assert orthanc.proc is None
