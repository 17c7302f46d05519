"""Scale-out: aggregate receive throughput with 1, 2 and 3 replicas, and what a state row
costs in PostgreSQL against SQLite.

(1) SENDERS storescu processes at once (TCP_NODELAY=1), each sending its own series,
spread round-robin over the replicas (what a TCP load balancer does with associations).
The replicas share one spool and one PostgreSQL state (fsync on, the server's defaults);
the quiet period is long, so the figure is receiving alone. A single agent on SQLite
is the baseline. Same machine for everything: replicas compete for its cores with the
senders and the database, so this shows the overhead of sharing, not a cluster's scaling.

(2) ``State.record_instance`` (the row committed before each C-STORE is answered) and one
claim + finish per instance, in-process, on SQLite (WAL, synchronous=NORMAL) and on
PostgreSQL over loopback TCP (fsync on, synchronous_commit on).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.postgres import PostgresServer
from tests.support.replicas import Replica, make_replicas, stop_all

SENDERS = 6
PER_SENDER = 150
ROWS = 128  # 128x128 16-bit: ~33 KB per instance
ROW_SAMPLES = 1000


def send_at_once(jobs: list[tuple[int, Path]]) -> float:
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["storescu", "-aec", "FWAGENT", "+sd", "127.0.0.1", str(port), str(folder)],
            env=peers.PEER_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port, folder in jobs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode(errors='replace')[-500:]}")
    return time.perf_counter() - started


def receive_rate(work: Path, folders: list[Path], replicas: int, url: str) -> float:
    base = {
        "flywheel": {"api_key": "127.0.0.1:9:__force_insecure:unused"},
        "spool_dir": str(work / "spool"),
        "spool_min_free_mb": 0,
        "state_url": url,
        "push": {"series_quiet_seconds": 3600},  # receive only: nothing is uploaded
        "log_level": "WARNING",
    }
    work.mkdir(parents=True)
    running: list[Replica] = make_replicas(work, base, replicas)
    try:
        for replica in running:
            replica.start()
        jobs = [(running[i % replicas].port, folder) for i, folder in enumerate(folders)]
        elapsed = send_at_once(jobs)
    finally:
        stop_all(running)
    return len(folders) * PER_SENDER / elapsed


def row_costs(url: str, work: Path) -> tuple[float, float]:
    """(record_instance µs, claim + finish µs per instance) on one backend."""
    from fwagent.state import UPLOADED, State

    state = State(work / "state.sqlite", url=url)
    try:
        times = []
        for n in range(ROW_SAMPLES):
            started = time.perf_counter()
            state.record_instance(
                f"1.2.{n}", f"9.{n // 50}", "8.1", work / f"{n}.dcm", 1000, now=1.0 + n
            )
            times.append(time.perf_counter() - started)
        record = statistics.median(times) * 1e6
        started = time.perf_counter()
        series = ROW_SAMPLES // 50
        for s in range(series):
            claimed = state.claim(f"9.{s}")
            assert claimed is not None
            state.finish(f"9.{s}", UPLOADED, claimed[0], claimed[1])
        cycle = (time.perf_counter() - started) / ROW_SAMPLES * 1e6
    finally:
        state.close()
    return record, cycle


def main() -> dict[str, Any]:
    peers.require("storescu")
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp,
        PostgresServer(fsync=True) as pg,
    ):
        work = Path(tmp)
        folders = []
        for i in range(SENDERS):
            folder = work / f"series{i}"
            write_series(folder, SeriesSpec(count=PER_SENDER, rows=ROWS, cols=ROWS))
            folders.append(folder)
        results["sqlite_1"] = receive_rate(work / "sqlite", folders, 1, "")
        for n in (1, 2, 3):
            results[f"pg_{n}"] = receive_rate(work / f"pg{n}", folders, n, pg.new_database())
        results["rows_sqlite"] = row_costs("", work / "rows-sqlite")
        results["rows_pg"] = row_costs(pg.new_database(), work / "rows-pg")
    r = results
    total = SENDERS * PER_SENDER
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (everything shares them)")
    print(
        f"{SENDERS} senders at once, {total} x {ROWS}x{ROWS} MR, one shared spool: "
        f"1 agent on SQLite {r['sqlite_1']:.0f} img/s; on PostgreSQL: 1 replica "
        f"{r['pg_1']:.0f}, 2 replicas {r['pg_2']:.0f}, 3 replicas {r['pg_3']:.0f} img/s "
        f"(3 vs 1: {r['pg_3'] / r['pg_1']:.2f}x on this machine's cores)"
    )
    (rec_sqlite, cyc_sqlite), (rec_pg, cyc_pg) = r["rows_sqlite"], r["rows_pg"]
    print(
        f"state per instance: record (before C-STORE success) SQLite {rec_sqlite:.0f} us, "
        f"PostgreSQL {rec_pg:.0f} us ({rec_pg / rec_sqlite:.1f}x); claim + finish per instance "
        f"SQLite {cyc_sqlite:.0f} us, PostgreSQL {cyc_pg:.0f} us"
    )
    return results


if __name__ == "__main__":
    main()
