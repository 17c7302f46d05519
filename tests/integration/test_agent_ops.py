"""Operating the agent as a user would: the Prometheus endpoint, ``fwagent status`` and
``fwagent echo`` against a running ``fwagent run`` (subprocess), dcmtk's storescu and fwlite
through the real flywheel-sdk; bad configuration files."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import flywheel
import pytest
from fwagent.state import STATES
from prometheus_client.parser import text_string_to_metric_families

from tests.support import peers
from tests.support.agent_process import (
    fwagent,
    start_agent,
    status,
    stop_agent,
    user_env,
    write_config,
)
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.site_files import zip_members


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics: {(sample name, sorted labels): value} for the fwagent_ samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("fwagent_"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """Sum of one sample name over all its label sets (0 when absent)."""
    return sum(v for (n, _), v in samples.items() if n == name)


def make_site(fw: Any) -> None:
    fw.add_group(flywheel.Group(id="psych", label="Psychology"))
    fw.get_group("psych").add_project(label="study01")


def test_metrics_endpoint_counts_exactly(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    make_site(fw)
    metrics_port = peers.free_port()
    config, port = write_config(
        tmp_path, fwlite, quiet=1.5, metrics={"enabled": True, "port": metrics_port}
    )
    paths = write_series(tmp_path / "a", SeriesSpec(count=3, patient_id="fw://psych/study01/s1"))
    paths += write_series(tmp_path / "b", SeriesSpec(count=2, patient_id="fw://psych/study01/s2"))
    paths += write_series(tmp_path / "c", SeriesSpec(count=1, patient_id="fw://psych/x NOFW"))
    # the first upload is refused for good (400: no backoff retry): one failed upload, after
    # which the parked series is tried again (failed_retry_seconds) and goes through
    fwlite.set_fault(status=400, count=1, path_prefix="/api/upload")
    agent = start_agent(config, port, tmp_path / "agent.log")
    try:
        before = scrape(metrics_port)
        assert value(before, "fwagent_received_instances_total") == 0
        assert value(before, "fwagent_upload_seconds_count") == 0
        sent = peers.storescu(port, paths)
        assert sent.returncode == 0, sent.stderr
        # every instance waits in the spool until the series go quiet
        wait_until(lambda: value(scrape(metrics_port), "fwagent_queue_depth") == 6, timeout=10)
        assert value(scrape(metrics_port), "fwagent_uploaded_series_total") == 0
        done = wait_until(
            lambda: (
                (s := scrape(metrics_port))
                and value(s, "fwagent_uploaded_series_total") == 2
                and value(s, "fwagent_queue_depth") == 0
                and s
            ),
            timeout=20,
        )
    finally:
        assert stop_agent(agent) == 0
    scanner = ("calling_ae", "STORESCU")  # storescu's default calling AE title
    assert done[("fwagent_received_instances_total", (scanner, ("source", "push")))] == 6
    assert value(done, "fwagent_received_instances_total") == 6
    assert done[("fwagent_uploaded_series_total", (scanner, ("placement", "routed")))] == 2
    assert value(done, "fwagent_uploaded_instances_total") == 5
    assert done[("fwagent_failed_uploads_total", (scanner,))] == 1
    assert value(done, "fwagent_failed_uploads_total") == 1
    assert done[("fwagent_opted_out_series_total", (scanner,))] == 1
    assert value(done, "fwagent_opted_out_series_total") == 1
    assert value(done, "fwagent_queue_depth") == 0
    assert value(done, "fwagent_upload_seconds_count") == 2
    assert value(done, "fwagent_upload_seconds_sum") > 0
    assert value(done, "fwagent_dropped_instances_total") == 0
    assert value(done, "fwagent_quarantined_instances_total") == 0
    assert value(done, "fwagent_receive_errors_total") == 0
    # what the counters say is what Flywheel holds
    sessions = fw.sessions()
    assert sorted(fw.get_subject(s.parents.subject).label for s in sessions) == ["s1", "s2"]
    members = [
        len(zip_members(fw, a.id)) for s in sessions for a in fw.get_session_acquisitions(s.id)
    ]
    assert sorted(members) == [2, 3]


def test_a_series_parked_again_and_again_is_one_failed_series(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    """fwagent_failed_uploads_total counts failed series, not long waits: one series refused
    three times (parked each time) and then uploaded counts once, so a dashboard's
    uploaded / (uploaded + failed) stays 50%, not 25%."""
    make_site(fw)
    metrics_port = peers.free_port()
    config, port = write_config(
        tmp_path, fwlite, quiet=0.5, metrics={"enabled": True, "port": metrics_port}
    )
    paths = write_series(tmp_path / "a", SeriesSpec(count=2, patient_id="fw://psych/study01/s1"))
    fwlite.set_fault(status=400, count=3, path_prefix="/api/upload")
    agent = start_agent(config, port, tmp_path / "agent.log")
    try:
        sent = peers.storescu(port, paths)
        assert sent.returncode == 0, sent.stderr
        done = wait_until(
            lambda: (
                (s := scrape(metrics_port)) and value(s, "fwagent_uploaded_series_total") == 1 and s
            ),
            timeout=30,
        )
    finally:
        assert stop_agent(agent) == 0
    parks = (tmp_path / "agent.log").read_text().count("upload failed (attempt")
    assert parks == 3  # refused three times, each parked for failed_retry_seconds
    assert value(done, "fwagent_failed_uploads_total") == 1


def test_status_prints_counts_and_failures_with_reasons(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    make_site(fw)
    config, port = write_config(tmp_path, fwlite, quiet=0.5)
    uploaded = SeriesSpec(count=2, patient_id="fw://psych/study01/s1")
    opted_out = SeriesSpec(count=2, patient_id="fw://psych/study01/s2 NOFW")
    paths = write_series(tmp_path / "a", uploaded) + write_series(tmp_path / "b", opted_out)
    agent = start_agent(config, port, tmp_path / "agent.log")
    try:
        sent = peers.storescu(port, paths)
        assert sent.returncode == 0, sent.stderr
        first = wait_until(
            lambda: (
                (s := status(config))["series"]["uploaded"] == 1
                and s["series"]["opted_out"] == 1
                and s
            ),
            timeout=15,
        )
        assert set(first) >= {"series", "instances_waiting", "counters", "failures", "quarantine"}
        assert set(first["series"]) == set(STATES)
        assert all(isinstance(n, int) for n in first["series"].values())
        assert sum(first["series"].values()) == 2
        assert first["instances_waiting"] == 0
        assert first["failures"] == [] and first["quarantine"] == []
        assert first["counters"].get("opted_out_series") == 1

        # Flywheel refuses uploads: the next series is parked as failed with the reason
        fwlite.set_fault(status=403, path_prefix="/api/upload")
        failing = SeriesSpec(count=1, patient_id="fw://psych/study01/s3")
        sent = peers.storescu(port, write_series(tmp_path / "c", failing))
        assert sent.returncode == 0, sent.stderr
        failed = wait_until(lambda: (s := status(config))["series"]["failed"] == 1 and s)
        (failure,) = failed["failures"]
        assert failure["series_uid"] == failing.series_uid
        assert failure["state"] == "failed" and failure["attempts"] >= 1
        assert "HTTP 403" in failure["last_error"]
        assert failed["instances_waiting"] == 1  # kept until Flywheel confirms
        fwlite.clear_fault()
        after = wait_until(lambda: (s := status(config))["series"]["uploaded"] == 2 and s)
        assert after["failures"] == [] and after["instances_waiting"] == 0
    finally:
        assert stop_agent(agent) == 0
    raw = fwagent("status", "--config", str(config))
    assert raw.returncode == 0 and raw.stderr == ""
    assert len(fw.sessions()) == 2


def test_echo_against_running_agent_then_stopped_fwlite(
    tmp_path: Path, fwlite: FwliteServer
) -> None:
    config, port = write_config(tmp_path, fwlite)
    agent = start_agent(config, port, tmp_path / "agent.log")
    site = f"127.0.0.1:{fwlite.port}"
    try:
        ok = fwagent("echo", "--config", str(config), env=user_env())
        assert ok.returncode == 0, ok.stdout + ok.stderr
        lines = ok.stdout.splitlines()
        assert lines[0] == f"OK   push SCP FWAGENT@127.0.0.1:{port}: C-ECHO answered success"
        assert lines[1].startswith("OK   Flywheel: authenticated as ")
        assert lines[1].endswith(f" at {site}") and len(lines) == 2
        assert ok.stderr == ""

        fwlite.stop()
        started = time.monotonic()
        down = fwagent("echo", "--config", str(config), env=user_env())
        elapsed = time.monotonic() - started
    finally:
        assert stop_agent(agent) == 0
    # the SDK's own retries (minutes) are not the user's wait: one attempt, a plain verdict
    assert elapsed < 10, elapsed
    assert down.returncode == 1
    lines = down.stdout.splitlines()
    assert lines[0].startswith("OK   push SCP")
    assert lines[1].startswith(f"FAIL Flywheel: cannot reach Flywheel at {site}: ")
    assert "refused" in lines[1].lower()
    assert "Traceback" not in down.stderr and down.stderr == ""


BAD_CONFIGS = {
    "unknown key": ("push: {port: 11112, prot: 4}\n", "push: unknown key(s) prot"),
    "wrong type": ("push: {port: eleven}\n", "push.port: expected an integer, got 'eleven'"),
    "wrong section type": ("flywheel: [a, b]\n", "flywheel: expected a mapping, got list"),
    "not yaml": ("push: {port: 1\n", "is not valid YAML: "),
    "missing file": (None, "cannot read config "),
    "missing certificate": (
        "push: {tls: {enabled: true, cert: /no/cert.pem, key: /no/key.pem, ca: /no/ca.pem}}\n",
        "push.tls.cert: /no/cert.pem is not a readable file",
    ),
}


@pytest.mark.parametrize("command", ["run", "status", "echo"])
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    for name, (text, expected) in BAD_CONFIGS.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        if text is not None:
            path.write_text(text)
        result = fwagent(command, "--config", str(path))
        where = f"{command} / {name}: {result.stderr!r}"
        assert result.returncode == 2, where
        assert result.stdout == "", where
        lines = result.stderr.splitlines()
        assert len(lines) == 1, where
        assert lines[0].startswith("fwagent: bad configuration: "), where
        assert expected in lines[0], where
        assert "Traceback" not in result.stderr, where
    assert not (tmp_path / "spool").exists()


KEY = "flywheel: {api_key: '127.0.0.1:1:__force_insecure:KEY'}\n"
REFUSED_AT_START = {
    "NaN duration": (KEY + "push: {series_quiet_seconds: .nan}", {}, "push.series_quiet_seconds: "),
    "negative size": (KEY + "spool_min_free_mb: -1", {}, "spool_min_free_mb: must be >= 0"),
    "huge wait": (KEY + "pull: {interval_seconds: 1e300}", {}, "pull.interval_seconds: must be at"),
    "port 0": (KEY + "push: {port: 0}", {}, "push.port: must be >= 1, got 0"),
    "unknown timezone": (KEY + "timezone: Mars/Base", {}, "timezone: unknown timezone 'Mars/Base'"),
    "not private": (KEY + "sent_tag: {group: 0x0003}", {}, "sent_tag.group: must be an odd group"),
    "empty api_key": ("push: {port: 11112}", {}, "flywheel.api_key: required"),
    "empty api_key env": (KEY, {"FWAGENT_FLYWHEEL_API_KEY": ""}, "flywheel.api_key: required"),
    "unknown env": (KEY, {"FWAGENT_PUSH_PROT": "104"}, "FWAGENT_PUSH_PROT: names no agent.yaml"),
    "list env": (KEY, {"FWAGENT_QR_PEERS": "A"}, "FWAGENT_QR_PEERS: qr.peers is a list of objects"),
    "unknown qr key": (KEY + "qr: {peer: []}", {}, "qr: unknown key(s) peer"),
}


def test_run_refuses_bad_values_at_start_with_one_line(tmp_path: Path) -> None:
    """Values that used to be accepted and then failed forever (or raised OverflowError)
    stop ``fwagent run`` before it binds or writes anything."""
    for name, (text, env, expected) in REFUSED_AT_START.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(f"spool_dir: {tmp_path / 'spool'}\n{text}\n")
        result = fwagent("run", "--config", str(path), env={**user_env(), **env})
        where = f"{name}: {result.stderr!r}"
        assert result.returncode == 2, where
        assert result.stdout == "", where
        assert result.stderr.splitlines() == [result.stderr.strip()], where
        assert result.stderr.startswith(f"fwagent: bad configuration: {expected}"), where
    assert not (tmp_path / "spool").exists()


def test_unusable_tls_files_stop_the_agent_with_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"flywheel: {{api_key: '127.0.0.1:1:__force_insecure:KEY'}}\n"
        f"spool_dir: {tmp_path / 'spool'}\nspool_min_free_mb: 0\n"
        f"push: {{port: {peers.free_port()}, tls: {{enabled: true, cert: {junk}, "
        f"key: {junk}, ca: {junk}}}}}\n"
    )
    result = fwagent("run", "--config", str(config))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"fwagent run: cannot start: TLS cert {junk}" in result.stderr
