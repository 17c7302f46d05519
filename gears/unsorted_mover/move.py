"""Apply planned moves through the SDK: never deletes, records provenance in session info.

A session goes into the subject of the target label in the target project: an existing
one is reused (merged into), a missing one is created with the source subject's names.
When every session of a subject goes to the same new place (and the target project has
no subject of that label yet), the subject itself moves, so nothing is left behind empty.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fwmapping.info import MoveRecord, with_move
from fwmapping.site import quote_filter_value

from gears.common.hierarchy import Session, paged
from gears.unsorted_mover.plan import FAILED, MOVED, Decision, Place

log = logging.getLogger(__name__)

SUBJECT_FIELDS = ("firstname", "lastname", "sex", "cohort", "type", "race", "ethnicity")


class MoveError(Exception):
    """One session could not be moved; the message is the report's reason."""


def api_error(exc: Exception) -> str:
    """A one-line description of an SDK/API error."""
    status = getattr(exc, "status", None)
    detail = getattr(exc, "detail", None) or getattr(exc, "reason", None) or str(exc)
    line = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
    return f"{status} {line}" if status else line


class Mover:
    """Moves sessions; caches target projects and their subjects by label."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._projects: dict[tuple[str, str], str] = {}
        self._subjects: dict[str, dict[str, list[str]]] = {}
        self._sources: dict[str, Any] = {}

    def project_id(self, group: str, label: str) -> str:
        key = (group, label)
        if key not in self._projects:
            found = self.client.projects.find_first(
                f"parents.group={group},label={quote_filter_value(label)}"
            )
            if found is None or found.label != label:
                raise MoveError(f"target missing: project '{group}/{label}' does not exist")
            self._projects[key] = found.id
        return self._projects[key]

    def subjects(self, project_id: str) -> dict[str, list[str]]:
        """Subject ids by label in a project (one paged listing per project)."""
        if project_id not in self._subjects:
            by_label: dict[str, list[str]] = defaultdict(list)
            for raw in paged(self.client.get_project_subjects, project_id):
                by_label[str(raw.label or raw.code or "")].append(raw.id)
            self._subjects[project_id] = by_label
        return self._subjects[project_id]

    def existing_subject(self, project_id: str, label: str) -> str | None:
        ids = self.subjects(project_id).get(label, [])
        if len(ids) > 1:
            raise MoveError(f"ambiguous: {len(ids)} subjects labelled '{label}' in the target")
        return ids[0] if ids else None

    def create_subject(self, project_id: str, label: str, source_id: str) -> str:
        if source_id not in self._sources:
            self._sources[source_id] = self.client.get_subject(source_id)
        source = self._sources[source_id]
        body: dict[str, Any] = {"project": project_id, "label": label}
        for name in SUBJECT_FIELDS:
            value = getattr(source, name, None)
            if value:
                body[name] = value
        new_id = str(self.client.add_subject(body))
        self.subjects(project_id)[label].append(new_id)
        return new_id

    def move_subject(self, source_id: str, project_id: str, label: str) -> None:
        """Move a whole subject (all its sessions go to the same place)."""
        self.client.modify_subject(source_id, {"project": project_id, "label": label})
        self.subjects(project_id)[label].append(source_id)

    def move_session(self, session: Session, to: Place, subject_id: str | None) -> None:
        body: dict[str, Any] = {}
        if subject_id is not None and subject_id != session.subject.id:
            body["subject"] = subject_id
        if to.session != session.label:
            body["label"] = to.session
        if body:
            self.client.modify_session(session.id, body)

    def record(self, session: Session, decision: Decision, at: str) -> None:
        """Append the move to the session's mover history (:func:`fwmapping.info.with_move`);
        other info (fwagent) is kept."""
        entry: MoveRecord = {
            "from": decision.record.place.path(),
            "to": decision.to.path() if decision.to else "",
            "at": at,
            "reason": decision.reason,
        }
        if decision.record.routing_value is not None:
            entry["routing"] = {
                "field": decision.record.routing_field,
                "value": decision.record.routing_value,
                "source": decision.record.routing_source,
            }
        self.client.set_session_info(session.id, with_move(session.info, entry))


def whole_subjects(decisions: Sequence[Decision], sessions: dict[str, Session]) -> set[str]:
    """Subjects all of whose sessions (``sessions`` holds all of them) go to one subject place."""
    sessions_of = Counter(session.subject.id for session in sessions.values())
    places: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    planned: Counter[str] = Counter()
    for decision in decisions:
        session = sessions.get(decision.record.id)
        if session is None or not decision.moves or decision.to is None:
            continue
        places[session.subject.id].add(
            (decision.to.group, decision.to.project, decision.to.subject)
        )
        planned[session.subject.id] += 1
    return {
        sid for sid, place in places.items() if len(place) == 1 and planned[sid] == sessions_of[sid]
    }


def apply(
    client: Any,
    decisions: Sequence[Decision],
    sessions: dict[str, Session],
    allow_subject_moves: bool,
) -> list[Decision]:
    """Carry out every planned move; return the decisions with Moved/Failed statuses."""
    mover = Mover(client)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    whole = whole_subjects(decisions, sessions) if allow_subject_moves else set()
    moved_subjects: dict[str, str] = {}
    done: list[Decision] = []
    for decision in decisions:
        session = sessions.get(decision.record.id)
        if not decision.moves or decision.to is None or session is None:
            done.append(decision)
            continue
        to = decision.to
        try:
            project_id = mover.project_id(to.group, to.project)
            source = session.subject.id
            if source in moved_subjects:
                subject_id: str | None = moved_subjects[source]
            else:
                subject_id = mover.existing_subject(project_id, to.subject)
                if subject_id is None and source in whole:
                    mover.move_subject(source, project_id, to.subject)
                    subject_id = moved_subjects[source] = source
                elif subject_id is None:
                    subject_id = mover.create_subject(project_id, to.subject, source)
            mover.move_session(session, to, subject_id)
        except MoveError as exc:
            done.append(replace(decision, status=FAILED, reason=f"{decision.reason}; {exc}"))
            continue
        except Exception as exc:  # an API error fails this session only
            log.warning("moving session %s failed: %s", session.id, api_error(exc))
            reason = f"{decision.reason}; move failed: {api_error(exc)}"
            done.append(replace(decision, status=FAILED, reason=reason))
            continue
        try:
            mover.record(session, decision, at)
        except Exception as exc:
            reason = f"{decision.reason}; moved, but provenance not written: {api_error(exc)}"
            done.append(replace(decision, status=FAILED, reason=reason))
            continue
        log.info("moved %s -> %s", decision.record.place.path(), to.path())
        done.append(replace(decision, status=MOVED))
    return done
