"""The placement ``Site`` answered by a real Flywheel site through ``flywheel-sdk``."""

from __future__ import annotations

from typing import Any


def _is_not_found(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


class SdkSite:
    """Answers :class:`fwmapping.placement.Site` with the SDK; caches per instance.

    Create one per batch of work (a series, a gear run) so that admins' changes on the
    site are seen by the next batch.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._groups: dict[str, bool] = {}
        self._projects: dict[tuple[str, str], bool] = {}
        self._labels: dict[str, str] = {}

    def group_exists(self, group_id: str) -> bool:
        if group_id not in self._groups:
            try:
                self.client.get_group(group_id)
                self._groups[group_id] = True
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                self._groups[group_id] = False
        return self._groups[group_id]

    def project_exists(self, group_id: str, project_label: str) -> bool:
        key = (group_id, project_label)
        if key not in self._projects:
            found = self.client.projects.find_first(
                f"parents.group={group_id},label={quote_filter_value(project_label)}"
            )
            self._projects[key] = found is not None and found.label == project_label
        return self._projects[key]

    def session_location(self, session_uid: str) -> tuple[str, str, str] | None:
        session = self.client.sessions.find_first(f"uid={quote_filter_value(session_uid)}")
        if session is None:
            return None
        parents = session.parents
        return (
            parents.group,
            self._label("project", parents.project),
            self._label("subject", parents.subject),
        )

    def _label(self, kind: str, container_id: str) -> str:
        if container_id not in self._labels:
            getter = getattr(self.client, f"get_{kind}")
            self._labels[container_id] = getter(container_id).label
        return self._labels[container_id]


def quote_filter_value(value: str) -> str:
    """A finder filter value, quoted when it holds the filter syntax's own separators."""
    if any(char in value for char in ',="'):
        return '"' + value.replace('"', '\\"') + '"'
    return value
