"""Several replicas, one real PostgreSQL state, one shared spool (issue 14): instances of a
series arriving at different replicas over several associations make one upload, once;
a replica killed mid-series or mid-upload loses nothing and doubles nothing; pull polls on
one leader only, and another takes over when it dies."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import peers
from tests.support.agent_process import status as agent_status
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.replicas import Replica, make_replicas, stop_all
from tests.support.site_files import zip_members

pytestmark = [pytest.mark.peers, pytest.mark.slow]


def base_config(tmp_path: Path, fwlite: FwliteServer, url: str, quiet: float) -> dict[str, Any]:
    return {
        "flywheel": {
            "api_key": fwlite.api_key,
            "retry_max_seconds": 120,
            "retry_max_interval": 0.5,
            "failed_retry_seconds": 1,
        },
        "spool_dir": str(tmp_path / "spool"),
        "spool_min_free_mb": 0,
        "state_url": url,
        "state_lease_seconds": 3,
        "push": {"series_quiet_seconds": quiet},
    }


def db_rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


def uploads(fwlite: FwliteServer) -> int:
    """Successful uid uploads fwlite answered (one per acquisition per series pass)."""
    return sum(
        1
        for r in fwlite.requests()
        if r["method"] == "POST" and r["path"].startswith("/api/upload") and r["status"] == 200
    )


def site_series(fw: Any) -> dict[str, list[str]]:
    """{acquisition label: zip members} of every acquisition on the site; every
    acquisition holds exactly one file."""
    out: dict[str, list[str]] = {}
    for acquisition in fw.acquisitions():
        assert acquisition.label not in out, f"{acquisition.label} uploaded as two acquisitions"
        out[acquisition.label] = zip_members(fw, acquisition.id)
    return out


def send_all(jobs: list[tuple[int, list[Path]]]) -> list[str]:
    """storescu runs at once, one association each; each must end with every store a success."""
    procs = [
        subprocess.Popen(
            peers.storescu_command(port, paths, extra=["-v"]),
            env=peers.PEER_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port, paths in jobs
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for proc, out, (_, paths) in zip(procs, outputs, jobs, strict=True):
        assert proc.returncode == 0, out[-800:]
        assert out.count("Received Store Response (Success)") == len(paths), out[-800:]
    return outputs


def all_settled(url: str, n_series: int) -> bool:
    rows = db_rows(url, "SELECT state, COUNT(*) FROM series GROUP BY state")
    counts = dict(rows)
    waiting = db_rows(url, "SELECT COUNT(*) FROM instances")[0][0]
    return (
        counts.get("uploaded", 0) == n_series and sum(counts.values()) == n_series and not waiting
    )


def test_three_replicas_interleaved_series_with_duplicates_upload_each_once(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, pg_url: str
) -> None:
    peers.require("storescu")
    replicas = make_replicas(tmp_path, base_config(tmp_path, fwlite, pg_url, quiet=5), 3)
    per_series = 12
    series = [
        write_series(
            tmp_path / f"s{s}",
            SeriesSpec(count=per_series, series_description=f"Series {s:02d}", series_number=s),
        )
        for s in range(10)
    ]
    # instance i of series s goes to replica (i + s) % 3, in one of two associations
    # per replica; each association interleaves its slices of all ten series
    jobs: dict[tuple[int, int], list[Path]] = {}
    for i in range(per_series):
        for s, paths in enumerate(series):
            jobs.setdefault(((i + s) % 3, i % 2), []).append(paths[i])
    # duplicates: the first three instances of every series again, to another replica
    dupes: dict[int, list[Path]] = {}
    for s, paths in enumerate(series):
        for i in range(3):
            dupes.setdefault((i + s + 1) % 3, []).append(paths[i])
    try:
        for r in replicas:
            r.start()
        send_all(
            [(replicas[r].port, paths) for (r, _), paths in sorted(jobs.items())]
            + [(replicas[r].port, paths) for r, paths in sorted(dupes.items())]
        )
        wait_until(lambda: all_settled(pg_url, 10), timeout=90, every=0.3)
        on_site = site_series(fw)
        assert sorted(on_site) == [f"Series {s:02d}" for s in range(10)]
        for s, paths in enumerate(series):
            expected = sorted(f"Series {s:02d}/{p.name}" for p in paths)
            assert on_site[f"Series {s:02d}"] == expected  # complete, no duplicate member
        assert uploads(fwlite) == 10  # each series uploaded once, by one replica
        # every replica received, and the uploads were spread over more than one of them
        logs = [r.log_text() for r in replicas]
        uploaders = [log.count("instances uploaded to") for log in logs]
        assert sum(uploaders) == 10, uploaders
        counts = db_rows(pg_url, "SELECT uploaded_count FROM series ORDER BY series_uid")
        assert [c for (c,) in counts] == [per_series] * 10
        assert list((tmp_path / "spool" / "instances").rglob("*.dcm")) == []
    finally:
        assert stop_all(replicas) == [0, 0, 0]


def test_replica_killed_mid_series_and_mid_upload_loses_and_doubles_nothing(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, pg_url: str
) -> None:
    peers.require("storescu")
    replicas = make_replicas(tmp_path, base_config(tmp_path, fwlite, pg_url, quiet=2), 3)
    a = write_series(tmp_path / "a", SeriesSpec(count=150, series_description="A"))
    b = write_series(
        tmp_path / "b", SeriesSpec(count=400, rows=128, cols=128, series_description="B")
    )
    try:
        for r in replicas:
            r.start()
        first, second, third = replicas
        # mid-series: second dies while series A streams into it
        sender = subprocess.Popen(
            peers.storescu_command(second.port, a, extra=["-v"]),
            env=peers.PEER_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until(
            lambda: db_rows(pg_url, "SELECT COUNT(*) FROM instances")[0][0] >= 40,
            timeout=30,
            every=0.005,
        )
        second.kill9()
        output, _ = sender.communicate(timeout=60)
        acknowledged = output.count("Received Store Response (Success)")
        assert 0 < acknowledged < 150, output[-500:]
        # the scanner retries the whole series through the Service: another replica
        send_all([(third.port, a)])
        wait_until(lambda: all_settled(pg_url, 1), timeout=60, every=0.2)
        assert site_series(fw) == {"A": sorted(f"A/{p.name}" for p in a)}
        assert uploads(fwlite) == 1

        # mid-upload: the replica that claimed series B dies while it zips it (uploads are
        # refused meanwhile, so even a slow kill cannot let that attempt through)
        fwlite.set_fault(status=503, path_prefix="/api/upload")
        send_all([(first.port, b[: len(b) // 2]), (third.port, b[len(b) // 2 :])])
        work = tmp_path / "spool" / "work"
        wait_until(lambda: list(work.glob("*/*.zip.part")), timeout=30, every=0.002)
        (owner,) = db_rows(pg_url, "SELECT owner FROM series WHERE state = 'uploading'")[0]
        pid = int(owner.split(":")[1])
        (holder,) = [r for r in replicas if r.alive and r.pid == pid]
        survivor = first if holder is third else third
        holder.kill9()
        in_flight = agent_status(survivor.config)["uploading"]
        assert [u["owner"] for u in in_flight] == [owner]  # the dead replica's lease, live
        fwlite.clear_fault()
        wait_until(lambda: all_settled(pg_url, 2), timeout=60, every=0.2)
        on_site = site_series(fw)
        assert on_site == {
            "A": sorted(f"A/{p.name}" for p in a),
            "B": sorted(f"B/{p.name}" for p in b),
        }
        assert uploads(fwlite) == 2  # A once, B once: nothing doubled
        assert f"series {b_uid(b)}: {len(b)} instances uploaded to" in survivor.log_text()
        (count_b,) = db_rows(
            pg_url, "SELECT uploaded_count FROM series WHERE series_uid = %s", b_uid(b)
        )
        assert count_b == (len(b),)
    finally:
        stop_all(replicas)


def b_uid(paths: list[Path]) -> str:
    import pydicom

    return str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)


def test_pull_runs_on_one_leader_and_another_takes_over(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, pg_url: str
) -> None:
    peers.require("Orthanc")
    from tests.support.orthanc import OrthancServer

    pull_ports = [peers.free_port() for _ in range(2)]
    modalities = {
        f"agent{i}": (f"FWAGENT{i}", "127.0.0.1", port) for i, port in enumerate(pull_ports)
    }
    orthanc = OrthancServer(tmp_path / "orthanc", modalities=modalities).start()
    base = base_config(tmp_path, fwlite, pg_url, quiet=1)
    base["pull"] = {
        "enabled": True,
        "peer": {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
        "interval_seconds": 2,
        "lookback_days": 0,
    }

    def own_pull_port(i: int, config: dict[str, Any]) -> None:
        config["pull"] = {**config["pull"], "ae_title": f"FWAGENT{i}", "port": pull_ports[i]}

    replicas = make_replicas(tmp_path, base, 2, own_pull_port)
    one = write_series(tmp_path / "one", SeriesSpec(count=5, series_description="One"))
    two = write_series(tmp_path / "two", SeriesSpec(count=7, series_description="Two"))
    try:
        for r in replicas:
            r.start()
        orthanc.upload_many(one)
        wait_until(lambda: all_settled(pg_url, 1), timeout=60, every=0.2)
        leaders = [r for r in replicas if "this replica is the pull leader" in r.log_text()]
        assert len(leaders) == 1, [r.log_text()[-1500:] for r in replicas]
        (leader,) = leaders
        (other,) = [r for r in replicas if r is not leader]
        assert "pull: polling" in other.log_text()  # configured, but waiting for the lock
        leader.kill9()
        killed = time.monotonic()
        orthanc.upload_many(two)
        wait_until(
            lambda: "this replica is the pull leader" in other.log_text(), timeout=15, every=0.1
        )
        assert time.monotonic() - killed <= 2 + 5 + 1  # within one interval (+ its lock retry)
        wait_until(lambda: all_settled(pg_url, 2), timeout=60, every=0.2)
        assert site_series(fw) == {
            "One": sorted(f"One/{p.name}" for p in one),
            "Two": sorted(f"Two/{p.name}" for p in two),
        }
        assert uploads(fwlite) == 2  # the new leader did not pull "One" again
    finally:
        stop_all(replicas)
        orthanc.stop()


def test_echo_and_status_speak_for_the_shared_state(
    tmp_path: Path, fwlite: FwliteServer, pg_url: str
) -> None:
    import yaml

    from tests.support.agent_process import fwagent

    config = base_config(tmp_path, fwlite, pg_url, quiet=1)
    config["push"]["enabled"] = False
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(config))
    out = fwagent("echo", "--config", str(good))
    assert "OK   shared state: PostgreSQL at postgresql://fwagent@127.0.0.1:" in out.stdout
    out = fwagent("status", "--config", str(good))
    assert out.returncode == 0 and '"instances_waiting": 0' in out.stdout
    closed = peers.free_port()
    config["state_url"] = f"postgresql://fwagent:secret@127.0.0.1:{closed}/nowhere"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = fwagent("echo", "--config", str(bad))
    assert out.returncode == 1
    (line,) = [x for x in out.stdout.splitlines() if "shared state" in x]
    assert line.startswith("FAIL shared state: state_url postgresql://fwagent:***@127.0.0.1:")
    assert "secret" not in out.stdout + out.stderr
    out = fwagent("status", "--config", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("fwagent status: cannot open the state: state_url postgresql://")
    out = fwagent("run", "--config", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "fwagent run: cannot start: state_url postgresql://fwagent:***@" in out.stderr


def test_a_second_agent_on_one_sqlite_spool_refuses_to_start(
    tmp_path: Path, fwlite: FwliteServer
) -> None:
    """Without a shared state_url, replicas on one spool would clean each other's files and
    share one SQLite file: the second stops with one line and the first carries on."""
    import yaml

    from tests.support.agent_process import fwagent

    config = base_config(tmp_path, fwlite, "", quiet=1)
    (first,) = make_replicas(tmp_path, config, 1)
    second_yaml = tmp_path / "second.yaml"
    config["push"]["port"] = peers.free_port()
    second_yaml.write_text(yaml.safe_dump(config))
    try:
        first.start()
        out = fwagent("run", "--config", str(second_yaml))
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert (
            f"fwagent run: cannot start: spool_dir {tmp_path / 'spool'} is in use by another"
            f" fwagent (pid {first.pid} on "
        ) in out.stderr
        assert "need a shared state_url" in out.stderr
        assert first.alive
        first.kill9()  # the kernel releases the lock of a killed agent
        restarted = Replica("restarted", second_yaml, config["push"]["port"], tmp_path / "r.log")
        restarted.start()
        assert restarted.stop() == 0
    finally:
        stop_all([first])
