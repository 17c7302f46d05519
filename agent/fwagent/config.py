"""agent.yaml -> typed configuration (DESIGN.md section 3).

Every key may be overridden by an environment variable ``FWAGENT_<SECTION>_<KEY>``
(nested sections joined by ``_``), e.g. ``FWAGENT_FLYWHEEL_API_KEY``, ``FWAGENT_PUSH_PORT``,
``FWAGENT_PUSH_TLS_ENABLED``, ``FWAGENT_SPOOL_DIR``. Lists in the environment are
comma-separated. Bad values raise :class:`ConfigError` with a one-line message naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fwmapping import MappingConfig, Policy, SentTag

ENV_PREFIX = "FWAGENT_"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class FlywheelConfig:
    api_key: str = ""
    # how long one series may keep retrying before it is parked as "failed" (it is retried
    # again on the next sweep; nothing is ever dropped)
    retry_max_seconds: float = 300.0
    retry_max_interval: float = 30.0  # cap of one backoff wait
    failed_retry_seconds: float = 60.0  # a parked "failed" series is tried again after this


@dataclass(frozen=True)
class RoutingConfig:
    field: str = "PatientID"
    session_label_key: str = "StudyDescription"


@dataclass(frozen=True)
class PolicyConfig:
    mode: str = "opt-out"
    field: str | None = None
    strings: tuple[str, ...] = ("NOFW",)


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    cert: str = ""
    key: str = ""
    ca: str = ""
    require_client_cert: bool = True


@dataclass(frozen=True)
class PushConfig:
    enabled: bool = True
    ae_title: str = "FWAGENT"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_calling_aets: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    series_quiet_seconds: float = 10.0
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class PeerConfig:
    ae_title: str = "PACS"
    host: str = "127.0.0.1"
    port: int = 4242


@dataclass(frozen=True)
class PullConfig:
    enabled: bool = False
    peer: PeerConfig = field(default_factory=PeerConfig)
    ae_title: str = "FWAGENT"
    port: int = 11113
    method: str = "c-move"
    interval_seconds: float = 60.0
    tls: TlsConfig = field(default_factory=TlsConfig)
    # C-FIND only studies whose StudyDate is within this many days (0 = no bound)
    lookback_days: int = 7
    # first start: treat everything already on the peer as done (no back-fill)
    mark_existing_done: bool = False
    # failed retrievals back off exponentially; after max_failures the series is
    # "abandoned" and shown with its reason in `fwagent status` (new images retry it)
    max_failures: int = 5
    retry_backoff_seconds: float = 60.0
    retry_backoff_max_seconds: float = 3600.0
    # series not seen by a poll for this long are forgotten (abandoned ones are kept)
    forget_after_seconds: float = 604800.0
    retrieve_timeout_seconds: float = 600.0
    dimse_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class SentTagConfig:
    """The dicom-send gear's private tag; files carrying it are not re-ingested."""

    group: int = 0x0021
    creator: str = "Flywheel"
    value: str = "DICOM send"


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True)
class AgentConfig:
    flywheel: FlywheelConfig = field(default_factory=FlywheelConfig)
    spool_dir: Path = Path("/var/lib/fwagent")
    # below this much free space in spool_dir the receiver answers Out of Resources (0xA700)
    spool_min_free_mb: float = 500.0
    timezone: str = "UTC"
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    push: PushConfig = field(default_factory=PushConfig)
    pull: PullConfig = field(default_factory=PullConfig)
    sent_tag: SentTagConfig = field(default_factory=SentTagConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log_level: str = "INFO"

    @property
    def state_path(self) -> Path:
        return self.spool_dir / "state.sqlite"

    def mapping_config(self) -> MappingConfig:
        """The fwmapping.MappingConfig these settings describe."""
        return MappingConfig(
            routing_field=self.routing.field,
            session_label_key=self.routing.session_label_key,
            timezone=self.timezone,
            policy=Policy(
                mode=self.policy.mode, field=self.policy.field, strings=self.policy.strings
            ),
            sent_tag=SentTag(
                group=self.sent_tag.group, creator=self.sent_tag.creator, value=self.sent_tag.value
            ),
        )


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Read agent.yaml (optional: defaults + environment only), apply env overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded
    env = os.environ if environ is None else environ
    _apply_env(AgentConfig, raw, env, [])
    config = _build(AgentConfig, raw, [])
    _validate(config)
    return config


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser expected and where (PyYAML's own text spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def config_from_dict(raw: dict[str, Any]) -> AgentConfig:
    """Build a config from an in-memory mapping (no environment overrides)."""
    config = _build(AgentConfig, dict(raw), [])
    _validate(config)
    return config


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply_env(cls: type, raw: dict[str, Any], env: Mapping[str, str], path: list[str]) -> None:
    """Copy FWAGENT_<SECTION>_<KEY> values into the raw mapping (as strings, coerced later)."""
    for name, hint in _hints(cls).items():
        here = [*path, name]
        if dataclasses.is_dataclass(hint):
            sub = raw.get(name)
            if sub is None:
                sub = {}
            if isinstance(sub, dict):
                _apply_env(typing.cast(type, hint), sub, env, here)
                if sub:
                    raw[name] = sub
            continue
        key = ENV_PREFIX + "_".join(here).upper()
        if key in env:
            raw[name] = _EnvValue(env[key])


class _EnvValue(str):
    """A string that came from the environment (lists are comma-separated)."""


def _build(cls: type, raw: Any, path: list[str]) -> Any:
    where = ".".join(path) or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = _hints(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    values: dict[str, Any] = {}
    for name, hint in hints.items():
        if name not in raw:
            continue
        here = [*path, name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(typing.cast(type, hint), raw[name], here)
        else:
            values[name] = _coerce(hint, raw[name], ".".join(here))
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        empty = value is None or (isinstance(value, _EnvValue) and value.strip() == "")
        if empty and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is tuple:
        if isinstance(value, str):
            items: list[Any] = [v.strip() for v in str(value).split(",") if v.strip()]
        elif value is None:
            items = []
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], item, where) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip(), 0)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint is Path:
        if not isinstance(value, str | Path) or str(value) == "":
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(os.path.expanduser(str(value)))
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, dict | list):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _validate(config: AgentConfig) -> None:
    if config.policy.mode not in ("opt-out", "opt-in"):
        raise ConfigError(f"policy.mode: must be opt-out or opt-in, got {config.policy.mode!r}")
    if config.pull.method not in ("c-move", "c-get"):
        raise ConfigError(f"pull.method: must be c-move or c-get, got {config.pull.method!r}")
    for section, port in (("push", config.push.port), ("pull", config.pull.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{section}.port: {port} is not a TCP port")
    if not 0 <= config.pull.peer.port <= 65535:
        raise ConfigError(f"pull.peer.port: {config.pull.peer.port} is not a TCP port")
    for section, title in (("push", config.push.ae_title), ("pull", config.pull.ae_title)):
        if not title or len(title) > 16:
            raise ConfigError(f"{section}.ae_title: must be 1-16 characters, got {title!r}")
    if config.push.series_quiet_seconds < 0:
        raise ConfigError("push.series_quiet_seconds: must not be negative")
    if config.pull.interval_seconds <= 0:
        raise ConfigError("pull.interval_seconds: must be positive")
    for section, tls in (("push", config.push.tls), ("pull", config.pull.tls)):
        if tls.enabled:
            for key in ("cert", "key"):
                if not getattr(tls, key):
                    raise ConfigError(f"{section}.tls.{key}: required when tls.enabled is true")
            if section == "push" and tls.require_client_cert and not tls.ca:
                raise ConfigError(
                    "push.tls.ca: required when tls.require_client_cert is true (mutual TLS)"
                )
            for key in ("cert", "key", "ca"):
                name = getattr(tls, key)
                if name and not Path(name).is_file():
                    raise ConfigError(f"{section}.tls.{key}: {name} is not a readable file")
    if not 0 <= config.sent_tag.group <= 0xFFFF or config.sent_tag.group % 2 == 0:
        raise ConfigError(
            f"sent_tag.group: must be an odd (private) group, got {config.sent_tag.group:#06x}"
        )
