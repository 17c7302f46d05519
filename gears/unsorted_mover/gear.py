"""unsorted-mover: plan (and with ``dry_run`` false, carry out) moves out of Unsorted.

Runs on a project, subject or session. Writes the report CSV to output/ and attaches it to
the container it ran on. Exit code 1 when any session Failed, 2 when it cannot start.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fw_gear.context import GearContext
from fwmapping.site import SdkSite, quote_filter_value

from gears.common.hierarchy import Acquisition, Scope, Walker
from gears.common.report import report_name, write_report
from gears.runtime import EXIT_CONFIG, EXIT_FAILED
from gears.unsorted_mover.corrections import Correction, CorrectionsError, read_corrections
from gears.unsorted_mover.move import api_error, apply
from gears.unsorted_mover.plan import FAILED, Decision, SessionRecord, plan
from gears.unsorted_mover.records import to_record

log = logging.getLogger("unsorted-mover")

GEAR = "unsorted-mover"
COLUMNS = ["Session ID", "Session Label", "Subject Label", "From", "To", "Reason", "Status"]
SCOPES = ("project", "subject", "session")


def report_row(decision: Decision) -> dict[str, str]:
    record = decision.record
    to = decision.to.path() if decision.to else ""
    if not to and decision.status == FAILED and decision.correction is not None:
        to = decision.correction.target.path()  # what the admin asked for
    return {
        "Session ID": record.id,
        "Session Label": record.place.session,
        "Subject Label": record.place.subject,
        "From": record.place.path() if record.place.group else "",
        "To": to,
        "Reason": decision.reason,
        "Status": decision.status,
    }


def destination(context: GearContext, client: Any) -> tuple[str, str]:
    """(type, id) of the container to triage; an analysis stands for its parent."""
    dest = context.config.destination or {}
    ctype, cid = str(dest.get("type", "")), str(dest.get("id", ""))
    if ctype == "analysis":
        parent = client.get_analysis(cid).parent
        ctype, cid = str(parent["type"]), str(parent["id"])
    return ctype, cid


def outside_records(
    client: Any, walker: Walker, corrections: list[Correction], scope: Scope, field: str | None
) -> list[SessionRecord]:
    """Sessions named by corrections rows but not under the container (already moved?)."""
    known_ids = {session.id for session in scope.sessions}
    known_uids = {session.uid for session in scope.sessions if session.uid}
    found: dict[str, SessionRecord] = {}
    for row in corrections:
        raws: list[Any] = []
        try:
            if row.session_id and row.session_id not in known_ids:
                raws = [client.get_session(row.session_id)]
            elif not row.session_id and row.study_uid and row.study_uid not in known_uids:
                raws = list(client.sessions.find(f"uid={quote_filter_value(row.study_uid)}"))
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
        for raw in raws:
            session = walker.session_from(raw)
            found[session.id] = to_record(session, [], field, in_scope=False)
    return list(found.values())


def run(context: GearContext) -> int:
    opts = context.config.opts
    dry_run = bool(opts.get("dry_run", True))
    # unset: each session's field as the agent recorded it at upload, else PatientID
    field = str(opts.get("routing_field") or "").strip() or None
    client = context.client
    if client is None:
        log.error("no api-key input: the gear needs Flywheel API access (manifest input api-key)")
        return EXIT_CONFIG
    corrections: list[Correction] = []
    given = context.config.get_input_path("corrections")
    if given is not None:
        path = Path(given)
        try:
            corrections = read_corrections(path)
        except CorrectionsError as exc:
            log.error("%s; nothing was moved", exc)
            return EXIT_CONFIG
        log.info("%d corrections rows read from %s", len(corrections), path.name)
    walker = Walker(client)
    try:
        ctype, cid = destination(context, client)
        scope = walker.walk(ctype, cid) if ctype in SCOPES else None
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise
        log.error("the destination cannot be read: %s", api_error(exc))
        return EXIT_CONFIG
    if scope is None:
        log.error("unsorted-mover runs on a project, subject or session, not on a %s", ctype)
        return EXIT_CONFIG

    by_session: dict[str, list[Acquisition]] = defaultdict(list)
    for acquisition in scope.acquisitions:
        by_session[acquisition.session.id].append(acquisition)
    records = [to_record(s, by_session[s.id], field, client) for s in scope.sessions]
    records += outside_records(client, walker, corrections, scope, field)
    log.info("%s %s: %d sessions to triage", ctype, scope.label, len(scope.sessions))
    fields = Counter((r.routing_field, r.field_source) for r in records)
    for (used, source), count in sorted(fields.items(), key=lambda item: str(item[0])):
        log.info("routing field %s (%s) for %d session(s)", used, source, count)

    decisions = plan(records, corrections, SdkSite(client))
    if not dry_run:
        sessions = {session.id: session for session in scope.sessions}
        decisions = apply(client, decisions, sessions, allow_subject_moves=ctype != "session")

    counts = Counter(decision.status for decision in decisions)
    name = report_name(GEAR, [scope.label])
    try:
        write_report(
            context.output_dir, name, COLUMNS, [report_row(d) for d in decisions], client, cid
        )
    except Exception as exc:
        log.error("report written to output/ but not attached: %s", api_error(exc))
        return EXIT_FAILED
    summary = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    log.info("%s%s", "dry run (nothing changed): " if dry_run else "", summary or "no sessions")
    return EXIT_FAILED if counts[FAILED] else 0
