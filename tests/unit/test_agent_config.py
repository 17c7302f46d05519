"""agent.yaml loading: every DESIGN.md key, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fwagent.config import ConfigError, load_config

FULL = """
flywheel: {api_key: "127.0.0.1:8088:__force_insecure:KEY"}
spool_dir: /tmp/spool
timezone: Europe/Berlin
routing: {field: PatientComments, session_label_key: StudyID}
policy: {mode: opt-in, field: PatientID, strings: ["UPLOAD"]}
push:
  enabled: true
  ae_title: FWAGENT
  host: 0.0.0.0
  port: 11112
  allowed_calling_aets: [SCANNER1]
  allowed_hosts: [10.0.0.5]
  series_quiet_seconds: 10
  tls: {enabled: false, cert: "", key: "", ca: "", require_client_cert: true}
pull:
  enabled: true
  peer: {ae_title: PACS, host: 10.0.0.9, port: 4242}
  ae_title: FWPULL
  port: 11113
  method: c-get
  interval_seconds: 60
  tls: {enabled: false, cert: "", key: "", ca: ""}
"""


def test_every_key_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(FULL)
    config = load_config(path, environ={})
    assert config.flywheel.api_key.endswith(":KEY")
    assert config.spool_dir == Path("/tmp/spool")
    assert config.push.allowed_calling_aets == ("SCANNER1",)
    assert config.push.allowed_hosts == ("10.0.0.5",)
    assert config.pull.peer.host == "10.0.0.9" and config.pull.method == "c-get"
    mapping = config.mapping_config()
    assert mapping.routing_field == "PatientComments"
    assert mapping.timezone == "Europe/Berlin"
    assert mapping.policy.mode == "opt-in" and mapping.policy.strings == ("UPLOAD",)


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(FULL)
    env = {
        "FWAGENT_FLYWHEEL_API_KEY": "site.flywheel.io:OTHER",
        "FWAGENT_PUSH_PORT": "2104",
        "FWAGENT_PUSH_ALLOWED_CALLING_AETS": "A, B",
        "FWAGENT_PUSH_TLS_ENABLED": "false",
        "FWAGENT_PULL_PEER_PORT": "104",
        "FWAGENT_SPOOL_DIR": "/data/spool",
        "FWAGENT_POLICY_STRINGS": "NOFW,NO-UPLOAD",
    }
    config = load_config(path, environ=env)
    assert config.flywheel.api_key == "site.flywheel.io:OTHER"
    assert config.push.port == 2104
    assert config.push.allowed_calling_aets == ("A", "B")
    assert config.pull.peer.port == 104
    assert config.spool_dir == Path("/data/spool")
    assert config.policy.strings == ("NOFW", "NO-UPLOAD")
    assert load_config(None, environ=env).push.port == 2104  # env alone is enough


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("push: {port: eleven}", "push.port: expected an integer"),
        ("push: {prot: 1}", "push: unknown key(s) prot"),
        ("policy: {mode: maybe}", "policy.mode: must be opt-out or opt-in"),
        ("push: {tls: {enabled: true, cert: c.pem}}", "push.tls.key: required"),
        ("pull: {method: c-teleport}", "pull.method"),
        ("- a list", "top level must be a mapping"),
        ("push: [1, 2", "not valid YAML"),
    ],
)
def test_bad_config_says_which_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path, environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_pull_settings_from_the_environment() -> None:
    env = {
        "FWAGENT_PULL_ENABLED": "true",
        "FWAGENT_PULL_METHOD": "c-get",
        "FWAGENT_PULL_LOOKBACK_DAYS": "3",
        "FWAGENT_PULL_MARK_EXISTING_DONE": "yes",
        "FWAGENT_PULL_MAX_FAILURES": "2",
        "FWAGENT_PULL_INTERVAL_SECONDS": "15",
        "FWAGENT_PULL_PEER_AE_TITLE": "HOSPITALPACS",
        "FWAGENT_PULL_PEER_HOST": "pacs.example.org",
    }
    pull = load_config(None, environ=env).pull
    assert (pull.enabled, pull.method, pull.lookback_days) == (True, "c-get", 3)
    assert (pull.mark_existing_done, pull.max_failures, pull.interval_seconds) == (True, 2, 15.0)
    assert (pull.peer.ae_title, pull.peer.host) == ("HOSPITALPACS", "pacs.example.org")
    with pytest.raises(ConfigError, match="pull.method"):
        load_config(None, environ={"FWAGENT_PULL_METHOD": "c-teleport"})
