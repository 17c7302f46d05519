"""fwmapping's settings check themselves: the agent, dicom-send and the audit all build
these types, so a value one refuses the others refuse too."""

from __future__ import annotations

import pytest
from fwmapping import MappingConfig, Policy, SentTag, SettingError


@pytest.mark.parametrize(
    ("build", "setting", "reason"),
    [
        (lambda: Policy(mode="sometimes"), "mode", "must be opt-out or opt-in, not 'sometimes'"),
        (lambda: Policy(field="Comments"), "field", "must be a DICOM keyword like PatientID"),
        (lambda: Policy(mode="opt-in", strings=("", " ")), "strings", "must name at least one"),
        (lambda: Policy(strings="NOFW"), "strings", "must be a list of strings"),
        (lambda: SentTag(group=0x0007), "group", "must be an odd group number 0x0009-0xFFFF"),
        (lambda: SentTag(group=0x0022), "group", "must be an odd group number 0x0009-0xFFFF"),
        (lambda: SentTag(group=0x10001), "group", "must be an odd group number 0x0009-0xFFFF"),
        (lambda: SentTag(group="0x0021"), "group", "must be an odd group number, not '0x0021'"),
        (lambda: SentTag(creator=""), "creator", "must not be empty"),
        (lambda: SentTag(creator="A" * 65), "creator", "must be at most 64 characters"),
        (lambda: SentTag(value="a\\b"), "value", "must be at most 64 characters without backslash"),
        (lambda: MappingConfig(routing_field="PatientId"), "routing_field", "must be a DICOM"),
        (lambda: MappingConfig(session_label_key=""), "session_label_key", "must be a DICOM"),
        (lambda: MappingConfig(timezone="Mars/Olympus"), "timezone", "unknown timezone"),
        (lambda: MappingConfig(timezone="../../etc/passwd"), "timezone", "unknown timezone"),
    ],
)
def test_bad_settings_name_themselves(build: object, setting: str, reason: str) -> None:
    with pytest.raises(SettingError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.setting == setting
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do


def test_good_settings_and_the_messages_read_on_their_own() -> None:
    assert Policy(mode="opt-in", field="StudyComments", strings=["UPLOAD"]).strings == ("UPLOAD",)  # type: ignore[arg-type]
    assert SentTag(group=0x0009, creator="ACME", value="sent").group == 0x0009
    assert MappingConfig(routing_field="OtherPatientIDs", timezone="Asia/Tokyo").timezone
    with pytest.raises(ValueError, match=r"^policy mode must be opt-out or opt-in"):
        Policy(mode="x")
    with pytest.raises(ValueError, match=r"^private tag group must be an odd group"):
        SentTag(group=3)
    with pytest.raises(ValueError, match=r"^unknown timezone 'X'"):
        MappingConfig(timezone="X")
