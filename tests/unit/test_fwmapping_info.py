"""fwmapping.info and the shared place rules: recorded settings, holding area, targets."""

from __future__ import annotations

import json

import pytest
from fwmapping import MappingConfig, Policy, Routing, in_holding_area, parse_target
from fwmapping.info import (
    FROM_AGENT,
    FROM_DEFAULT,
    FROM_GEAR,
    choose_settings,
    last_move_target,
    recorded_settings,
    settings_record,
    with_move,
)

RECORDED = settings_record(
    MappingConfig(
        routing_field="PatientComments",
        session_label_key="ProtocolName",
        timezone="Europe/Paris",
        policy=Policy(mode="opt-in", field="StudyComments", strings=("UPLOAD",)),
    )
)


def test_recorded_settings_round_trip_into_the_same_config() -> None:
    chosen = choose_settings({}, recorded_settings({"fwagent": {"settings": RECORDED}}))
    assert settings_record(chosen.config) == RECORDED
    assert set(chosen.sources.values()) == {FROM_AGENT}


def test_gear_config_overrides_each_setting_it_sets() -> None:
    chosen = choose_settings({"routing_field": "PatientID", "timezone": " "}, RECORDED)
    assert chosen.config.routing_field == "PatientID"
    assert chosen.config.timezone == "Europe/Paris"  # blank means unset
    assert chosen.sources == {
        "routing_field": FROM_GEAR,
        "session_label_key": FROM_AGENT,
        "timezone": FROM_AGENT,
        "policy": FROM_AGENT,
    }
    assert chosen.describe().startswith("routing_field=PatientID (gear config), ")
    policy = RECORDED["policy"]
    assert chosen.describe().endswith(
        f"policy={policy['mode']} field={policy['field'] or '(routing field)'} "
        f"strings={json.dumps(policy['strings'])} (recorded by the agent)"
    )


def test_the_default_policy_is_described_as_default() -> None:
    assert (
        choose_settings({}, None)
        .describe()
        .endswith('policy=opt-out field=(routing field) strings=["NOFW"] (default)')
    )


def test_without_a_record_the_defaults() -> None:
    chosen = choose_settings({}, None)
    assert chosen.config == MappingConfig()
    assert set(chosen.sources.values()) == {FROM_DEFAULT}


@pytest.mark.parametrize(
    "broken",
    [
        {**RECORDED, "timezone": "Mars/Olympus"},
        {**RECORDED, "policy": {"mode": "sometimes"}},
        {**RECORDED, "policy": "opt-out"},
        {**RECORDED, "routing_field": "PatientIdd"},  # not a keyword: fwmapping refuses it
        {**RECORDED, "policy": {"mode": "opt-in", "strings": []}},  # would upload nothing
    ],
)
def test_an_unusable_record_is_ignored_as_a_whole(broken: dict) -> None:
    chosen = choose_settings({}, broken)
    assert chosen.config == MappingConfig()
    assert set(chosen.sources.values()) == {FROM_DEFAULT}


def test_bad_gear_timezone_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        choose_settings({"timezone": "Mars/Olympus"}, RECORDED)
    with pytest.raises(ValueError, match="routing field must be a DICOM keyword"):
        choose_settings({"routing_field": "PatientIdd"}, RECORDED)


@pytest.mark.parametrize(
    ("group", "project", "holding"),
    [
        ("unknown", "Unsorted", True),
        ("unknown", "triage-2024", True),  # the whole unknown group waits for triage
        ("psych", "Unsorted", True),
        ("psych", "study01", False),
        ("psych", "unsorted", False),  # labels are case-sensitive on Flywheel
    ],
)
def test_holding_area(group: str, project: str, holding: bool) -> None:
    assert in_holding_area(group, project) is holding


def test_targets_use_the_routing_rules() -> None:
    assert parse_target(" FW://Psych/study01/s01/ses1/ ") == Routing(
        "psych", "study01", "s01", "ses1"
    )
    assert parse_target("psych/study01").path() == "psych/study01"
    with pytest.raises(ValueError, match="not a Flywheel group id"):
        parse_target("my group/study01")


def test_last_move_target() -> None:
    assert last_move_target({}) is None
    info = with_move({}, {"to": "psych/study01/s01/x"})
    info = with_move(info, {"to": "neuro/mri"})
    assert [move["to"] for move in info["unsorted_mover"]["moves"]] == [
        "psych/study01/s01/x",
        "neuro/mri",
    ]
    assert last_move_target(info) == Routing("neuro", "mri")
    assert last_move_target(with_move({}, {"to": ""})) == Routing()
