"""PUSH receive throughput against peers, agent memory, and last-image-to-upload latency.

storescu (TCP_NODELAY=1) sends the same 500-image series (256x256, ~132 KB each) to
(a) the agent, (b) pynetdicom's stock storescp app, (c) dcmtk's storescp. Target: (a) at
least 1.5x (b); (a)/(c) is printed as the limit to approach. Then 5,000 images to the
agent with its peak RSS sampled (target < 250 MB), and the time from the last image to the
upload confirmed in fwlite (target <= series_quiet_seconds + 3 s). Last, what the reactor
tuning of fwmapping.dimse buys: the same 500 images into the agent with and without it,
alternated, median of REACTOR_RUNS each (kept only while it buys >= 10 %).
"""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer

QUIET = 2.0
REACTOR_RUNS = 3
# the agent with fwmapping.dimse's reactor tuning refused, as on an unverified pynetdicom
UNTUNED = [
    "-c",
    "import runpy, sys; from fwmapping.dimse import reactor;"
    " reactor.VERIFIED = frozenset(); sys.argv[0] = 'fwagent';"
    " runpy.run_module('fwagent', run_name='__main__', alter_sys=True)",
]
REPO = Path(__file__).resolve().parents[1]


def send(port: int, files: Path, aec: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["storescu", "-aec", aec, "+sd", "127.0.0.1", str(port), str(files)],
        env=peers.PEER_ENV,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def start_agent(
    work: Path, fwlite: FwliteServer, python_args: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    work.mkdir(parents=True, exist_ok=True)
    port = peers.free_port()
    config = {
        "flywheel": {"api_key": fwlite.api_key},
        "spool_dir": str(work / "spool"),
        "spool_min_free_mb": 100,
        "push": {"port": port, "series_quiet_seconds": QUIET},
    }
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, *(python_args or ["-m", "fwagent"]), "run", "--config", str(path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("wb"),
    )
    peers.wait_for_port(port)
    return proc, port, work / "spool" / "state.sqlite"


def wait_uploaded(state: Path, series_uid: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(state, timeout=5) as db:
                row = db.execute(
                    "SELECT state FROM series WHERE series_uid=?", (series_uid,)
                ).fetchone()
            if row and row[0] == "uploaded":
                return time.perf_counter()
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    raise TimeoutError("upload not confirmed")


def reactor_gain(work: Path, fwlite: FwliteServer, files: Path) -> dict[str, float]:
    """img/s with and without the reactor tuning, alternated (the machine is noisy)."""
    rates: dict[str, list[float]] = {"tuned": [], "untuned": []}
    for run in range(REACTOR_RUNS):
        order = ["tuned", "untuned"] if run % 2 == 0 else ["untuned", "tuned"]
        for name in order:
            args = UNTUNED if name == "untuned" else None
            agent, port, _state = start_agent(work / f"reactor-{name}-{run}", fwlite, args)
            try:
                rates[name].append(500 / send(port, files, "FWAGENT"))
            finally:
                peers.stop(agent, timeout=30)
    tuned, untuned = (statistics.median(rates[k]) for k in ("tuned", "untuned"))
    return {"reactor_tuned_img_s": tuned, "reactor_untuned_img_s": untuned,
            "reactor_gain": tuned / untuned}  # fmt: skip


def main() -> dict[str, Any]:
    peers.require("storescu", "storescp")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        work = Path(tmp)
        spec = SeriesSpec(count=500, rows=256, cols=256)
        write_series(work / "series500", spec)
        fwlite = FwliteServer(work / "fwlite").start()
        try:
            # (a) the agent
            agent, port, state = start_agent(work / "a", fwlite)
            try:
                t_agent = send(port, work / "series500", "FWAGENT")
                last_image = time.perf_counter()
                confirmed = wait_uploaded(state, spec.series_uid)
                results["latency_s"] = confirmed - last_image
            finally:
                peers.stop(agent, timeout=30)
            # (b) pynetdicom's stock storescp app
            port_b = peers.free_port()
            (work / "b").mkdir()
            stock = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pynetdicom",
                    "storescp",
                    str(port_b),
                    "-od",
                    str(work / "b"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                peers.wait_for_port(port_b)
                t_stock = send(port_b, work / "series500", "STORESCP")
            finally:
                peers.stop(stock, timeout=30)
            # (c) dcmtk storescp
            port_c = peers.free_port()
            dcmtk = peers.start_storescp(work / "c", port_c)
            try:
                t_dcmtk = send(port_c, work / "series500", "STORESCP")
            finally:
                peers.stop(dcmtk)
            results.update(
                agent_img_s=500 / t_agent,
                pynetdicom_storescp_img_s=500 / t_stock,
                dcmtk_storescp_img_s=500 / t_dcmtk,
                agent_vs_pynetdicom=t_stock / t_agent,
                agent_vs_dcmtk=t_dcmtk / t_agent,
            )
            results.update(reactor_gain(work, fwlite, work / "series500"))
            # memory: 5,000 images into the agent
            big = SeriesSpec(count=5000, rows=64, cols=64)
            write_series(work / "series5000", big)
            agent, port, state = start_agent(work / "m", fwlite)
            peak = [0]
            done = threading.Event()

            def sample() -> None:
                process = psutil.Process(agent.pid)
                while not done.is_set():
                    try:
                        peak[0] = max(peak[0], process.memory_info().rss)
                    except psutil.Error:
                        return
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                t_big = send(port, work / "series5000", "FWAGENT")
                last_image = time.perf_counter()
                results["latency_5000_s"] = wait_uploaded(state, big.series_uid) - last_image
            finally:
                done.set()
                sampler.join()
                peers.stop(agent, timeout=30)
            results["agent_5000_img_s"] = 5000 / t_big
            results["agent_peak_rss_mb"] = peak[0] / 2**20
        finally:
            fwlite.stop()
    r = results
    print(
        f"500 x 132 KB: agent {r['agent_img_s']:.0f} img/s, pynetdicom storescp "
        f"{r['pynetdicom_storescp_img_s']:.0f} img/s, dcmtk storescp {r['dcmtk_storescp_img_s']:.0f} img/s"
    )
    print(
        f"ratio agent/pynetdicom-storescp {r['agent_vs_pynetdicom']:.2f}x (target >= 1.5x); "
        f"agent/dcmtk {r['agent_vs_dcmtk']:.2f}x (the limit to approach)"
    )
    print(
        f"last image -> upload confirmed: {r['latency_s']:.2f} s for 500 images, "
        f"{r['latency_5000_s']:.2f} s for 5,000 (target <= quiet {QUIET:.0f} s + 3 s)"
    )
    print(
        f"5,000 x 8 KB: {r['agent_5000_img_s']:.0f} img/s, agent peak RSS "
        f"{r['agent_peak_rss_mb']:.0f} MB (target < 250 MB)"
    )
    print(
        f"reactor tuning (fwmapping.dimse): {r['reactor_tuned_img_s']:.0f} img/s with,"
        f" {r['reactor_untuned_img_s']:.0f} img/s without, {r['reactor_gain']:.2f}x"
        f" (median of {REACTOR_RUNS} alternated runs each; kept only while >= 1.10x)"
    )
    return results


if __name__ == "__main__":
    main()
