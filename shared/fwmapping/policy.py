"""Opt-in / opt-out, and the dicom-send tag that stops re-ingest loops."""

from __future__ import annotations

from pydicom.dataset import Dataset

from .config import OPT_IN, MappingConfig, Policy, SentTag
from .header import text

_SENT_ELEMENT = 0x01  # element offset inside the private block


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


def is_sent_by_flywheel(ds: Dataset, tag: SentTag) -> bool:
    """True when the file carries dicom-send's private tag (creator and value match)."""
    try:
        block = ds.private_block(tag.group, tag.creator)
    except KeyError:
        return False
    return any(
        _as_text(element.value) == tag.value
        for element in ds.group_dataset(tag.group)
        if element.tag.element >> 8 == block.block_start >> 8 and element.tag.element & 0xFF
    )


def _as_text(value: object) -> str:
    """Implicit VR files give unknown private values as raw bytes (VR UN): decode them."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value).strip()


def add_sent_tag(ds: Dataset, tag: SentTag) -> None:
    """Add dicom-send's private tag to ``ds`` in place, unless an identical one is there."""
    if is_sent_by_flywheel(ds, tag):
        return
    block = ds.private_block(tag.group, tag.creator, create=True)
    block.add_new(_SENT_ELEMENT, "LO", tag.value)
