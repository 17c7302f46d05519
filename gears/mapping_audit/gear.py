"""mapping-audit gear: audit a project, subject, session or acquisition; report and tag.

Findings are results, not failures: the gear exits 0 whenever the audit ran, and non-zero
only when it could not (no API key, a destination it cannot audit, the site unreachable).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from fw_gear.context import GearContext
from fwmapping.info import choose_settings

from gears.common.hierarchy import SCOPES, Walker
from gears.common.report import report_name, write_report
from gears.runtime import EXIT_CONFIG, EXIT_FAILED

from .audit import AuditResult, audit
from .checks import COLUMNS, Finding

log = logging.getLogger(__name__)

GEAR = "mapping-audit"
TAG_PREFIX = "mapping-audit:"


class AuditError(Exception):
    """The audit could not run; the message is for the user."""


def check_settings(opts: dict[str, Any]) -> None:
    """Refuse mapping settings in the gear config that cannot work (e.g. an unknown timezone);
    unset ones default per acquisition to what the agent recorded at upload."""
    try:
        choose_settings(opts, None)
    except ValueError as exc:
        raise AuditError(f"invalid config: {exc}") from None


def target(context: GearContext, client: Any) -> tuple[str, str, dict[tuple[str, str], Path]]:
    """(container type, id, local files) to audit: the file input's acquisition, else the
    destination (an analysis stands for its parent)."""
    file_input = context.config.get_input("file")
    if file_input:
        parent = file_input.get("hierarchy") or {}
        name = (file_input.get("location") or {}).get("name") or ""
        path = context.config.get_input_path("file")
        if parent.get("type") in SCOPES and parent.get("id"):
            local = {(parent["id"], name): Path(path)} if path and name else {}
            return parent["type"], parent["id"], local
        log.info("file input without an acquisition parent; auditing the destination")
    destination = context.config.destination or {}
    kind, cid = destination.get("type"), destination.get("id")
    if kind == "analysis" and cid:
        parent = client.get_analysis(cid).parent
        kind, cid = parent.type, parent.id
    if kind not in SCOPES or not cid:
        raise AuditError(
            f"cannot audit a {kind or 'missing'} destination: run mapping-audit on a "
            f"{', '.join(SCOPES)}"
        )
    return str(kind), str(cid), {}


def tag_findings(client: Any, findings: list[Finding], existing: dict[str, set[str]]) -> int:
    """Tag each flagged container ``mapping-audit:<check>`` once; return tags added."""
    added = 0
    done: set[tuple[str, str]] = set()
    for finding in findings:
        tag = TAG_PREFIX + finding.check
        key = (finding.container_id, tag)
        if key in done or tag in existing.get(finding.container_id, set()):
            continue
        getattr(client, f"add_{finding.container_type}_tag")(finding.container_id, tag)
        done.add(key)
        added += 1
    return added


def summary(result: AuditResult, scope_desc: str) -> str:
    """One paragraph for the log."""
    head = (
        f"Audited {result.acquisitions} DICOM acquisition(s) ({result.files} file(s)) "
        f"in {scope_desc}; {result.skipped} acquisition(s) without DICOM skipped."
    )
    if not result.findings:
        return head + " No findings: everything is where the mapping rules put it."
    severities = Counter(finding.severity for finding in result.findings)
    checks = Counter(finding.check for finding in result.findings)
    return (
        f"{head} {len(result.findings)} finding(s) "
        f"({', '.join(f'{n} {s}' for s, n in sorted(severities.items()))}): "
        + ", ".join(f"{check} {n}" for check, n in sorted(checks.items()))
    )


def run(context: GearContext) -> int:
    opts = dict(context.config.opts or {})
    client = context.client
    if client is None:
        log.error("mapping-audit needs the api-key input to read the site")
        return EXIT_CONFIG
    try:
        check_settings(opts)
        kind, cid, local = target(context, client)
        walker = Walker(client)
        scope = walker.walk(kind, cid)
        result = audit(client, walker, scope, opts, local, look_elsewhere=kind != "project")
    except AuditError as exc:  # invalid config or a destination it cannot audit
        log.error("%s", exc)
        return EXIT_CONFIG
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status is None:
            raise
        reason = getattr(exc, "detail", None) or getattr(exc, "reason", None) or exc
        log.error("the audit could not read the site: HTTP %s: %s", status, reason)
        return EXIT_CONFIG if status == 404 else EXIT_FAILED
    scope_desc = f"{scope.type} {scope.label} ({scope.project.group}/{scope.project.label})"
    name = report_name(GEAR, [scope.label])
    write_report(context.output_dir, name, COLUMNS, [f.row() for f in result.findings])
    for used, count in sorted(result.settings.items()):
        log.info("mapping settings for %d acquisition(s): %s", count, used)
    log.info("%s", summary(result, scope_desc))
    if opts.get("tag_findings") and result.findings:
        existing = {s.id: set(s.tags) for s in scope.sessions}
        existing.update({a.id: set(a.tags) for a in scope.acquisitions})
        log.info("Added %d tag(s)", tag_findings(client, result.findings, existing))
    return 0
