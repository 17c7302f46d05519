"""Where mapped data goes on a real site: missing groups and projects, moved sessions."""

from __future__ import annotations

import copy
from typing import Any, Protocol

from .routing import UNKNOWN, UNKNOWN_GROUP, UNSORTED, UNSORTED_PROJECT

FOLLOWED = "followed"  # the session uid exists on the site: go where it is now


class Site(Protocol):
    """What placement needs to know about the site."""

    def group_exists(self, group_id: str) -> bool: ...

    def project_exists(self, group_id: str, project_label: str) -> bool: ...

    def session_location(self, session_uid: str) -> tuple[str, str, str] | None:
        """(group id, project label, subject label) of the session with this uid, or None."""
        ...


def resolve_placement(metadata: dict[str, Any], site: Site) -> dict[str, Any]:
    """A copy of ``metadata`` placed on ``site``.

    An existing session uid is followed wherever it now is. Otherwise a group missing on the
    site becomes ``unknown``/``Unsorted`` and a project missing in its group becomes
    ``Unsorted`` there: no fuzzy matching, misrouting into the wrong group is worse.
    ``routing.resolved`` says which rule applied.
    """
    placed = copy.deepcopy(metadata)
    routing = placed.setdefault("routing", {})
    session = placed.get("session", {})
    found = site.session_location(session["uid"]) if session.get("uid") else None
    if found is not None:
        group, project, subject = found
        placed["group"] = {"_id": group}
        placed["project"] = {"label": project}
        session.setdefault("subject", {})["label"] = subject
        routing["resolved"] = FOLLOWED
        return placed
    group = placed["group"]["_id"]
    project = placed["project"]["label"]
    if group != UNKNOWN_GROUP and not site.group_exists(group):
        placed["group"] = {"_id": UNKNOWN_GROUP}
        placed["project"] = {"label": UNSORTED_PROJECT}
        routing["resolved"] = UNKNOWN
    elif project != UNSORTED_PROJECT and not site.project_exists(group, project):
        placed["project"] = {"label": UNSORTED_PROJECT}
        routing["resolved"] = UNSORTED
    else:
        routing["resolved"] = routing.get("placement", UNKNOWN)
    return placed
