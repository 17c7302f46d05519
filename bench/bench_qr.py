"""Q/R benchmark (one run, loopback, real dcmtk and Orthanc).

1. C-FIND latency at STUDY level with 100, 1,000 and 10,000 studies in the index. The index
   is filled directly (Index.put_source with synthetic header rows: 2 series x 2 instances
   per study), since uploading 10,000 studies to fwlite would take most of an hour; the
   SCP is the real one (Flywheel = an empty fwlite behind it, so the per-request quick
   refresh is a real listing call). Median of repeated C-FINDs on one pynetdicom
   association, for an exact StudyInstanceUID, a one-day StudyDate, a PatientName
   wildcard and a universal query capped by max_results (1,000); plus dcmtk findscu runs
   (process start included) for the exact and the universal query.
2. C-MOVE throughput: the same 200-image study (256x256 MR) uploaded by the agent's own
   upload path to fwlite and stored in Orthanc; dcmtk's movescu moves it to a storescp
   from the agent's Q/R SCP and from Orthanc: images/s and the ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fwagent.config import config_from_dict
from fwagent.qr.attributes import ALL_HEADER
from fwagent.qr.index import Source
from fwagent.qr.service import QRService
from pydicom.dataset import Dataset

from tests.support import dicomgen, peers
from tests.support.fwlite_server import FwliteServer
from tests.support.orthanc import OrthancServer
from tests.support.seed import seed_series

SIZES = tuple(int(x) for x in os.environ.get("BENCH_QR_SIZES", "100,1000,10000").split(","))
REPEAT = 30
MOVE_IMAGES = 200


def _config(work: Path, fwlite: FwliteServer, port: int, peer_list: list[dict[str, Any]]) -> Any:
    return config_from_dict(
        {
            "flywheel": {"api_key": fwlite.api_key},
            "spool_dir": str(work),
            "qr": {"enabled": True, "port": port, "max_results": 1000, "peers": peer_list},
        }
    )


def _fill(service: QRService, studies: int) -> float:
    """``studies`` synthetic studies (2 series x 2 instances), one Source per series."""
    start = time.perf_counter()
    for n in range(studies):
        study = f"1.2.826.0.1.3680043.10.543.{n}"
        for s in (1, 2):
            series = f"{study}.{s}"
            rows = []
            for i in (1, 2):
                row: dict[str, Any] = dict.fromkeys(ALL_HEADER)
                row.update(
                    PatientID=f"P{n % 997}",
                    PatientName=f"NAME{n % 997}^GIVEN",
                    StudyInstanceUID=study,
                    StudyDate=f"2020{1 + n % 12:02d}{1 + n % 28:02d}",
                    StudyTime="101500",
                    StudyDescription=f"Study {n}",
                    AccessionNumber=f"A{n}",
                    SeriesInstanceUID=series,
                    Modality="MR" if s == 1 else "CT",
                    SeriesNumber=str(s),
                    SOPInstanceUID=f"{series}.{i}",
                    SOPClassUID="1.2.840.10008.5.1.4.1.1.4",
                    InstanceNumber=str(i),
                )
                rows.append((f"x/{i}.dcm", "1.2.840.10008.1.2.1", row))
            service.index.put_source(Source(f"f{n}.{s}", 1, f"a{n}.{s}", "s.dicom.zip"), rows)
    service.index.set_meta("cursor", "9999")  # nothing on fwlite is newer: quick passes only
    return time.perf_counter() - start


def _find_latency(port: int, queries: dict[str, dict[str, str]]) -> dict[str, tuple[float, int]]:
    from fwmapping.dimse import on_open_nodelay as set_nodelay
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind as Find,
    )

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(Find)
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, set_nodelay)]  # client side too, as dcmtk
    assoc = ae.associate("127.0.0.1", port, ae_title="FWQR", evt_handlers=handlers)
    out: dict[str, tuple[float, int]] = {}
    try:
        for name, keys in queries.items():
            timings, count = [], 0
            for _ in range(REPEAT):
                request = Dataset()
                request.QueryRetrieveLevel = "STUDY"
                request.StudyInstanceUID = ""
                request.StudyDescription = ""
                for key, value in keys.items():
                    setattr(request, key, value)
                start = time.perf_counter()
                count = sum(1 for status, ds in assoc.send_c_find(request, Find) if ds is not None)
                timings.append(time.perf_counter() - start)
            out[name] = (statistics.median(timings) * 1000, count)
    finally:
        assoc.release()
    return out


def _findscu_ms(port: int, uid: str) -> float:
    command = ["findscu", "-S", "-aet", "BENCH", "-aec", "FWQR", "-k", "QueryRetrieveLevel=STUDY"]
    command += ["-k", f"StudyInstanceUID={uid}", "-k", "StudyDescription"]
    command += ["127.0.0.1", str(port)]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, env=peers.PEER_ENV, capture_output=True, check=True, timeout=60)
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def bench_find(work: Path) -> None:
    print(f"C-FIND at STUDY level (median of {REPEAT}, ms; matches in brackets)")
    queries = {
        "exact UID": {"StudyInstanceUID": "1.2.826.0.1.3680043.10.543.7"},
        "one day": {"StudyDate": "20200808"},
        "PN wildcard": {"PatientName": "NAME42^*"},
        "universal (cap 1000)": {},
    }
    head = " ".join(f"{q:>22}" for q in queries)
    print(f"{'studies':>8} {'fill s':>7} {head}  findscu (exact, universal; process start incl.)")
    with FwliteServer(work / "fwlite-empty") as fwlite:
        for size in SIZES:
            port = peers.free_port()
            service = QRService(
                _config(
                    work / f"find-{size}",
                    fwlite,
                    port,
                    [{"ae_title": "BENCH", "host": "127.0.0.1", "port": 104}],
                ),
                fwlite.client(),
            )
            try:
                fill_s = _fill(service, size)
                service.server.start()
                results = _find_latency(port, queries)
                findscu_ms = (
                    _findscu_ms(port, "1.2.826.0.1.3680043.10.543.7"),
                    _findscu_ms(port, ""),
                )
            finally:
                service.server.stop()
                service.index.close()
            cells = " ".join(f"{ms:>15.1f} [{n:>4}]" for ms, n in results.values())
            exact, universal = findscu_ms
            print(f"{size:>8} {fill_s:>7.1f} {cells} {exact:>8.1f} {universal:>8.1f}", flush=True)


def _movescu_seconds(port: int, called: str, study: str, dest: str) -> float:
    command = ["movescu", "-S", "-aet", "BENCH", "-aec", called, "-aem", dest]
    command += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    command += ["127.0.0.1", str(port)]
    start = time.perf_counter()
    done = subprocess.run(command, env=peers.PEER_ENV, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"movescu to {called} failed: {done.stderr[-500:]}")
    return elapsed


def bench_move(work: Path) -> None:
    scp_port, qr_port = peers.free_port(), peers.free_port()
    spec = dicomgen.SeriesSpec(count=MOVE_IMAGES, rows=256, cols=256, patient_id="BENCH")
    paths = dicomgen.write_series(work / "move-series", spec)
    orthanc = OrthancServer(
        work / "orthanc",
        aet="ORTHANC",
        modalities={
            "BENCH": ("BENCH", "127.0.0.1", peers.free_port()),
            "STORESCP": ("STORESCP", "127.0.0.1", scp_port),
        },
    ).start()
    try:
        orthanc.upload_many(paths)
        with FwliteServer(work / "fwlite-move") as fwlite:
            seed_series(fwlite.client(), work, spec)  # the agent's own zip + upload path
            peer_list: list[dict[str, Any]] = [
                {"ae_title": "BENCH", "host": "127.0.0.1", "port": 104},
                {"ae_title": "STORESCP", "host": "127.0.0.1", "port": scp_port},
            ]
            service = QRService(_config(work / "move", fwlite, qr_port, peer_list), fwlite.client())
            try:
                start = time.perf_counter()
                service.refresher.refresh(full=True)
                index_s = time.perf_counter() - start
                service.server.start()
                times: dict[str, float] = {}
                for name, port, called in (
                    ("fwagent qr", qr_port, "FWQR"),
                    ("Orthanc", orthanc.dicom_port, "ORTHANC"),
                ):
                    out = work / f"received-{name.replace(' ', '-')}"
                    proc = peers.start_storescp(out, scp_port)
                    try:
                        times[name] = _movescu_seconds(port, called, spec.study_uid, "STORESCP")
                    finally:
                        peers.stop(proc)
                    received = len(list(out.iterdir()))
                    if received != MOVE_IMAGES:
                        raise RuntimeError(f"{name}: {received} of {MOVE_IMAGES} images arrived")
            finally:
                service.server.stop()
                service.index.close()
    finally:
        orthanc.stop()
    print(f"C-MOVE of one {MOVE_IMAGES}-image study (256x256 MR) to storescp, via movescu")
    print(f"  index refresh of that upload (download + headers): {index_s:.2f} s")
    for name, seconds in times.items():
        print(f"  {name:<11} {seconds:6.2f} s  {MOVE_IMAGES / seconds:7.1f} img/s")
    ratio = times["fwagent qr"] / times["Orthanc"]
    print(f"  fwagent qr takes {ratio:.2f}x Orthanc's time (data fetched from Flywheel per move)")


def main() -> None:
    peers.require("findscu", "movescu", "storescp", "Orthanc")
    with tempfile.TemporaryDirectory(prefix="bench-qr-") as tmp:
        work = Path(tmp)
        bench_find(work)
        bench_move(work)


if __name__ == "__main__":
    main()
    sys.exit(0)
