"""Edge de-identification: what the agent's wrapper costs, and what de-id costs the agent.

1. Throughput: the same 300 small instances (128x128) de-identified with the site profile
   (tests/support/deid/site-profile.yaml) by flywheel-migration's own ``process_files``
   alone (one process, the whole folder in one call), and by the agent's de-id service
   (instances recorded in the spool, handed over one by one as the receiver hook does, until
   every copy is recorded); alternated, best of 3 each. Target: agent >= 0.8x the library.
2. Latency: 500 instances (256x256) sent at a scanner-like ~50 images/s to ``fwagent run``
   with the profile on; last image -> upload confirmed. Target <= series_quiet_seconds + 3 s.
3. Memory: 5,000 instances (64x64) with the profile on; peak RSS of the agent and of agent
   + de-id worker together (the worker is recycled, so the library's hash cache is
   bounded). Target < 250 MB.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pydicom
import yaml

from tests.support import peers
from tests.support.fwlite_server import FwliteServer
from tests.support.phi import PROFILE, phi_spec, write_phi_series

QUIET = 2.0
REPO = Path(__file__).resolve().parents[1]
RATE = 50.0  # images per second, like a scanner
ROUNDS = 3


def library_alone(profile: str, src: str, dst: str) -> float:
    """Runs in a fresh process: process_files on the whole folder, timed without imports."""
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    from flywheel_migration.deidentify import load_profile
    from fs.osfs import OSFS

    file_profile = load_profile(profile).get_file_profile("dicom")
    names = sorted(p.name for p in Path(src).iterdir())
    started = time.perf_counter()
    file_profile.process_files(OSFS(src), OSFS(dst), names)
    return time.perf_counter() - started


def agent_service(work: Path, files: list[Path]) -> float:
    """The agent's path: spool + state rows, the hook per instance, until all recorded."""
    from fwagent.deid.service import Deidentifier
    from fwagent.receiver import Spool
    from fwagent.state import State

    spool = Spool(work / "spool")
    state = State(work / "spool" / "state.sqlite")
    deid = Deidentifier(PROFILE, spool.root, state.path)
    deid.start()  # validates in the worker: the worker is warm, as in a running agent
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    for path, ds in zip(files, headers, strict=True):
        dest = spool.instance_path(ds.SeriesInstanceUID, ds.SOPInstanceUID)
        shutil.copyfile(path, dest)
    try:
        started = time.perf_counter()
        for ds in headers:
            dest = spool.instance_path(ds.SeriesInstanceUID, ds.SOPInstanceUID)
            state.record_instance(
                ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, dest, 1
            )
            deid.on_stored(ds.SeriesInstanceUID, ds.SOPInstanceUID)
        copies = deid.copies(state.instances())
        elapsed = time.perf_counter() - started
        assert len(copies) == len(files)
        return elapsed
    finally:
        deid.stop()
        state.close()


def start_agent(work: Path, fwlite: FwliteServer) -> tuple[subprocess.Popen[bytes], int, Path]:
    work.mkdir(parents=True, exist_ok=True)
    port = peers.free_port()
    config = {
        "flywheel": {"api_key": fwlite.api_key},
        "spool_dir": str(work / "spool"),
        "spool_min_free_mb": 100,
        "push": {"port": port, "series_quiet_seconds": QUIET},
        "deid": {"profile": str(PROFILE)},
    }
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fwagent", "run", "--config", str(path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("wb"),
    )
    peers.wait_for_port(port, timeout=60)
    return proc, port, work / "spool" / "state.sqlite"


def send_paced(port: int, files: list[Path], rate: float, batch: int = 10) -> None:
    """storescu in batches of ``batch`` so the average rate is ``rate`` images/s."""
    started = time.perf_counter()
    for first in range(0, len(files), batch):
        due = started + first / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        chunk = [str(p) for p in files[first : first + batch]]
        subprocess.run(
            ["storescu", "-aec", "FWAGENT", "127.0.0.1", str(port), *chunk],
            env=peers.PEER_ENV,
            check=True,
            capture_output=True,
        )


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(the agent's RSS, the agent's plus its children's)."""
    own = proc.memory_info().rss
    total = own
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return own, total


def main() -> dict[str, Any]:
    from bench.bench_push import wait_uploaded

    peers.require("storescu")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-deid-") as tmp:
        work = Path(tmp)
        # 1. throughput, same files both ways
        small = write_phi_series(work / "small", phi_spec(count=300, rows=128, cols=128))
        import multiprocessing

        # alternated, best of ROUNDS each: this machine is shared, one run is noise
        lib_times, agent_times = [], []
        for n in range(ROUNDS):
            (work / f"lib-out{n}").mkdir()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                lib_times.append(
                    pool.submit(
                        library_alone, str(PROFILE), str(work / "small"), str(work / f"lib-out{n}")
                    ).result()
                )
            agent_times.append(agent_service(work / f"svc{n}", small))
        t_lib, t_agent = min(lib_times), min(agent_times)
        results.update(
            library_files_s=300 / t_lib, agent_files_s=300 / t_agent, ratio=t_lib / t_agent
        )

        fwlite = FwliteServer(work / "fwlite").start()
        try:
            # 2. latency at a scanner's pace
            spec = phi_spec(count=500, rows=256, cols=256)
            paths = write_phi_series(work / "s500", spec)
            agent, port, state = start_agent(work / "a", fwlite)
            try:
                send_paced(port, paths, RATE)
                last_image = time.perf_counter()
                results["latency_s"] = wait_uploaded(state, spec.series_uid) - last_image
            finally:
                peers.stop(agent, timeout=60)
            # 3. memory over 5,000 instances
            big = phi_spec(count=5000, rows=64, cols=64)
            write_phi_series(work / "s5000", big)
            agent, port, state = start_agent(work / "m", fwlite)
            peak = [0, 0]
            done = threading.Event()

            def sample() -> None:
                process = psutil.Process(agent.pid)
                while not done.is_set():
                    try:
                        own, total = tree_rss(process)
                    except psutil.Error:
                        return
                    peak[0], peak[1] = max(peak[0], own), max(peak[1], total)
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                subprocess.run(
                    ["storescu", "-aec", "FWAGENT", "+sd", "127.0.0.1", str(port)]
                    + [str(work / "s5000")],
                    env=peers.PEER_ENV,
                    check=True,
                    capture_output=True,
                )
                last_image = time.perf_counter()
                results["latency_5000_s"] = (
                    wait_uploaded(state, big.series_uid, timeout=900) - last_image
                )
            finally:
                done.set()
                sampler.join()
                peers.stop(agent, timeout=60)
            results["agent_rss_mb"] = peak[0] / 2**20
            results["agent_and_worker_rss_mb"] = peak[1] / 2**20
        finally:
            fwlite.stop()
    r = results
    print(
        f"de-id 300 x 32 KB: flywheel-migration process_files alone {r['library_files_s']:.0f}"
        f" files/s, agent de-id service {r['agent_files_s']:.0f} files/s:"
        f" {r['ratio']:.2f}x (target >= 0.8x)"
    )
    print(
        f"500 x 132 KB at ~{RATE:.0f} img/s with de-id: last image -> upload confirmed"
        f" {r['latency_s']:.2f} s (target <= quiet {QUIET:.0f} s + 3 s)"
    )
    print(
        f"5,000 x 8 KB with de-id: peak RSS agent {r['agent_rss_mb']:.0f} MB, agent + de-id"
        f" worker {r['agent_and_worker_rss_mb']:.0f} MB (target < 250 MB);"
        f" last image -> upload {r['latency_5000_s']:.1f} s"
    )
    return results


if __name__ == "__main__":
    main()
