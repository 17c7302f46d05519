"""The routing string ``fw://group/project/subject/session`` and where it places data."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNKNOWN_GROUP = "unknown"
UNSORTED_PROJECT = "Unsorted"

ROUTED = "routed"  # group and project given
UNSORTED = "unsorted"  # group only: project Unsorted in that group
UNKNOWN = "unknown"  # no usable routing string: unknown/Unsorted

_SCHEME = re.compile(r"^\s*fw://(?P<path>.*?)\s*$", re.IGNORECASE | re.DOTALL)
_PREFIX = re.compile(r"^\s*fw://", re.IGNORECASE)
# Flywheel group ids: lower-case letters, digits and . @ _ -, at most 64 characters.
_GROUP_ID = re.compile(r"^[0-9a-z][0-9a-z.@_-]{0,63}$")


@dataclass(frozen=True)
class Routing:
    """A parsed routing string. Empty parts are None."""

    group: str | None = None
    project: str | None = None
    subject: str | None = None
    session: str | None = None

    @property
    def placement(self) -> str:
        if self.group is None:
            return UNKNOWN
        return ROUTED if self.project else UNSORTED

    @property
    def group_id(self) -> str:
        """The group the data goes to before any check against the site."""
        return self.group or UNKNOWN_GROUP

    @property
    def project_label(self) -> str:
        """The project the data goes to before any check against the site."""
        return self.project if self.group and self.project else UNSORTED_PROJECT

    def path(self) -> str:
        """``group/project/subject/session`` with trailing empty parts left out."""
        parts = [self.group, self.project, self.subject, self.session]
        while parts and not parts[-1]:
            parts.pop()
        return "/".join(part or "" for part in parts)


def in_holding_area(group: str | None, project: str | None) -> bool:
    """Whether a place is where unplaceable data waits for an admin's triage.

    The whole ``unknown`` group is (the agent creates nothing else there and nothing under
    it is a real destination), and so is the ``Unsorted`` project of any group.
    """
    return group == UNKNOWN_GROUP or project == UNSORTED_PROJECT


def parse_routing(value: object) -> Routing:
    """Parse a routing value; anything without a valid ``fw://group`` gives placement unknown.
    A part that is ``.`` or ``..`` counts as absent.

    The scheme is matched case-insensitively and surrounding whitespace ignored. Group ids are
    lower-cased (Flywheel's are); a group id with characters Flywheel does not allow makes the
    whole string unusable rather than guessing.
    """
    match = _SCHEME.match(str(value)) if value is not None else None
    if not match:
        return Routing()
    # "." and ".." name no container (and must never become a label or a folder): absent
    parts = [part.strip() for part in match.group("path").split("/")]
    parts = ["" if part in (".", "..") else part for part in parts]
    parts += [""] * (4 - len(parts))
    group, project, subject, session = (part or None for part in parts[:4])
    if group is not None:
        group = group.lower()
        if not _GROUP_ID.match(group):
            return Routing()
    else:
        return Routing()
    return Routing(group=group, project=project, subject=subject, session=session)


def parse_target(value: str) -> Routing:
    """A place an admin names by hand, ``group/project[/subject[/session]]`` (an ``fw://``
    prefix and a trailing slash are accepted), read by :func:`parse_routing`'s rules.

    Stricter than a routing string: group and project are required, and a ValueError says
    what is wrong instead of falling back to Unknown.
    """
    bare = _PREFIX.sub("", str(value)).strip().strip("/")
    parts = [part.strip() for part in bare.split("/")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"target {value!r} must be group/project[/subject[/session]]")
    if len(parts) > 4:
        raise ValueError(f"target {value!r} has more than group/project/subject/session")
    if not all(parts):
        raise ValueError(f"target {value!r} has an empty part")
    routing = parse_routing("fw://" + "/".join(parts))
    if routing.group is None:
        raise ValueError(f"target {value!r}: {parts[0]!r} is not a Flywheel group id")
    return routing


def format_routing(routing: Routing) -> str:
    """``fw://group/project/subject/session`` with trailing empty parts left out."""
    return "fw://" + routing.path()
