"""Pure planning: for each session, where it should go and why. No API calls here.

The gear loads :class:`SessionRecord`s (where each session is now, the routing value kept
at upload or read from its DICOM header) and asks a ``fwmapping`` Site whether groups and
projects exist *now*; :func:`plan` turns that into one :class:`Decision` per session.

Rules, in order:
1. A corrections row naming the session (by id or StudyInstanceUID) wins. A target group
   or project that does not exist is Failed; so is a session named by two rows with
   different targets, or a StudyInstanceUID matching several sessions (ambiguous).
2. Otherwise the routing string is re-read and resolved like an upload today: a group
   that does not exist keeps the session in ``unknown/Unsorted``, a project that does not
   exist sends it to ``<group>/Unsorted``. Routing only ever moves a session *out of* the
   holding area (:func:`fwmapping.in_holding_area`: the unknown group or an Unsorted
   project), never out of a real project an admin may have moved it to.
3. A session already where it should be is Skipped, so a second run changes nothing.
4. If any corrections row failed, nothing moves at all: the admin fixes the CSV first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from fwmapping import (
    ROUTED,
    UNKNOWN,
    UNKNOWN_GROUP,
    UNSORTED_PROJECT,
    GroupsAndProjects,
    Routing,
    in_holding_area,
    parse_routing,
    site_placement,
)

from gears.unsorted_mover.corrections import Correction

PLANNED = "Planned"
MOVED = "Moved"
SKIPPED = "Skipped"
FAILED = "Failed"


@dataclass(frozen=True)
class Place:
    """A session's location by labels: group id, project, subject and session label."""

    group: str
    project: str
    subject: str
    session: str

    def path(self) -> str:
        return f"{self.group}/{self.project}/{self.subject}/{self.session}"


@dataclass(frozen=True)
class SessionRecord:
    """What the planner knows about one session on the site."""

    id: str
    place: Place
    uid: str | None = None
    routing_value: str | None = None
    routing_field: str | None = None
    routing_source: str = ""  # "session info" | "DICOM header" | ""
    field_source: str = ""  # where routing_field came from: gear config, the agent, default
    in_scope: bool = True  # False: looked up only because a corrections row names it


@dataclass(frozen=True)
class Decision:
    """One report row to be: the session, where it goes (None: stays) and why."""

    record: SessionRecord
    to: Place | None
    reason: str
    status: str
    correction: Correction | None = None

    @property
    def moves(self) -> bool:
        return self.status == PLANNED and self.to is not None


def apply_target(place: Place, target: Routing) -> Place:
    """The new place: target group/project, target labels when given, else current ones."""
    return Place(
        group=target.group_id,
        project=target.project_label,
        subject=target.subject or place.subject,
        session=target.session or place.session,
    )


def _missing(target: Routing, site: GroupsAndProjects) -> str | None:
    group, project = target.group_id, target.project_label
    if not site.group_exists(group):
        return f"group '{group}' does not exist"
    if not site.project_exists(group, project):
        return f"project '{group}/{project}' does not exist"
    return None


def _decide(
    record: SessionRecord, to: Place, reason: str, correction: Correction | None = None
) -> Decision:
    """Planned unless the session already is where it should be."""
    if to == record.place:
        return Decision(record, None, f"{reason}; already in place", SKIPPED, correction)
    return Decision(record, to, reason, PLANNED, correction)


def plan_correction(
    record: SessionRecord, correction: Correction, site: GroupsAndProjects
) -> Decision:
    """Decision for a session a corrections row names."""
    label = correction.describe()
    target = correction.target
    missing = _missing(target, site)
    if missing:
        return Decision(
            record, None, f"{label}: target missing: {missing}", FAILED, correction=correction
        )
    to = apply_target(record.place, target)
    if not record.in_scope and to != record.place:
        return Decision(
            record,
            None,
            f"{label}: session is not under the container the gear ran on (now at "
            f"{record.place.path()})",
            FAILED,
            correction=correction,
        )
    return _decide(record, to, label, correction=correction)


def plan_routing(record: SessionRecord, site: GroupsAndProjects) -> Decision:
    """Decision from the routing string re-read now (no corrections row for it)."""
    field = record.routing_field or "routing field"
    if record.routing_value is None or not record.routing_value.strip():
        return Decision(
            record, None, f"routing string: {field} is empty; add a correction row", SKIPPED
        )
    routing = parse_routing(record.routing_value)
    source = f"routing string {record.routing_value.strip()!r}"
    if record.routing_source:
        source += f" ({field}, from {record.routing_source})"
    if routing.placement == "unknown" or not routing.group:
        return Decision(record, None, f"{source}: no fw:// routing; add a correction row", SKIPPED)
    if not in_holding_area(record.place.group, record.place.project):
        return Decision(
            record,
            None,
            f"{source}: not in the unknown group or an Unsorted project, left where it is",
            SKIPPED,
        )
    place = record.place
    # the agent's own placement rule, against the site as it is now
    group, project, resolved = site_placement(
        routing.group_id, routing.project_label, routing.placement, site
    )
    if resolved == UNKNOWN:
        target = Routing(UNKNOWN_GROUP, UNSORTED_PROJECT)
        reason = f"{source}: target missing: group '{routing.group}' does not exist"
    else:
        target = Routing(group, project, routing.subject, routing.session)
        if resolved == ROUTED:
            reason = source
        elif routing.project:
            reason = (
                f"{source}: target missing: project '{routing.group}/{routing.project}' "
                "does not exist"
            )
        else:
            reason = f"{source}: group only"
    if target.group == UNKNOWN_GROUP and place.group != UNKNOWN_GROUP:
        return Decision(record, None, f"{reason}; left where it is", SKIPPED)
    return _decide(record, apply_target(place, target), reason)


def _by_session(
    records: Sequence[SessionRecord], corrections: Iterable[Correction]
) -> tuple[dict[str, list[Correction]], list[Decision]]:
    """Match rows to sessions; rows matching nothing or several sessions become Failed."""
    by_id = {record.id: record for record in records}
    by_uid: dict[str, list[SessionRecord]] = {}
    for record in records:
        if record.uid:
            by_uid.setdefault(record.uid, []).append(record)
    matched: dict[str, list[Correction]] = {}
    failures: list[Decision] = []
    for correction in corrections:
        label = correction.describe()
        candidates: list[SessionRecord] = []
        if correction.session_id:
            if correction.session_id in by_id:
                candidates = [by_id[correction.session_id]]
        elif correction.study_uid:
            candidates = by_uid.get(correction.study_uid, [])
        if (
            correction.session_id
            and correction.study_uid
            and candidates
            and candidates[0].uid != correction.study_uid
        ):
            failures.append(
                Decision(
                    candidates[0],
                    None,
                    f"{label}: ambiguous: session {correction.session_id} has "
                    f"StudyInstanceUID {candidates[0].uid}, not {correction.study_uid}",
                    FAILED,
                    correction=correction,
                )
            )
            continue
        if not candidates:
            name = correction.session_id or correction.study_uid or "?"
            ghost = SessionRecord(
                id=correction.session_id or "",
                place=Place("", "", "", ""),
                uid=correction.study_uid,
                in_scope=False,
            )
            failures.append(
                Decision(ghost, None, f"{label}: no session {name} found", FAILED, correction)
            )
            continue
        if len(candidates) > 1:
            for record in candidates:
                failures.append(
                    Decision(
                        record,
                        None,
                        f"{label}: ambiguous: StudyInstanceUID {correction.study_uid} matches "
                        f"{len(candidates)} sessions; use session_id",
                        FAILED,
                        correction=correction,
                    )
                )
            continue
        matched.setdefault(candidates[0].id, []).append(correction)
    return matched, failures


def plan(
    records: Sequence[SessionRecord], corrections: Sequence[Correction], site: GroupsAndProjects
) -> list[Decision]:
    """One decision per session (plus one per corrections row that matched nothing)."""
    matched, failures = _by_session(records, corrections)
    failed_ids = {decision.record.id for decision in failures}
    decisions: list[Decision] = list(failures)
    for record in records:
        if record.id in failed_ids:
            continue
        rows = matched.get(record.id, [])
        if not rows and not record.in_scope:
            continue
        if len({row.target for row in rows}) > 1:
            numbers = ", ".join(str(row.row) for row in rows)
            decisions.append(
                Decision(
                    record,
                    None,
                    f"correction rows {numbers}: ambiguous: different targets for one session",
                    FAILED,
                    correction=rows[0],
                )
            )
        elif rows:
            decisions.append(plan_correction(record, rows[0], site))
        else:
            decisions.append(plan_routing(record, site))
    if any(d.status == FAILED and d.correction is not None for d in decisions):
        decisions = [hold(d) for d in decisions]
    return decisions


def hold(decision: Decision) -> Decision:
    """Keep a planned move back because the corrections CSV has errors."""
    if not decision.moves:
        return decision
    to = decision.to.path() if decision.to else ""
    return replace(
        decision,
        to=None,
        status=SKIPPED,
        reason=f"{decision.reason}; would go to {to}, held back: the corrections CSV has errors",
    )
