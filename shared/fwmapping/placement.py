"""Where mapped data goes on a real site: missing groups and projects, moved sessions."""

from __future__ import annotations

import copy
from typing import Any, Protocol

from .routing import UNKNOWN, UNKNOWN_GROUP, UNSORTED, UNSORTED_PROJECT

FOLLOWED = "followed"  # the session uid exists on the site: go where it is now


class GroupsAndProjects(Protocol):
    """Which groups and projects exist on the site."""

    def group_exists(self, group_id: str) -> bool: ...

    def project_exists(self, group_id: str, project_label: str) -> bool: ...


class Site(GroupsAndProjects, Protocol):
    """What placement needs to know about the site."""

    def session_location(self, session_uid: str) -> tuple[str, str, str] | None:
        """(group id, project label, subject label) of the session with this uid, or None."""
        ...


def site_placement(
    group: str, project: str, placement: str, site: GroupsAndProjects
) -> tuple[str, str, str]:
    """(group, project, resolved) for a mapped group and project on ``site``.

    A group missing on the site becomes ``unknown``/``Unsorted`` and a project missing in
    its group becomes ``Unsorted`` there: no fuzzy matching, misrouting into the wrong group
    is worse. ``resolved`` is the placement that applies (``placement`` when both exist).
    """
    if group != UNKNOWN_GROUP and not site.group_exists(group):
        return UNKNOWN_GROUP, UNSORTED_PROJECT, UNKNOWN
    if project != UNSORTED_PROJECT and not site.project_exists(group, project):
        return group, UNSORTED_PROJECT, UNSORTED
    return group, project, placement


def resolve_placement(
    metadata: dict[str, Any], site: Site, follow_sessions: bool = True
) -> dict[str, Any]:
    """A copy of ``metadata`` placed on ``site``.

    An existing session uid is followed wherever it now is (unless ``follow_sessions`` is
    off: the audit asks where the rules alone would put the data). Otherwise
    :func:`site_placement` applies. ``routing.resolved`` says which rule applied.
    """
    placed = copy.deepcopy(metadata)
    routing = placed.setdefault("routing", {})
    session = placed.get("session", {})
    found = None
    if follow_sessions and session.get("uid"):
        found = site.session_location(session["uid"])
    if found is not None:
        group, project, subject = found
        placed["group"] = {"_id": group}
        placed["project"] = {"label": project}
        session.setdefault("subject", {})["label"] = subject
        routing["resolved"] = FOLLOWED
        return placed
    group, project, routing["resolved"] = site_placement(
        placed["group"]["_id"],
        placed["project"]["label"],
        routing.get("placement", UNKNOWN),
        site,
    )
    placed["group"] = {"_id": group}
    placed["project"] = {"label": project}
    return placed
