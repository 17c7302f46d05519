"""Durable before 0x0000 (issue 16.3), proven on the system calls of the running agent.

``fwagent run`` runs under ``strace -f -ttt -yy`` while dcmtk's storescu sends instances.
For every instance: its file is fsynced before it is renamed into the spool, and after the
rename, before the C-STORE response goes out on the association's socket, both the
instance's directory and the state database are synced. With four concurrent associations,
group commit shares those syncs: fewer than one of each kind per instance.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support import dicomgen, peers
from tests.support.agent_process import REPO

pytestmark = pytest.mark.peers

_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<time>\d+\.\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(
    r"^(?P<name>\w+)\((?P<args>.*?)(?:\)\s+=\s+(?P<ret>-?\d+).*| <unfinished \.\.\.>)$"
)
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>.*\)\s+=\s+(?P<ret>-?\d+)")
_FD_PATH = re.compile(r"^\d+<(?P<path>[^\[>]*(?:\[[^\]]*\])?)>")  # a path or TCP:[a->b]
_STRINGS = re.compile(r'"((?:[^"\\]|\\.)*)"')

SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2")
SENDS = ("sendto", "send", "sendmsg", "write", "writev")


@dataclass(frozen=True)
class Call:
    name: str
    time: float  # when the call returned (a sync or rename is done by then)
    started: float  # when it was made (a send is on its way from then)
    args: str
    ret: int

    @property
    def fd_path(self) -> str:
        match = _FD_PATH.match(self.args)
        return match.group("path") if match else ""

    @property
    def paths(self) -> list[str]:
        return _STRINGS.findall(self.args)


def parse_trace(text: str) -> list[Call]:
    """System calls in order of completion; unfinished calls joined with their resumption."""
    pending: dict[tuple[str, str], tuple[float, str]] = {}
    calls: list[Call] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        pid, when, rest = match.group("pid"), float(match.group("time")), match.group("rest")
        resumed = _RESUMED.match(rest)
        if resumed:
            started, args = pending.pop((pid, resumed.group("name")), (when, ""))
            calls.append(
                Call(resumed.group("name"), when, started, args, int(resumed.group("ret")))
            )
            continue
        call = _CALL.match(rest)
        if not call:
            continue
        if call.group("ret") is None:
            pending[(pid, call.group("name"))] = (when, call.group("args"))
            continue
        calls.append(
            Call(call.group("name"), when, when, call.group("args"), int(call.group("ret")))
        )
    calls.sort(key=lambda c: c.time)
    return calls


def _agent_under_strace(tmp_path: Path, trace: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = peers.free_port()
    spool = tmp_path / "spool"
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # nothing uploads during the test: the quiet period outlasts it
                "flywheel": {"api_key": "127.0.0.1:9:__force_insecure:KEY"},
                "spool_dir": str(spool),
                "spool_min_free_mb": 0,
                "push": {"port": port, "series_quiet_seconds": 3600},
            }
        )
    )
    command = [
        "strace", "-f", "-ttt", "-yy", "-qq", "-o", str(trace),
        "-e", "trace=" + ",".join((*SYNCS, *RENAMES, *SENDS)),
        sys.executable, "-m", "fwagent", "run", "--config", str(config),
    ]  # fmt: skip
    log = (tmp_path / "agent.log").open("ab")
    proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)
    try:
        peers.wait_for_port(port, timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return proc, port, spool


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM the agent itself (strace would only detach), then wait for strace."""
    for child in psutil.Process(proc.pid).children():
        child.terminate()
    return proc.wait(timeout=60)


def _is_socket_of(call: Call, port: int) -> bool:
    return f"TCP:[127.0.0.1:{port}->" in call.fd_path


def _rename_of(calls: list[Call], spool: Path, sop: str) -> Call:
    instances = str(spool / "instances")
    renames = [
        c for c in calls
        if c.name in RENAMES and c.ret == 0 and c.paths
        and c.paths[-1].startswith(instances) and c.paths[-1].endswith(f"/{sop}.dcm")
    ]  # fmt: skip
    assert len(renames) == 1, f"{sop}: expected one rename into the spool, got {renames}"
    rename = renames[0]
    temp = rename.paths[0]
    synced = [
        c for c in calls if c.name in SYNCS and c.fd_path == temp and c.time <= rename.started
    ]
    assert synced, f"{sop}: {temp} renamed before it was fsynced"
    return rename


def assert_durable_order(calls: list[Call], files: list[Path], spool: Path, port: int) -> None:
    """One association: file fsync < rename < directory + state sync < C-STORE response."""
    state_files = (str(spool / "state.sqlite"), str(spool / "state.sqlite-wal"))
    for path in files:
        sop = path.stem
        rename = _rename_of(calls, spool, sop)
        reply = next(
            (
                c
                for c in calls
                if c.name in SENDS and c.started >= rename.time and _is_socket_of(c, port)
            ),
            None,
        )
        assert reply is not None, f"{sop}: no C-STORE response after its rename"
        between = [c for c in calls if c.name in SYNCS and rename.time <= c.time <= reply.started]
        directory = str(Path(rename.paths[-1]).parent)
        assert any(c.fd_path == directory for c in between), (
            f"{sop}: directory {directory} not synced between the rename and the response"
        )
        assert any(c.fd_path in state_files for c in between), (
            f"{sop}: state database not synced between the rename and the response"
        )


def test_each_instance_is_synced_before_its_success_is_sent(tmp_path: Path) -> None:
    peers.require("storescu", "strace")
    files = dicomgen.write_series(tmp_path / "in", count=20)
    trace = tmp_path / "trace.txt"
    proc, port, spool = _agent_under_strace(tmp_path, trace)
    try:
        sent = peers.storescu(port, files)
        assert sent.returncode == 0, sent.stderr
    finally:
        assert _stop(proc) == 0
    assert_durable_order(parse_trace(trace.read_text()), files, spool, port)


@pytest.mark.slow
def test_concurrent_associations_share_syncs(tmp_path: Path) -> None:
    """Group commit: four associations at once need fewer than one sync of each kind per
    instance (the figure is printed; `make bench` prints it without strace's overhead)."""
    peers.require("storescu", "strace")
    # enough per sender that the four associations overlap even on an idle machine (25 each
    # could finish one after the other: nothing to share, 1.00 syncs per instance)
    per_sender, senders = 100, 4
    batches = [dicomgen.write_series(tmp_path / f"in{i}", count=per_sender) for i in range(senders)]
    trace = tmp_path / "trace.txt"
    proc, port, spool = _agent_under_strace(tmp_path, trace)
    try:
        running = [
            subprocess.Popen(
                peers.storescu_command(port, files),
                env=peers.PEER_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for files in batches
        ]
        for sender in running:
            assert sender.wait(timeout=120) == 0
    finally:
        assert _stop(proc) == 0
    calls = parse_trace(trace.read_text())
    instances = str(spool / "instances")
    count = per_sender * senders
    renames = [_rename_of(calls, spool, path.stem) for files in batches for path in files]
    # the syncs of the receiving window (not the agent's start-up or shutdown)
    first, last = min(r.time for r in renames), max(r.time for r in renames)
    window = [c for c in calls if c.name in SYNCS and first <= c.time <= last + 1.0]
    directory_syncs = [
        c for c in window if c.fd_path.startswith(instances) and not c.fd_path.endswith(".dcm")
    ]
    state_syncs = [c for c in window if "state.sqlite" in c.fd_path]
    print(
        f"fsyncs per instance, {senders} associations: directory {len(directory_syncs) / count:.2f},"
        f" state {len(state_syncs) / count:.2f}"
    )
    assert 0 < len(directory_syncs) < count
    assert 0 < len(state_syncs) < count
