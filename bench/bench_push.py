"""PUSH receive throughput against peers, agent memory, and last-image-to-upload latency.

storescu (TCP_NODELAY=1) sends the same 500-image series (256x256, ~132 KB each) to
(a) the agent (durable: every instance fsynced, renamed, its folder fsynced and its row
committed before 0x0000), (a') the agent with durability off (bench-only
``FW_BENCH_UNSAFE_NO_FSYNC=1``), (b) pynetdicom's stock storescp app, (c) dcmtk's storescp.
Neither peer fsyncs. Target: (a) at least 1.2x (b); (a)/(c) is printed as the limit to
approach. Then four storescu at once (100 images each, four series) into the agent under
``strace -f``: fsyncs per instance of each kind (file, directory, state), fewer than one
directory and state sync per instance when group commit works. Then 5,000 images to the
agent with its peak RSS sampled (target < 250 MB), and the time from the last image to the
upload confirmed in fwlite (target <= series_quiet_seconds + 3 s). Last, what the reactor
tuning of fwmapping.dimse buys: the same 500 images into the agent with and without it,
alternated, median of REACTOR_RUNS each (kept only while it buys >= 10 %).
"""

from __future__ import annotations

import os
import re
import shutil
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
    work: Path,
    fwlite: FwliteServer,
    python_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    wrap: list[str] | None = None,
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
        [
            *(wrap or []),
            sys.executable,
            *(python_args or ["-m", "fwagent"]),
            "run",
            "--config",
            str(path),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("wb"),
        env={**os.environ, **(env or {})},
    )
    peers.wait_for_port(port, timeout=60)
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


def stop_traced(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the agent under strace (strace itself would only detach), wait for both."""
    for child in psutil.Process(proc.pid).children():
        child.terminate()
    proc.wait(timeout=60)


# every call, whole or split by strace into "<unfinished ...>" + "resumed" (threads)
_SYNC = re.compile(r"^\d+\s+(?:fsync|fdatasync)\((\d+)<(?P<path>[^>]*)>")


def syncs_per_instance(trace: Path, spool: Path, count: int) -> dict[str, float]:
    """fsyncs of instance files, spool directories and the state database, per instance."""
    kinds = {"file": 0, "directory": 0, "state": 0}
    instances = str(spool / "instances")
    for line in trace.read_text().splitlines():
        match = _SYNC.match(line)
        if not match:
            continue
        path = match.group("path")
        if "state.sqlite" in path:
            kinds["state"] += 1
        elif path.startswith(str(spool / "tmp")) or path.endswith(".dcm"):
            kinds["file"] += 1
        elif path.startswith(instances):
            kinds["directory"] += 1
    return {kind: n / count for kind, n in kinds.items()}


def concurrent(work: Path, fwlite: FwliteServer, senders: int = 4, each: int = 100) -> dict:
    """``senders`` storescu at once into the agent under strace: syncs per instance."""
    for i in range(senders):
        write_series(work / f"c{i}", SeriesSpec(count=each, rows=128, cols=128))
    trace = work / "trace.txt"
    wrap = ["strace", "-f", "-qq", "-yy", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
    agent, port, _state = start_agent(work / "conc", fwlite, wrap=wrap)
    try:
        running = [
            subprocess.Popen(
                ["storescu", "-aec", "FWAGENT", "+sd", "127.0.0.1", str(port), str(work / f"c{i}")],
                env=peers.PEER_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(senders)
        ]
        for sender in running:
            sender.wait(timeout=300)
    finally:
        stop_traced(agent)
    return syncs_per_instance(trace, work / "conc" / "spool", senders * each)


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
            # (a') the agent, durability off (bench only: what the fsyncs cost)
            unsafe = {"FW_BENCH_UNSAFE_NO_FSYNC": "1"}
            agent, port, state = start_agent(work / "a-off", fwlite, env=unsafe)
            try:
                t_unsafe = send(port, work / "series500", "FWAGENT")
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
                agent_no_fsync_img_s=500 / t_unsafe,
                durable_vs_no_fsync=t_unsafe / t_agent,
                pynetdicom_storescp_img_s=500 / t_stock,
                dcmtk_storescp_img_s=500 / t_dcmtk,
                agent_vs_pynetdicom=t_stock / t_agent,
                agent_vs_dcmtk=t_dcmtk / t_agent,
            )
            results.update(reactor_gain(work, fwlite, work / "series500"))
            if shutil.which("strace"):
                results["syncs_per_instance_4_assoc"] = concurrent(work, fwlite)
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
        f"ratio agent (durable)/pynetdicom-storescp {r['agent_vs_pynetdicom']:.2f}x (target >= 1.2x;"
        f" neither peer fsyncs); agent/dcmtk {r['agent_vs_dcmtk']:.2f}x (the limit to approach)"
    )
    print(
        f"durability on vs off (FW_BENCH_UNSAFE_NO_FSYNC=1): {r['agent_img_s']:.0f} vs "
        f"{r['agent_no_fsync_img_s']:.0f} img/s ({r['durable_vs_no_fsync']:.2f}x)"
    )
    if "syncs_per_instance_4_assoc" in r:
        s = r["syncs_per_instance_4_assoc"]
        print(
            f"4 concurrent associations (group commit), fsyncs per instance: file "
            f"{s['file']:.2f}, directory {s['directory']:.2f}, state {s['state']:.2f}"
            " (target: directory and state < 1)"
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
