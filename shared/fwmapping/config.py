"""The knobs of the mapping rules, shared by the agent and every gear.

These types are the one place their values are checked: the agent's agent.yaml, the
dicom-send gear and the mapping-audit gear build them and report :class:`SettingError`
in their own words (the agent names the yaml key from :attr:`SettingError.setting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword

from .timestamps import zone

OPT_OUT = "opt-out"
OPT_IN = "opt-in"
LO_MAX = 64  # the private creator and the tag value are LO elements


class SettingError(ValueError):
    """A mapping setting that cannot be used.

    ``setting`` is the attribute of the fwmapping type (``mode``, ``group``, ``timezone``...)
    and ``reason`` the problem without the setting's name, so callers can name the key the
    user actually wrote; ``str()`` is a complete sentence on its own."""

    def __init__(self, label: str, setting: str, reason: str) -> None:
        super().__init__(f"{label} {reason}" if label else reason)
        self.setting = setting
        self.reason = reason


def _check_keyword(owner: str, setting: str, value: object) -> None:
    if not isinstance(value, str) or not value or tag_for_keyword(value) is None:
        raise SettingError(
            owner,
            setting,
            f"must be a DICOM keyword like PatientID, not {value!r}",
        )


@dataclass(frozen=True)
class Policy:
    """Opt-in / opt-out: which field is read and which strings (case-insensitive substrings)."""

    mode: str = OPT_OUT
    field: str | None = None  # None: the routing field
    strings: tuple[str, ...] = ("NOFW",)

    def __post_init__(self) -> None:
        if self.mode not in (OPT_OUT, OPT_IN):
            raise SettingError(
                "policy mode", "mode", f"must be {OPT_OUT} or {OPT_IN}, not {self.mode!r}"
            )
        if self.field is not None:
            _check_keyword("policy field", "field", self.field)
        if isinstance(self.strings, str) or not all(isinstance(s, str) for s in self.strings):
            raise SettingError(
                "policy strings", "strings", f"must be a list of strings, not {self.strings!r}"
            )
        object.__setattr__(self, "strings", tuple(self.strings))
        if self.mode == OPT_IN and not any(s.strip() for s in self.strings):
            raise SettingError(
                "policy strings", "strings", "must name at least one string in opt-in mode"
            )


@dataclass(frozen=True)
class SentTag:
    """The private tag dicom-send writes so that Flywheel never re-ingests what it sent out."""

    group: int = 0x0021
    creator: str = "Flywheel"
    value: str = "DICOM send"

    def __post_init__(self) -> None:
        group = self.group
        if isinstance(group, bool) or not isinstance(group, int):
            raise SettingError(
                "private tag group", "group", f"must be an odd group number, not {group!r}"
            )
        # groups 0x0001-0x0007 are odd but not private (PS3.5 7.8.1)
        if not (group % 2 == 1 and 0x0009 <= group <= 0xFFFF):
            raise SettingError(
                "private tag group",
                "group",
                f"must be an odd group number 0x0009-0xFFFF, not {group:#06x}",
            )
        for name in ("creator", "value"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text.strip():
                raise SettingError(f"private tag {name}", name, f"must not be empty ({text!r})")
            if len(text) > LO_MAX or "\\" in text:
                raise SettingError(
                    f"private tag {name}",
                    name,
                    f"must be at most {LO_MAX} characters without backslash, not {text!r}",
                )


@dataclass(frozen=True)
class MappingConfig:
    """Site settings for turning headers into Flywheel metadata."""

    routing_field: str = "PatientID"
    session_label_key: str = "StudyDescription"
    timezone: str = "UTC"
    policy: Policy = field(default_factory=Policy)
    sent_tag: SentTag = field(default_factory=SentTag)

    def __post_init__(self) -> None:
        _check_keyword("routing field", "routing_field", self.routing_field)
        _check_keyword("session label key", "session_label_key", self.session_label_key)
        try:
            zone(str(self.timezone))
        except ValueError as exc:
            raise SettingError("", "timezone", str(exc)) from None
