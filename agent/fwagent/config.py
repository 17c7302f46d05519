"""agent.yaml -> typed configuration (DESIGN.md sections 3 and 5), as pydantic models.

Every key may be overridden by an environment variable ``FWAGENT_<SECTION>_<KEY>``
(nested sections joined by ``_``), e.g. ``FWAGENT_FLYWHEEL_API_KEY``, ``FWAGENT_PUSH_PORT``,
``FWAGENT_PUSH_TLS_ENABLED``, ``FWAGENT_SPOOL_DIR``. Lists in the environment are
comma-separated. A ``FWAGENT_`` variable that names no key, an unknown yaml key and a bad
value all raise :class:`ConfigError` with a one-line message naming the key.

The mapping settings (routing, timezone, policy, sent_tag) are checked by fwmapping's own
types only; their errors are reported here under the yaml key.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fwmapping import MappingConfig, Policy, SentTag, SettingError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

ENV_PREFIX = "FWAGENT_"
# FWAGENT_ variables that are not agent.yaml keys
ENV_NOT_KEYS = frozenset({"FWAGENT_CONFIG", "FWAGENT_DEBUG"})
MAX_SECONDS = 10 * 365 * 86400  # longer waits overflow the clock and mean a typo
MAX_DAYS = 100 * 365
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STATE_URL_SCHEMES = ("postgresql", "postgres")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


# --- value types: pydantic parses and checks; these only keep what agent.yaml always took
# (empty = default-like, comma lists and 0x numbers from the environment, ~ in paths)


def _text(value: Any) -> Any:
    """None -> "" and scalars as written (``ae_title: 123``); mappings stay an error."""
    if value is None:
        return ""
    return str(value) if isinstance(value, bool | int | float) else value


def _flag(value: Any) -> Any:
    return value.strip() or "false" if isinstance(value, str) else value


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)  # 0x0021 from the environment
        except ValueError:
            return value  # pydantic says it is not an integer
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _names(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(_text(item) for item in value)
    return value


def _optional(value: Any) -> Any:
    text = _text(value)
    return None if isinstance(text, str) and not text.strip() else text


def _path(value: Any) -> Any:
    if value is None or value == "":
        raise ValueError(f"expected a path, got {value!r}")
    return Path(os.path.expanduser(value)) if isinstance(value, str) else value


def _ae_title(title: str) -> str:
    if not title.strip() or len(title) > 16 or "\\" in title:
        raise ValueError(f"must be 1-16 characters without backslash, got {title!r}")
    return title


def _host(host: str) -> str:
    if not host.strip():
        raise ValueError("must name a host (name or IP address)")
    return host.strip()


Str = Annotated[str, BeforeValidator(_text)]
Bool = Annotated[bool, BeforeValidator(_flag)]
Int = Annotated[int, BeforeValidator(_integer)]
Float = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
Port = Annotated[Int, Field(ge=1, le=65535)]
Count = Annotated[Int, Field(ge=1)]
Days = Annotated[Int, Field(ge=0, le=MAX_DAYS)]
Seconds = Annotated[Float, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[Float, Field(gt=0, le=MAX_SECONDS)]
# pull.interval_seconds: a C-FIND every cycle; below a second it hammers the PACS
PollSeconds = Annotated[Float, Field(ge=1, le=MAX_SECONDS)]
# spool_min_free_mb: 1e9 MB is a petabyte; above that no disk ever meets the floor and
# every C-STORE is answered Out of Resources forever
MAX_FREE_MB = 1e9
Megabytes = Annotated[Float, Field(ge=0, le=MAX_FREE_MB)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
DirPath = Annotated[Path, BeforeValidator(_path)]
AeTitle = Annotated[Str, AfterValidator(_ae_title)]
Host = Annotated[Str, AfterValidator(_host)]
OptionalStr = Annotated[str | None, BeforeValidator(_optional)]

# pydantic's error types -> the one line a site reads ("{input}" is the value given)
_PROBLEMS = {
    "int_parsing": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "int_type": "expected an integer, got {input!r}",
    "int_parsing_size": "expected an integer, got {input!r}",
    "float_parsing": "expected a number, got {input!r}",
    "float_type": "expected a number, got {input!r}",
    "finite_number": "expected a finite number, got {input!r}",
    "bool_parsing": "expected true/false, got {input!r}",
    "bool_type": "expected true/false, got {input!r}",
    "string_type": "expected a string, got {input!r}",
    "path_type": "expected a path, got {input!r}",
    "tuple_type": "expected a list, got {input!r}",
    "list_type": "expected a list, got {input!r}",
    "greater_than_equal": "must be >= {ge}, got {input}",
    "greater_than": "must be > {gt}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "literal_error": "must be {expected}, got {input!r}",
    "missing": "required",
}


class Section(BaseModel):
    """A mapping in agent.yaml: unknown keys refused, read-only once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections ----------------------------------------------------------------------------


class FlywheelConfig(Section):
    api_key: Str = ""
    # how long one series may keep retrying before it is parked as "failed" (it is retried
    # again on the next sweep; nothing is ever dropped)
    retry_max_seconds: Seconds = 300.0
    retry_max_interval: PositiveSeconds = 30.0  # cap of one backoff wait
    failed_retry_seconds: Seconds = 60.0  # a parked "failed" series is tried again after this


class RoutingConfig(Section):
    field: Str = "PatientID"
    session_label_key: Str = "StudyDescription"


class PolicyConfig(Section):
    mode: Str = "opt-out"
    field: OptionalStr = None
    strings: Names = ("NOFW",)


class TlsConfig(Section):
    enabled: Bool = False
    cert: Str = ""
    key: Str = ""
    ca: Str = ""
    require_client_cert: Bool = True


class PushConfig(Section):
    enabled: Bool = True
    ae_title: AeTitle = "FWAGENT"
    host: Str = "127.0.0.1"
    port: Port = 11112
    allowed_calling_aets: Names = ()
    allowed_hosts: Names = ()
    series_quiet_seconds: Seconds = 10.0
    max_associations_per_host: Count = 10
    tls: TlsConfig = TlsConfig()


class PeerConfig(Section):
    ae_title: AeTitle = "PACS"
    host: Host = "127.0.0.1"
    port: Port = 4242


class PullConfig(Section):
    enabled: Bool = False
    peer: PeerConfig = PeerConfig()
    ae_title: AeTitle = "FWAGENT"
    port: Port = 11113
    method: Literal["c-move", "c-get"] = "c-move"
    interval_seconds: PollSeconds = 60.0
    tls: TlsConfig = TlsConfig()
    # C-FIND only studies whose StudyDate is within this many days (0 = no bound)
    lookback_days: Days = 7
    # first start: treat everything already on the peer as done (no back-fill)
    mark_existing_done: Bool = False
    # failed retrievals back off exponentially; after max_failures the series is
    # "abandoned" and shown with its reason in `fwagent status` (new images retry it)
    max_failures: Count = 5
    retry_backoff_seconds: Seconds = 60.0
    retry_backoff_max_seconds: Seconds = 3600.0
    # series not seen by a poll for this long are forgotten (abandoned ones are kept)
    forget_after_seconds: Seconds = 604800.0
    retrieve_timeout_seconds: PositiveSeconds = 600.0
    dimse_timeout_seconds: PositiveSeconds = 30.0


class SentTagConfig(Section):
    """The dicom-send gear's private tag; files carrying it are not re-ingested."""

    group: Int = 0x0021
    creator: Str = "Flywheel"
    value: Str = "DICOM send"


class BasicAuthConfig(Section):
    """HTTP basic auth for the metrics listener: both set, or neither (off)."""

    user: Str = ""
    password_file: Str = ""


class MetricsConfig(Section):
    enabled: Bool = False
    host: Str = "127.0.0.1"
    port: Port = 9108
    basic_auth: BasicAuthConfig = BasicAuthConfig()


class DeidConfig(Section):
    profile: Str = ""  # a Flywheel de-id profile (YAML); "" = off


class QrPeerConfig(Section):
    """A peer the Q/R service knows: C-MOVE destinations must be one of these."""

    ae_title: AeTitle
    host: Host
    port: Port
    find: Bool = True
    move: Bool = True
    get: Bool = True


class QrConfig(Section):
    enabled: Bool = False
    ae_title: AeTitle = "FWQR"
    host: Str = "127.0.0.1"
    port: Port = 11114
    tls: TlsConfig = TlsConfig()
    max_results: Count = 1000
    peers: tuple[QrPeerConfig, ...] = ()


class AgentConfig(Section):
    flywheel: FlywheelConfig = FlywheelConfig()
    spool_dir: DirPath = Path("/var/lib/fwagent")
    # below this much free space in spool_dir the receiver answers Out of Resources (0xA700)
    spool_min_free_mb: Megabytes = 500.0
    # "" = SQLite under spool_dir; postgresql://... = state shared by replicas
    state_url: Str = ""
    # a replica uploading a series renews its claim every third of this; when it dies,
    # another replica takes the series over this long after its last renewal
    state_lease_seconds: Annotated[Float, Field(ge=3, le=MAX_SECONDS)] = 30.0
    timezone: Str = "UTC"
    routing: RoutingConfig = RoutingConfig()
    policy: PolicyConfig = PolicyConfig()
    push: PushConfig = PushConfig()
    pull: PullConfig = PullConfig()
    sent_tag: SentTagConfig = SentTagConfig()
    metrics: MetricsConfig = MetricsConfig()
    deid: DeidConfig = DeidConfig()
    qr: QrConfig = QrConfig()
    log_level: Str = "INFO"

    _mapping: MappingConfig = PrivateAttr(default_factory=MappingConfig)

    @property
    def state_path(self) -> Path:
        return self.spool_dir / "state.sqlite"

    def open_state(self) -> Any:
        """The agent's :class:`fwagent.state.State` (SQLite or PostgreSQL per state_url)."""
        from .state import State

        return State(self.state_path, url=self.state_url, lease_seconds=self.state_lease_seconds)

    def mapping_config(self) -> MappingConfig:
        """The fwmapping.MappingConfig these settings describe (built and checked once)."""
        return self._mapping

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        self._mapping = _build_mapping(self)
        _check_sections(self)
        return self


# --- checks that span keys ---------------------------------------------------------------

# fwmapping's MappingConfig settings -> the yaml key the user wrote
_MAPPING_KEYS = {
    "routing_field": "routing.field",
    "session_label_key": "routing.session_label_key",
    "timezone": "timezone",
}


def _build_mapping(config: AgentConfig) -> MappingConfig:
    """fwmapping's own types from the yaml sections; their errors named by yaml key."""
    try:
        policy = Policy(
            mode=config.policy.mode, field=config.policy.field, strings=config.policy.strings
        )
    except SettingError as exc:
        raise ConfigError(f"policy.{exc.setting}: {exc.reason}") from None
    try:
        tag = SentTag(
            group=config.sent_tag.group,
            creator=config.sent_tag.creator,
            value=config.sent_tag.value,
        )
    except SettingError as exc:
        raise ConfigError(f"sent_tag.{exc.setting}: {exc.reason}") from None
    try:
        return MappingConfig(
            routing_field=config.routing.field,
            session_label_key=config.routing.session_label_key,
            timezone=config.timezone,
            policy=policy,
            sent_tag=tag,
        )
    except SettingError as exc:
        raise ConfigError(f"{_MAPPING_KEYS[exc.setting]}: {exc.reason}") from None


def _check_sections(config: AgentConfig) -> None:
    if config.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level: must be one of {', '.join(LOG_LEVELS)}")
    if config.flywheel.api_key and not _looks_like_api_key(config.flywheel.api_key):
        raise ConfigError(
            "flywheel.api_key: must look like site.flywheel.io:KEY"
            " (or host:port:__force_insecure:KEY)"
        )
    if config.state_url:
        scheme = config.state_url.split("://", 1)[0] if "://" in config.state_url else ""
        if scheme not in STATE_URL_SCHEMES:
            raise ConfigError(
                "state_url: must be empty (SQLite under spool_dir) or a postgresql:// URL"
                f", got scheme {scheme or 'none'!r}"
            )
    for section, tls, server in (
        ("push", config.push.tls, True),
        ("pull", config.pull.tls, False),
        ("qr", config.qr.tls, True),
    ):
        _check_tls(section, tls, server)
    _check_file("deid.profile", config.deid.profile)
    auth = config.metrics.basic_auth
    if bool(auth.user) != bool(auth.password_file):
        missing = "password_file" if auth.user else "user"
        raise ConfigError(f"metrics.basic_auth.{missing}: required (set both or neither)")
    _check_file("metrics.basic_auth.password_file", auth.password_file)
    seen: set[str] = set()
    for i, peer in enumerate(config.qr.peers):
        if peer.ae_title in seen:
            raise ConfigError(f"qr.peers[{i}].ae_title: {peer.ae_title!r} is listed twice")
        seen.add(peer.ae_title)


def _looks_like_api_key(key: str) -> bool:
    """``host:KEY`` or ``host:port:__force_insecure:KEY`` (what flywheel.Client accepts)."""
    site, _, secret = key.strip().rpartition(":")
    return bool(site.split(":")[0] and secret)


def _check_tls(section: str, tls: TlsConfig, server: bool) -> None:
    if not tls.enabled:
        return
    for key in ("cert", "key"):
        if not getattr(tls, key):
            raise ConfigError(f"{section}.tls.{key}: required when tls.enabled is true")
    if server and tls.require_client_cert and not tls.ca:
        raise ConfigError(
            f"{section}.tls.ca: required when tls.require_client_cert is true (mutual TLS)"
        )
    for key in ("cert", "key", "ca"):
        _check_file(f"{section}.tls.{key}", getattr(tls, key))


def _check_file(key: str, name: str) -> None:
    if name and not Path(name).is_file():
        raise ConfigError(f"{key}: {name} is not a readable file")


# --- loading -----------------------------------------------------------------------------


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Read agent.yaml (optional: defaults + environment only), apply env overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(f"cannot read config {path}: {reason}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded
    applied = _apply_env(raw, os.environ if environ is None else environ)
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        message = str(exc)
        for key, name in applied.items():
            if message.startswith(f"{key}:"):
                message += f" (from {name})"
        raise ConfigError(message) from None


def config_from_dict(raw: dict[str, Any]) -> AgentConfig:
    """Build a config from an in-memory mapping (no environment overrides)."""
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser expected and where (PyYAML's own text spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def _key(loc: tuple[Any, ...]) -> str:
    """('qr', 'peers', 0, 'host') -> 'qr.peers[0].host'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``key: what is wrong``."""
    errors = exc.errors()
    first = errors[0]
    kind, loc = first["type"], tuple(first["loc"])
    if kind == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent
        )
        return f"{_key(parent) or 'config'}: unknown key(s) {', '.join(unknown)}"
    where = _key(loc) or "config"
    given = first.get("input")
    if kind in ("model_type", "model_attributes_type"):
        return f"{where}: expected a mapping, got {type(given).__name__}"
    error = (first.get("ctx") or {}).get("error")
    if isinstance(error, ConfigError):
        return str(error)  # a check across keys: it names its own key
    if error is not None:
        return f"{where}: {error}"
    if kind in _PROBLEMS:
        return f"{where}: " + _PROBLEMS[kind].format(input=given, **(first.get("ctx") or {}))
    return f"{where}: {first['msg']}"


# --- environment overrides ---------------------------------------------------------------


def _env_keys(
    model: type[BaseModel], path: tuple[str, ...] = ()
) -> dict[str, tuple[tuple[str, ...], bool]]:
    """FWAGENT_ name -> (key path, settable) for every key below ``model``; a list of
    objects (qr.peers) is not settable from the environment."""
    names: dict[str, tuple[tuple[str, ...], bool]] = {}
    for name, info in model.model_fields.items():
        here = (*path, name)
        hint = info.annotation
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            names.update(_env_keys(hint, here))
            continue
        args = typing.get_args(hint)
        objects = any(isinstance(a, type) and issubclass(a, BaseModel) for a in args)
        names[ENV_PREFIX + "_".join(here).upper()] = (here, not objects)
    return names


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Copy FWAGENT_<SECTION>_<KEY> values into the raw mapping (strings, coerced by the
    models); a FWAGENT_ variable that names no key is refused. Returns {key: variable}."""
    known = _env_keys(AgentConfig)
    applied: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_KEYS:
            continue
        if name not in known:
            inside = sorted(k for k in known if k.startswith(name + "_"))
            if inside:
                raise ConfigError(f"{name}: names a section, not a key (e.g. {inside[0]})")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name}: names no agent.yaml key{hint}")
        here, settable = known[name]
        if not settable:
            raise ConfigError(
                f"{name}: {'.'.join(here)} is a list of objects; set it in agent.yaml,"
                " the environment cannot override it"
            )
        target = raw
        for part in here[:-1]:
            sub = target.get(part)
            if sub is None:
                sub = target[part] = {}
            if not isinstance(sub, dict):
                break  # the model reports "expected a mapping" for this section
            target = sub
        else:
            target[here[-1]] = env[name]
            applied[".".join(here)] = name
    return applied
