"""The knobs of the mapping rules, shared by the agent and every gear."""

from __future__ import annotations

from dataclasses import dataclass, field

OPT_OUT = "opt-out"
OPT_IN = "opt-in"


@dataclass(frozen=True)
class Policy:
    """Opt-in / opt-out: which field is read and which strings (case-insensitive substrings)."""

    mode: str = OPT_OUT
    field: str | None = None  # None: the routing field
    strings: tuple[str, ...] = ("NOFW",)

    def __post_init__(self) -> None:
        if self.mode not in (OPT_OUT, OPT_IN):
            raise ValueError(f"policy mode must be {OPT_OUT!r} or {OPT_IN!r}, not {self.mode!r}")


@dataclass(frozen=True)
class SentTag:
    """The private tag dicom-send writes so that Flywheel never re-ingests what it sent out."""

    group: int = 0x0021
    creator: str = "Flywheel"
    value: str = "DICOM send"

    def __post_init__(self) -> None:
        if not (self.group % 2 == 1 and 0x0009 <= self.group <= 0xFFFF):
            raise ValueError(
                f"private tag group must be an odd group number, not {self.group:#06x}"
            )


@dataclass(frozen=True)
class MappingConfig:
    """Site settings for turning headers into Flywheel metadata."""

    routing_field: str = "PatientID"
    session_label_key: str = "StudyDescription"
    timezone: str = "UTC"
    policy: Policy = field(default_factory=Policy)
    sent_tag: SentTag = field(default_factory=SentTag)
