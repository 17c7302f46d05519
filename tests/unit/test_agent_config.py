"""agent.yaml loading: every DESIGN.md key, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fwagent.config import (
    AgentConfig,
    ConfigError,
    QrPeerConfig,
    config_from_dict,
    load_config,
)
from fwmapping import MappingConfig, Policy, SentTag, SettingError

from gears.dicom_send import config as send_config

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


def readme_config() -> str:
    """The agent.yaml block of README.md (what a site copies)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Configuration (`agent.yaml`)", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def leaf_keys(data: object, prefix: str = "") -> set[str]:
    if isinstance(data, dict):
        keys: set[str] = set()
        for name, value in data.items():
            keys |= leaf_keys(value, f"{prefix}.{name}" if prefix else str(name))
        return keys
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return leaf_keys(data[0], prefix + "[]")
    return {prefix}


def test_readme_block_loads_and_documents_every_key(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(readme_config())
    config = load_config(path, environ={})  # no unknown key, no bad value
    model = AgentConfig().model_dump(mode="json")
    model["qr"]["peers"] = [QrPeerConfig(ae_title="X", host="h", port=1).model_dump()]
    # pull.tls has push.tls's shape, but the pull only dials out: no client certs to require
    documented = leaf_keys(yaml.safe_load(readme_config())) | {"pull.tls.require_client_cert"}
    assert documented == leaf_keys(model)
    defaults = AgentConfig()
    # the documented values are the defaults (except the example key and peer)
    for section in ("push", "pull", "metrics", "deid", "routing", "sent_tag"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert config.qr.model_copy(update={"peers": ()}) == defaults.qr


def test_new_keys_and_their_defaults(tmp_path: Path) -> None:
    config = load_config(None, environ={})
    assert config.push.max_associations_per_host == 10
    assert config.state_url == "" and config.deid.profile == ""
    assert (config.metrics.basic_auth.user, config.metrics.basic_auth.password_file) == ("", "")
    qr = config.qr
    assert (qr.enabled, qr.ae_title, qr.host, qr.port, qr.max_results) == (
        False,
        "FWQR",
        "127.0.0.1",
        11114,
        1000,
    )
    assert qr.peers == () and qr.tls == config.push.tls
    profile = tmp_path / "deid.yaml"
    profile.write_text("name: site\n")
    password = tmp_path / "metrics.pw"
    password.write_text("secret\n")
    path = tmp_path / "agent.yaml"
    path.write_text(
        "qr:\n  enabled: true\n  peers:\n"
        "    - {ae_title: VIEWER, host: 10.0.0.7, port: 104, move: false}\n"
        "    - {ae_title: WS2, host: ws2.example.org, port: 11112}\n"
    )
    env = {
        "FWAGENT_STATE_URL": "postgresql://fwagent@db/fwagent",
        "FWAGENT_DEID_PROFILE": str(profile),
        "FWAGENT_PUSH_MAX_ASSOCIATIONS_PER_HOST": "3",
        "FWAGENT_METRICS_BASIC_AUTH_USER": "prometheus",
        "FWAGENT_METRICS_BASIC_AUTH_PASSWORD_FILE": str(password),
        "FWAGENT_QR_PORT": "2104",
        "FWAGENT_QR_MAX_RESULTS": "50",
        "FWAGENT_SENT_TAG_GROUP": "0x0023",
        "FWAGENT_CONFIG": "ignored: it names the file",
        "FWAGENT_DEBUG": "1",
    }
    config = load_config(path, environ=env)
    assert config.state_url == "postgresql://fwagent@db/fwagent"
    assert config.deid.profile == str(profile)
    assert config.push.max_associations_per_host == 3
    assert config.metrics.basic_auth.user == "prometheus"
    assert (config.qr.enabled, config.qr.port, config.qr.max_results) == (True, 2104, 50)
    viewer, ws2 = config.qr.peers
    assert (viewer.ae_title, viewer.host, viewer.port) == ("VIEWER", "10.0.0.7", 104)
    assert (viewer.find, viewer.move, viewer.get) == (True, False, True)
    assert (ws2.find, ws2.move, ws2.get) == (True, True, True)
    assert config.mapping_config().sent_tag == SentTag(group=0x0023)


def test_mapping_settings_are_fwmappings_own_types(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(FULL + "sent_tag: {group: 0x0029, creator: ACME, value: sent}\n")
    mapping = load_config(path, environ={}).mapping_config()
    assert mapping == MappingConfig(
        routing_field="PatientComments",
        session_label_key="StudyID",
        timezone="Europe/Berlin",
        policy=Policy(mode="opt-in", field="PatientID", strings=("UPLOAD",)),
        sent_tag=SentTag(group=0x0029, creator="ACME", value="sent"),
    )


@pytest.mark.parametrize("group", [0x0001, 0x0003, 0x0005, 0x0007, 0x0010, 0x10001])
def test_agent_and_dicom_send_refuse_the_same_groups(tmp_path: Path, group: int) -> None:
    """One rule: groups 0x0001-0x0007 are odd but not private; fwmapping refuses them and
    the agent and dicom-send report its refusal."""
    with pytest.raises(SettingError):
        SentTag(group=group)
    with pytest.raises(ConfigError, match=r"^sent_tag\.group: must be an odd group number"):
        config_from_dict({"sent_tag": {"group": group}})
    with pytest.raises(send_config.ConfigError):
        send_config.load({"destination": "h", "called_ae": "A", "group": hex(group)}, bool)


TOO_LONG = 10 * 365 * 86400 + 1
BAD_VALUES = [
    ("push: {series_quiet_seconds: .nan}", "push.series_quiet_seconds: expected a finite number"),
    ("flywheel: {retry_max_seconds: .inf}", "flywheel.retry_max_seconds: expected a finite"),
    ("flywheel: {retry_max_interval: 0}", "flywheel.retry_max_interval: must be > 0, got 0"),
    ("flywheel: {failed_retry_seconds: -1}", "flywheel.failed_retry_seconds: must be >= 0, got -1"),
    ("spool_min_free_mb: -5", "spool_min_free_mb: must be >= 0, got -5"),
    ("spool_min_free_mb: .inf", "spool_min_free_mb: expected a finite number, got inf"),
    ("pull: {interval_seconds: 0}", "pull.interval_seconds: must be >= 1, got 0"),
    ("pull: {interval_seconds: 1e-300}", "pull.interval_seconds: must be >= 1, got 1e-300"),
    ("pull: {interval_seconds: 0.5}", "pull.interval_seconds: must be >= 1, got 0.5"),
    ("spool_min_free_mb: 1e300", "spool_min_free_mb: must be at most 1000000000"),
    ("spool_min_free_mb: 1000000001", "spool_min_free_mb: must be at most 1000000000"),
    (f"pull: {{forget_after_seconds: {TOO_LONG}}}", "pull.forget_after_seconds: must be at most"),
    ("pull: {retrieve_timeout_seconds: 1e300}", "pull.retrieve_timeout_seconds: must be at most"),
    (
        "pull: {lookback_days: 1000000000000}",
        "pull.lookback_days: must be at most 36500, got 1000000000000",
    ),
    ("pull: {max_failures: 0}", "pull.max_failures: must be >= 1, got 0"),
    ("push: {port: 0}", "push.port: must be >= 1, got 0"),
    ("push: {port: 65536}", "push.port: must be at most 65535, got 65536"),
    ("pull: {peer: {port: -1}}", "pull.peer.port: must be >= 1, got -1"),
    ("metrics: {port: 99999}", "metrics.port: must be at most 65535, got 99999"),
    ("qr: {port: 0}", "qr.port: must be >= 1, got 0"),
    ("push: {max_associations_per_host: 0}", "push.max_associations_per_host: must be >= 1, got 0"),
    ("push: {port: true}", "push.port: expected an integer, got True"),
    ("push: {port: 10.5}", "push.port: expected an integer, got 10.5"),
    ("spool_dir: ''", "spool_dir: expected a path, got ''"),
    ("pull: {method: c-teleport}", "pull.method: must be 'c-move' or 'c-get', got 'c-teleport'"),
    ("timezone: Mars/Olympus", "timezone: unknown timezone 'Mars/Olympus'"),
    ("routing: {field: PatientIdd}", "routing.field: must be a DICOM keyword"),
    ("routing: {session_label_key: ''}", "routing.session_label_key: must be a DICOM keyword"),
    ("policy: {field: Comments}", "policy.field: must be a DICOM keyword"),
    ("policy: {mode: opt-in, strings: []}", "policy.strings: must name at least one string"),
    ("sent_tag: {group: 0x0003}", "sent_tag.group: must be an odd group number 0x0009-0xFFFF"),
    ("sent_tag: {creator: ''}", "sent_tag.creator: must not be empty"),
    (f"sent_tag: {{value: {'x' * 65}}}", "sent_tag.value: must be at most 64 characters"),
    ("push: {ae_title: THIS_TITLE_IS_TOO_LONG}", "push.ae_title: must be 1-16 characters"),
    ("pull: {peer: {host: ''}}", "pull.peer.host: must name a host"),
    ("flywheel: {api_key: justakey}", "flywheel.api_key: must look like site.flywheel.io:KEY"),
    ("state_url: mysql://u:pw@db/x", "state_url: must be empty (SQLite under spool_dir) or a"),
    ("deid: {profile: /no/profile.yaml}", "deid.profile: /no/profile.yaml is not a readable file"),
    ("metrics: {basic_auth: {user: prom}}", "metrics.basic_auth.password_file: required"),
    ("metrics: {basic_auth: {password_file: /x}}", "metrics.basic_auth.user: required"),
    ("qr: {tls: {enabled: true, cert: c, key: k}}", "qr.tls.ca: required when"),
    ("qr: {peers: [{ae_title: A, host: h}]}", "qr.peers[0].port: required"),
    ("qr: {peers: [{ae_title: A, host: h, port: 1, store: true}]}", "qr.peers[0]: unknown key(s)"),
    (
        "qr: {peers: [{ae_title: A, host: h, port: 1}, {ae_title: A, host: i, port: 2}]}",
        "qr.peers[1].ae_title: 'A' is listed twice",
    ),
    ("qr: {peers: VIEWER}", "qr.peers: expected a list, got 'VIEWER'"),
    ("qr: {max_results: 0}", "qr.max_results: must be >= 1, got 0"),
    ("log_level: LOUD", "log_level: must be one of DEBUG, INFO"),
    ("deid: {profile: x, rules: y}", "deid: unknown key(s) rules"),
    ("colour: blue\nspool_dir: /tmp/x", "config: unknown key(s) colour"),
]


@pytest.mark.parametrize(("text", "message"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FWAGENT_PUSH_PROT": "1"}, "FWAGENT_PUSH_PROT: names no agent.yaml key (did you mean"),
        ({"FWAGENT_PUSH_TLS": "on"}, "FWAGENT_PUSH_TLS: names a section, not a key"),
        ({"FWAGENT_APIKEY": "a:b"}, "FWAGENT_APIKEY: names no agent.yaml key"),
        ({"FWAGENT_QR_PEERS": "A@h:1"}, "FWAGENT_QR_PEERS: qr.peers is a list of objects"),
        ({"FWAGENT_PUSH_PORT": "0"}, "push.port: must be >= 1, got 0 (from FWAGENT_PUSH_PORT)"),
        ({"FWAGENT_PUSH_SERIES_QUIET_SECONDS": "nan"}, "push.series_quiet_seconds: expected a"),
        ({"FWAGENT_TIMEZONE": "Nowhere"}, "timezone: unknown timezone 'Nowhere'"),
        ({"FWAGENT_PUSH_TLS_ENABLED": "maybe"}, "push.tls.enabled: expected true/false"),
    ],
)
def test_bad_environment_is_refused_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ=env)
    assert str(caught.value).startswith(message), str(caught.value)
