"""The Flywheel info the agent writes and the gears read back: one definition of each key.

- file info ``header.dicom``: the header fields (:mod:`fwmapping.fields`);
- session and acquisition info ``fwagent.routing``: where the upload went and why
  (``field``, ``value``, ``placement``, ``resolved``);
- session and acquisition info ``fwagent.settings``: the mapping settings the agent used,
  so the gears default to them instead of an admin retyping them into each gear's config;
- session info ``unsorted_mover.moves``: the mover's history, one entry per move.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .config import OPT_OUT, MappingConfig, Policy
from .routing import Routing, parse_target

AGENT = "fwagent"
ROUTING = "routing"
SETTINGS = "settings"
HEADER = "header"
DICOM = "dicom"
MOVER = "unsorted_mover"
MOVES = "moves"


class RoutingRecord(TypedDict, total=False):
    field: str
    value: str
    placement: str  # routed | unsorted | unknown (from the routing string alone)
    resolved: str  # ... or followed: after the checks against the site


class PolicyRecord(TypedDict):
    mode: str
    field: str | None
    strings: list[str]


class SettingsRecord(TypedDict):
    routing_field: str
    session_label_key: str
    timezone: str
    policy: PolicyRecord


MoveRecord = TypedDict(
    "MoveRecord",
    {"from": str, "to": str, "at": str, "reason": str, "routing": dict[str, Any]},
    total=False,
)


def _section(info: Mapping[str, Any] | None, *keys: str) -> Any:
    value: Any = info
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


# ---- file info: the header --------------------------------------------------------------


def file_info(header: Mapping[str, Any]) -> dict[str, Any]:
    """File info holding ``header`` where Flywheel's classifier keeps it."""
    return {HEADER: {DICOM: dict(header)}}


def header_from_info(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The header kept in file info, when present and non-empty."""
    dicom = _section(info, HEADER, DICOM)
    return dict(dicom) if isinstance(dicom, Mapping) and dicom else None


# ---- container info: the agent's record -------------------------------------------------


def agent_info(
    routing: Mapping[str, Any], settings: SettingsRecord | None = None
) -> dict[str, Any]:
    """Session/acquisition info recording where an upload went and the settings used."""
    record: dict[str, Any] = {ROUTING: dict(routing)}
    if settings is not None:
        record[SETTINGS] = settings
    return {AGENT: record}


def recorded_routing(info: Mapping[str, Any] | None) -> RoutingRecord | None:
    """``fwagent.routing`` as the agent stored it, if any (it always has a ``value``)."""
    routing = _section(info, AGENT, ROUTING)
    return routing if isinstance(routing, dict) and "value" in routing else None  # type: ignore[return-value]


def settings_record(config: MappingConfig) -> SettingsRecord:
    """The mapping settings as the agent records them."""
    return {
        "routing_field": config.routing_field,
        "session_label_key": config.session_label_key,
        "timezone": config.timezone,
        "policy": {
            "mode": config.policy.mode,
            "field": config.policy.field,
            "strings": list(config.policy.strings),
        },
    }


def recorded_settings(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``fwagent.settings`` as stored (unchecked: :func:`choose_settings` checks it)."""
    settings = _section(info, AGENT, SETTINGS)
    return dict(settings) if isinstance(settings, Mapping) and settings else None


# ---- which settings a gear uses ---------------------------------------------------------

FROM_GEAR = "gear config"
FROM_AGENT = "recorded by the agent"
FROM_DEFAULT = "default"
GEAR_SETTINGS = ("routing_field", "session_label_key", "timezone")
POLICY = "policy"  # only ever recorded by the agent or the default: no gear sets it


@dataclass(frozen=True)
class ChosenSettings:
    """The mapping settings a gear applies to one container, and where each came from."""

    config: MappingConfig
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """e.g. ``routing_field=PatientComments (recorded by the agent), timezone=UTC
        (default), policy=opt-out field=(routing field) strings=["NOFW"] (default)``."""
        policy = self.config.policy
        strings = json.dumps(list(policy.strings), ensure_ascii=False)
        return ", ".join(
            [
                f"{key}={getattr(self.config, key)} ({self.sources.get(key, FROM_DEFAULT)})"
                for key in GEAR_SETTINGS
            ]
            + [
                f"policy={policy.mode} field={policy.field or '(routing field)'} "
                f"strings={strings} ({self.sources.get(POLICY, FROM_DEFAULT)})"
            ]
        )


def _text(value: Any) -> str | None:
    return str(value).strip() if value is not None and str(value).strip() else None


def _from_record(recorded: Mapping[str, Any]) -> tuple[dict[str, str], Policy]:
    """Setting values and policy from an agent's record; ValueError when unusable."""
    try:
        raw_policy = recorded.get("policy") or {}
        policy = Policy(
            mode=str(raw_policy.get("mode") or OPT_OUT),
            field=_text(raw_policy.get("field")),
            strings=tuple(str(s) for s in raw_policy.get("strings") or ()),
        )
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"malformed policy: {exc}") from None
    values: dict[str, str] = {}
    for key in GEAR_SETTINGS:
        value = _text(recorded.get(key))
        if value is not None:
            values[key] = value
    _mapping_config(values, policy)  # the record must make a valid configuration as a whole
    return values, policy


def _mapping_config(values: Mapping[str, str], policy: Policy) -> MappingConfig:
    """The settings in ``values`` (defaults for the others); fwmapping checks them."""
    defaults = MappingConfig()
    return MappingConfig(
        routing_field=values.get("routing_field", defaults.routing_field),
        session_label_key=values.get("session_label_key", defaults.session_label_key),
        timezone=values.get("timezone", defaults.timezone),
        policy=policy,
    )


def choose_settings(
    gear_config: Mapping[str, Any], recorded: Mapping[str, Any] | None
) -> ChosenSettings:
    """Gear config where it sets a value, else what the agent recorded, else the defaults.

    Raises ValueError for bad gear config; recorded settings that do not make a valid
    configuration are ignored as a whole (the sources then say ``default``).
    """
    values: dict[str, str] = {}
    policy = Policy()
    sources: dict[str, str] = {}
    if recorded:
        try:
            values, policy = _from_record(recorded)
            sources = dict.fromkeys(values, FROM_AGENT)
            if recorded.get(POLICY):
                sources[POLICY] = FROM_AGENT
        except ValueError:
            values, policy, sources = {}, Policy(), {}
    for key in GEAR_SETTINGS:
        given = _text(gear_config.get(key))
        if given is not None:
            values[key], sources[key] = given, FROM_GEAR
    config = _mapping_config(values, policy)
    keys = (*GEAR_SETTINGS, POLICY)
    return ChosenSettings(config, {key: sources.get(key, FROM_DEFAULT) for key in keys})


# ---- the mover's history ----------------------------------------------------------------


def moves(info: Mapping[str, Any] | None) -> list[MoveRecord]:
    """``unsorted_mover.moves``, oldest first (empty when none or malformed)."""
    found = _section(info, MOVER, MOVES)
    if not isinstance(found, list):
        return []
    return [move for move in found if isinstance(move, dict)]  # type: ignore[misc]


def with_move(info: Mapping[str, Any] | None, move: MoveRecord) -> dict[str, Any]:
    """The info update appending ``move`` to the history (other info is left alone)."""
    return {MOVER: {MOVES: [*moves(info), move]}}


def last_move_target(info: Mapping[str, Any] | None) -> Routing | None:
    """Where the mover last put the session, if it ever moved it; a move without a
    readable target gives an empty Routing (moved, destination unknown)."""
    history = moves(info)
    if not history:
        return None
    try:
        return parse_target(str(history[-1].get("to") or ""))
    except ValueError:
        return Routing()
