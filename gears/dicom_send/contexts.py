"""Presentation contexts: one per (SOP class, transfer syntax) actually present.

Each SOP class also gets an uncompressed fallback context, so a peer that refuses a
compressed syntax can still receive the file decompressed. A peer may accept at most 128
contexts per association, so the contexts are packed, SOP class by SOP class, into as many
associations as needed (a SOP class's contexts always travel together).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from fwmapping.dimse import PresentationContext, build_context
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

MAX_CONTEXTS = 128
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

Pair = tuple[str, str]  # (SOP class UID, transfer syntax UID)


def contexts_for_class(sop_class: str, syntaxes: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The (abstract syntax, [transfer syntaxes]) contexts one SOP class needs."""
    present = sorted(set(syntaxes))
    contexts = [(sop_class, [syntax]) for syntax in present]
    fallback = [str(syntax) for syntax in UNCOMPRESSED if syntax not in present]
    if fallback:
        contexts.append((sop_class, fallback))
    return contexts


def plan(pairs: Iterable[Pair], limit: int = MAX_CONTEXTS) -> list[list[tuple[str, list[str]]]]:
    """Group the contexts for ``pairs`` into associations of at most ``limit`` contexts."""
    by_class: dict[str, set[str]] = defaultdict(set)
    for sop_class, syntax in pairs:
        by_class[sop_class].add(syntax)
    associations: list[list[tuple[str, list[str]]]] = []
    current: list[tuple[str, list[str]]] = []
    for sop_class in sorted(by_class):
        needed = contexts_for_class(sop_class, by_class[sop_class])
        if len(needed) > limit:  # more syntaxes of one class than fit: split them as well
            for start in range(0, len(needed), limit):
                associations.append(needed[start : start + limit])
            continue
        if len(current) + len(needed) > limit:
            associations.append(current)
            current = []
        current.extend(needed)
    if current:
        associations.append(current)
    return associations


def build(contexts: list[tuple[str, list[str]]]) -> list[PresentationContext]:
    """pynetdicom PresentationContext objects for one association's contexts."""
    return [build_context(abstract, syntaxes) for abstract, syntaxes in contexts]
