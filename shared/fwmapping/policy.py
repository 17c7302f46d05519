"""Opt-in / opt-out, and the dicom-send tag that stops re-ingest loops."""

from __future__ import annotations

from pydicom.dataset import Dataset

from .config import OPT_IN, MappingConfig, Policy, SentTag
from .header import text


def policy_field(config: MappingConfig) -> str:
    """The keyword the opt-in/opt-out policy reads (the routing field unless set)."""
    return config.policy.field or config.routing_field


def policy_allows_value(value: object, policy: Policy) -> bool:
    """Whether a series whose policy field holds ``value`` may be uploaded."""
    haystack = str(value or "").lower()
    hit = any(needle.lower() in haystack for needle in policy.strings if needle)
    return hit if policy.mode == OPT_IN else not hit


def policy_allows(ds: Dataset, config: MappingConfig) -> bool:
    """Whether this dataset's series may be uploaded under the site's policy."""
    return policy_allows_value(text(ds, policy_field(config)), config.policy)


def _plain(value: object) -> str:
    """A tag value as comparable text: bytes (VR UN, raw) decoded, spaces and NULs stripped,
    case folded. Multi-valued values never match (the tag is one LO value)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return ""
    return value.strip(" \x00").casefold()


def _value(ds: Dataset, tag: int) -> object:
    """An element's value without converting a raw element (a raw value is its bytes)."""
    element = ds.get_item(tag)
    return None if element is None else element.value


def _blocks(ds: Dataset, tag: SentTag) -> list[int]:
    """The private blocks (0x10-0xFF) of ``tag.group`` whose creator is ``tag.creator``."""
    creator = _plain(tag.creator)
    slots = []
    for key in list(ds.keys()):
        in_block = key.group == tag.group and 0x10 <= key.element <= 0xFF
        if in_block and _plain(_value(ds, key)) == creator:
            slots.append(key.element)
    return slots


def is_sent_by_flywheel(ds: Dataset, tag: SentTag) -> bool:
    """True when the file carries dicom-send's private tag, as fw-gear-dicom-send 4.2.0 or
    this project's gear writes it: creator ``tag.creator`` in ``tag.group``, the value at any
    offset 0x00-0xFF of that block, compared case-insensitively with spaces/NULs stripped
    (so "DICOM send" and "DICOM Send" are the same tag)."""
    wanted = _plain(tag.value)
    for slot in _blocks(ds, tag):
        for offset in range(0x100):
            key = (tag.group << 16) | (slot << 8) | offset
            if key in ds and _plain(_value(ds, key)) == wanted:
                return True
    return False


def _creator_slot(ds: Dataset, tag: SentTag) -> int:
    """The block of ``tag.creator`` in ``tag.group``, created at the first free slot if
    missing: what ``Dataset.private_block(create=True)`` does, written out because that
    method caches a PrivateBlock pointing back at the dataset, a reference cycle that keeps
    every tagged dataset (and its source bytes) alive until a full garbage collection: a
    session of large files grew the gear's memory by one file per file sent."""
    free = None
    for slot in range(0x10, 0x100):
        key = (tag.group << 16) | slot
        if key not in ds:
            free = slot if free is None else free
        elif ds[key].value == tag.creator:
            return slot
    if free is None:
        raise ValueError(f"no free private block in group {tag.group:#06x}")
    ds.add_new((tag.group << 16) | free, "LO", tag.creator)
    return free


def add_sent_tag(ds: Dataset, tag: SentTag) -> None:
    """Add dicom-send's private tag to ``ds`` in place, unless it is already there.

    As fw-gear-dicom-send 4.2.0 writes it (DESIGN.md section 5): the creator's block in
    ``tag.group`` (created at the first free creator slot if missing), the value as LO at
    the first free offset starting at 0x00, so (0021,1000) in a fresh block. Nothing
    already in the dataset is changed. Raises ValueError when the group has no room.
    """
    if is_sent_by_flywheel(ds, tag):
        return
    slot = _creator_slot(ds, tag)
    for offset in range(0x100):
        key = (tag.group << 16) | (slot << 8) | offset
        if key not in ds:
            ds.add_new(key, "LO", tag.value)
            return
    raise ValueError(f"private block {tag.creator!r} in group {tag.group:#06x} is full")
