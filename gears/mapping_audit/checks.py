"""The audit's checks: pure functions over what the site holds and what the rules expect.

``expected`` is fwmapping's metadata for a file's header, placed against the site without
following the session (following would always agree with wherever the session is now).
Every difference becomes a :class:`Finding`, one CSV row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fwmapping import UNKNOWN, UNSORTED, in_holding_area, parse_routing
from fwmapping.info import last_move_target

from gears.common.hierarchy import Acquisition, File, Session

from .phi import looks_like_phi, mask, masked_routing, routing_phi

ERROR = "error"
WARNING = "warning"
INFO = "info"

# check name -> severity; the names are also the tags ``mapping-audit:<check>``.
CHECKS: dict[str, str] = {
    "misplaced": ERROR,
    "unsorted-resolvable": WARNING,
    "routing-unresolved": WARNING,
    "no-routing": WARNING,
    "phi-in-routing": ERROR,
    "session-uid": ERROR,
    "session-label": WARNING,
    "session-timestamp": WARNING,
    "study-split": ERROR,
    "acquisition-uid": ERROR,
    "acquisition-label": WARNING,
    "acquisition-timestamp": WARNING,
    "series-split": ERROR,
    "header-unreadable": WARNING,
}

COLUMNS = ("Container ID", "FW Path", "Check", "Expected", "Actual", "Severity")


@dataclass(frozen=True)
class Finding:
    container_id: str
    container_type: str  # session or acquisition: what gets tagged
    fw_path: str
    check: str
    expected: str
    actual: str

    @property
    def severity(self) -> str:
        return CHECKS[self.check]

    def row(self) -> dict[str, str]:
        return dict(
            zip(
                COLUMNS,
                (
                    self.container_id,
                    self.fw_path,
                    self.check,
                    self.expected,
                    self.actual,
                    self.severity,
                ),
                strict=True,
            )
        )


@dataclass
class Audited:
    """One DICOM file of an acquisition, its header and where the rules would put it."""

    acquisition: Acquisition
    file: File
    header: dict[str, Any]
    expected: dict[str, Any]


def _session_finding(session: Session, check: str, expected: str, actual: str) -> Finding:
    return Finding(session.id, "session", session.fw_path, check, expected, actual)


def _acq_finding(item: Audited, check: str, expected: str, actual: str) -> Finding:
    acq = item.acquisition
    return Finding(
        acq.id, "acquisition", f"{acq.fw_path}/{item.file.name}", check, expected, actual
    )


def as_datetime(value: Any) -> datetime | None:
    """A Flywheel or fwmapping timestamp as an aware datetime (naive taken as UTC)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _show_time(value: Any) -> str:
    moment = as_datetime(value)
    return moment.isoformat() if moment else "(none)"


def _show(value: Any) -> str:
    return "(none)" if value in (None, "") else str(value)


def location(group: str, project: str, subject: str) -> str:
    return f"{group}/{project}/{subject}"


def moved_by_admin(session: Session) -> bool:
    """unsorted-mover recorded a move that put the session where it is now (a move whose
    target cannot be read counts: the admin placed it, wherever that was)."""
    target = last_move_target(session.info)
    if target is None:
        return False
    if target.group is None:
        return True
    return target.group == session.project.group and target.project in (
        None,
        session.project.label,
    )


def _routing_shown(value: str, header: Mapping[str, Any], field: str) -> str:
    hits = routing_phi(value, header, field)
    if hits:
        return masked_routing(value, hits)
    if not value.strip():
        return "(empty)"
    return "(masked)" if looks_like_phi(value, header, field) else value


def check_location(item: Audited) -> list[Finding]:
    """Misplaced, or waiting in Unknown/Unsorted although the routing now resolves."""
    session = item.acquisition.session
    expected = item.expected
    want = location(
        expected["group"]["_id"],
        expected["project"]["label"],
        expected["session"]["subject"]["label"],
    )
    have = location(session.project.group, session.project.label, session.subject.label)
    if want == have or moved_by_admin(session):
        return []
    holding = in_holding_area(session.project.group, session.project.label)
    if not holding and in_holding_area(expected["group"]["_id"], expected["project"]["label"]):
        # the rules cannot place it and someone triaged it by hand: the routing findings
        # (no-routing, routing-unresolved) still tell why; the placement is the admin's
        return []
    check = "unsorted-resolvable" if holding else "misplaced"
    return [_session_finding(session, check, want, have)]


def check_routing(item: Audited) -> list[Finding]:
    """No usable routing value, routing to what does not exist, PHI in the routing string."""
    session = item.acquisition.session
    routing = item.expected.get("routing", {})
    field = str(routing.get("field") or "PatientID")
    value = str(routing.get("value") or "")
    header = item.header
    findings: list[Finding] = []
    placement = routing.get("placement")
    if placement == UNKNOWN:
        findings.append(
            _session_finding(
                session,
                "no-routing",
                f"fw://<group>/<project>/... in {field}",
                _routing_shown(value, header, field),
            )
        )
    elif routing.get("resolved") in (UNKNOWN, UNSORTED) and routing.get("resolved") != placement:
        parsed = parse_routing(value)
        missing = (
            f"group {parsed.group}"
            if routing.get("resolved") == UNKNOWN
            else f"project {parsed.group}/{parsed.project}"
        )
        findings.append(
            _session_finding(
                session,
                "routing-unresolved",
                f"existing {missing}",
                f"{_routing_shown(value, header, field)} ({missing} not on the site)",
            )
        )
    hits = routing_phi(value, header, field)
    if hits:
        kinds = "; ".join(f"{hit.part}: {hit.kind}" for hit in hits)
        findings.append(
            _session_finding(
                session,
                "phi-in-routing",
                "routing string without PHI",
                f"{masked_routing(value, hits)} ({kinds})",
            )
        )
    return findings


def _differences(kind: str, want: dict[str, Any], actual: Any) -> list[tuple[str, str, str]]:
    """(check, expected, actual) where a session's or acquisition's uid, label or timestamp
    differ from what the rules compute."""
    found = []
    for key in ("uid", "label"):
        value = getattr(actual, key)
        if want.get(key) and want[key] != value:
            found.append((f"{kind}-{key}", want[key], _show(value)))
    if want.get("timestamp") and as_datetime(want["timestamp"]) != as_datetime(actual.timestamp):
        found.append(
            (f"{kind}-timestamp", _show_time(want["timestamp"]), _show_time(actual.timestamp))
        )
    return found


def check_session(item: Audited) -> list[Finding]:
    """Session uid, label and timestamp as the rules compute them."""
    session = item.acquisition.session
    differences = _differences("session", item.expected["session"], session)
    return [_session_finding(session, *difference) for difference in differences]


def check_acquisition(item: Audited) -> list[Finding]:
    """Acquisition uid, label and timestamp as the rules compute them."""
    differences = _differences("acquisition", item.expected["acquisition"], item.acquisition)
    return [_acq_finding(item, *difference) for difference in differences]


def check_item(item: Audited) -> list[Finding]:
    """Every per-file check."""
    return (
        check_location(item) + check_routing(item) + check_session(item) + check_acquisition(item)
    )


def check_splits(
    items: Iterable[Audited],
    other_sessions: Mapping[str, Iterable[Session]] | None = None,
    other_acquisitions: Mapping[str, Iterable[Acquisition]] | None = None,
) -> list[Finding]:
    """One study in several sessions; one series in several acquisitions.

    ``other_*`` hold containers found elsewhere on the site for a study / series uid (for
    runs on a single session or acquisition that cannot see the whole project).
    """
    items = list(items)
    sessions: dict[str, dict[str, Session]] = defaultdict(dict)
    acquisitions: dict[str, dict[str, Acquisition]] = defaultdict(dict)
    for item in items:
        study = item.expected["session"].get("uid")
        series = item.expected["acquisition"].get("uid")
        if study:
            sessions[study][item.acquisition.session.id] = item.acquisition.session
        if series:
            acquisitions[series][item.acquisition.id] = item.acquisition
    for uid, found in (other_sessions or {}).items():
        if uid in sessions:
            sessions[uid].update({session.id: session for session in found})
    for uid, found_acqs in (other_acquisitions or {}).items():
        if uid in acquisitions:
            acquisitions[uid].update({acq.id: acq for acq in found_acqs})
    in_scope_sessions = {item.acquisition.session.id for item in items}
    in_scope_acqs = {item.acquisition.id for item in items}
    findings: list[Finding] = []
    for uid, by_id in sessions.items():
        if len(by_id) > 1:
            paths = "; ".join(sorted(f"{s.fw_path} ({s.id})" for s in by_id.values()))
            for session in by_id.values():
                if session.id in in_scope_sessions:
                    findings.append(
                        _session_finding(
                            session,
                            "study-split",
                            f"one session for study {uid}",
                            f"{len(by_id)} sessions: {paths}",
                        )
                    )
    for uid, by_acq in acquisitions.items():
        if len(by_acq) > 1:
            paths = "; ".join(sorted(f"{a.fw_path} ({a.id})" for a in by_acq.values()))
            for acq in by_acq.values():
                if acq.id in in_scope_acqs:
                    findings.append(
                        Finding(
                            acq.id,
                            "acquisition",
                            acq.fw_path,
                            "series-split",
                            f"one acquisition for series {uid}",
                            f"{len(by_acq)} acquisitions: {paths}",
                        )
                    )
    return findings


def unreadable(acquisition: Acquisition, file: File, reason: str) -> Finding:
    return Finding(
        acquisition.id,
        "acquisition",
        f"{acquisition.fw_path}/{file.name}",
        "header-unreadable",
        "a readable DICOM header",
        reason,
    )


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """Drop repeats (session checks come once per file of the session), keep the order."""
    seen: set[tuple[str, str, str, str]] = set()
    out: list[Finding] = []
    for finding in findings:
        key = (finding.container_id, finding.check, finding.expected, finding.actual)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out


def redact(findings: Iterable[Finding], secrets: Iterable[str]) -> list[Finding]:
    """Mask labels found to be PHI wherever a row would repeat them (paths, values)."""
    ordered = sorted({value for value in secrets if value}, key=len, reverse=True)
    if not ordered:
        return list(findings)

    def clean(text: str) -> str:
        for value in ordered:
            text = text.replace(value, mask(value))
        return text

    return [
        replace(f, fw_path=clean(f.fw_path), expected=clean(f.expected), actual=clean(f.actual))
        for f in findings
    ]
