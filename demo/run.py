"""``make demo``: fwlite + the agent + a handful of studies sent over DICOM, end to end.

Starts fwlite (``python -m fwlite serve``) in a temporary directory with group ``psych`` and
project ``study01``, runs the agent with an embedded config, sends the sample studies
(:mod:`demo.samples`: full routing string, group only, no ``fw://``, a missing group, an
opt-out string) with dcmtk's storescu when installed, else with :mod:`demo.send`, waits
until every series is settled, prints the fwlite tree and stops everything it started.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from fwagent.agent import Agent
from fwagent.config import config_from_dict
from fwmapping.info import recorded_routing

from .samples import SAMPLES, write_study
from .send import send_files

API_KEY = "demo-key"
SETTLED = ("uploaded", "opted_out", "abandoned")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fwlite(data: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data.parent / "fwlite.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fwlite", "serve", "--data", str(data), "--port", str(port)]
        + ["--api-key", API_KEY],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fwlite exited at start, see {data.parent / 'fwlite.log'}")
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/version")
            request.add_header("Authorization", f"scitran-user {API_KEY}")
            urllib.request.urlopen(request, timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("fwlite did not start within 20 s")


def send(paths: list[Path], port: int) -> str:
    """Send with storescu when present (TCP_NODELAY=1 for Debian's build), else pynetdicom."""
    if shutil.which("storescu"):
        import os

        subprocess.run(
            ["storescu", "-aet", "SCANNER", "-aec", "FWAGENT", "127.0.0.1", str(port)]
            + [str(p) for p in paths],
            env={**os.environ, "TCP_NODELAY": "1"},
            check=True,
            capture_output=True,
        )
        return "dcmtk storescu"
    ok, failed = send_files(paths, "127.0.0.1", port, "FWAGENT", "SCANNER")
    if failed:
        raise RuntimeError(f"{failed} instances were refused")
    return "demo.send (pynetdicom)"


def run_demo(workdir: Path, quiet_seconds: float = 1.0, use_storescu: bool = True) -> dict:
    """Run the whole demo in workdir; return {"tree": [lines], "series": {state: n}, ...}."""
    import flywheel

    fw_port, agent_port = _free_port(), _free_port()
    fwlite = start_fwlite(workdir / "fwlite", fw_port)
    agent: Agent | None = None
    try:
        client = flywheel.Client(f"127.0.0.1:{fw_port}:__force_insecure:{API_KEY}")
        client.add_group(flywheel.Group(id="psych", label="Psychology"))
        client.get_group("psych").add_project(label="study01")
        config = config_from_dict(
            {
                "flywheel": {"api_key": client_key(fw_port), "retry_max_interval": 1},
                "spool_dir": str(workdir / "spool"),
                "spool_min_free_mb": 50,
                "push": {"port": agent_port, "series_quiet_seconds": quiet_seconds},
            }
        )
        agent = Agent(config)
        agent.start()
        paths: list[Path] = []
        for sample in SAMPLES:
            paths += write_study(workdir / "studies" / sample.description, sample)
        if use_storescu:
            how = send(paths, agent_port)
        else:
            send_files(paths, "127.0.0.1", agent_port, "FWAGENT", "SCANNER")
            how = "demo.send (pynetdicom)"
        expected = sum(len(s.series) for s in SAMPLES)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = agent.state.all_series()
            if len(rows) == expected and all(r.state in SETTLED for r in rows):
                break
            time.sleep(0.2)
        from fwlite.tree import tree_from_client

        return {
            "sender": how,
            "sent": len(paths),
            "series": agent.state.count_by_state(),
            "scanners": agent.state.scanner_counts(),
            "tree": list(tree_from_client(client)),
            "sessions": _sessions(client),
        }
    finally:
        if agent is not None:
            agent.stop()
        fwlite.terminate()
        try:
            fwlite.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fwlite.kill()
            fwlite.wait()


def client_key(port: int) -> str:
    return f"127.0.0.1:{port}:__force_insecure:{API_KEY}"


def _sessions(client: Any) -> list[tuple[str, str, str, str, str]]:
    """(group, project, subject, session, resolved placement) per session."""
    out = []
    for session in client.sessions():
        session = client.get_session(session.id)
        routing = recorded_routing(session.info) or {}
        out.append(
            (
                session.parents.group,
                client.get_project(session.parents.project).label,
                client.get_subject(session.parents.subject).label,
                session.label,
                routing.get("resolved", ""),
            )
        )
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  agent: %(message)s")
    for noisy in ("pynetdicom", "urllib3", "flywheel", "fwagent.receiver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print("Starting fwlite and the agent, sending the sample studies:")
    for sample in SAMPLES:
        print(f"  {sample.patient_id!r:28} {sample.why}")
    started = time.monotonic()
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_demo(workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="fwagent-demo-") as tmp:
            result = run_demo(Path(tmp))
    sys.stderr.flush()
    print(f"\nSent {result['sent']} images with {result['sender']}.")
    states = {k: v for k, v in result["series"].items() if v}
    print(f"Series: {states}  ({time.monotonic() - started:.1f} s)")
    for ae, c in sorted(result["scanners"].items()):  # what the status page shows per scanner
        print(
            f"Scanner {ae}: {c['received_instances']} images, {c['uploaded_series']} series"
            f" uploaded ({c['routed']} routed, {c['unsorted']} Unsorted, {c['unknown']} Unknown),"
            f" {c['opted_out_series']} opted out, {c['failed_series']} failed"
        )
    print("\nThe fwlite tree (where each study landed):")
    for line in result["tree"]:
        print("  " + line)
    return 0
