"""The status page (``GET /`` on the metrics listener): one self-contained HTML document
rendered from the status dictionary of :mod:`fwagent.report`, for a site admin's morning
check on a desktop or a phone.

No scripts, no external resources (the chart is inline SVG drawn here), a meta refresh
every ``REFRESH_SECONDS``. Every value from the state database (AE titles, descriptions,
Flywheel paths, reasons all come from scanners or remote systems) goes through
:func:`html.escape`. The status dictionary carries no patient names or birth dates.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

REFRESH_SECONDS = 30
QUARANTINE_SHOWN = 50
PLACEMENT_NAMES = {
    "routed": "Routed",
    "existing session followed": "Followed",
    "unsorted": "Unsorted",
    "unknown": "Unknown",
    "opted_out": "Opted out",
}

STYLE = """
:root{--ok:#1a7f37;--bad:#c62828;--warn:#8a5a00;--warnbg:#fff4d6;--badbg:#fdecea;--line:#ddd}
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 padding:12px;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0}h2{font-size:1.1em;margin:1.4em 0 .4em}
header p{margin:.2em 0;color:#666;font-size:.9em}
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin-top:10px}
.tile{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 12px;
 flex:1 1 9em;max-width:16em}
.tile b{display:block;font-size:1.5em}.tile span{color:#666;font-size:.85em}
.tile.warn{background:var(--warnbg);border-color:#e0b64a}
.tile.bad{background:var(--badbg);border-color:#e57373}
.alert{background:var(--warnbg);border:1px solid #e0b64a;border-radius:6px;padding:8px 12px;
 margin-top:10px}
.alert ul{margin:.3em 0 0;padding-left:1.2em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.92em}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;
 vertical-align:top}
th{background:#f0f0f0;white-space:nowrap}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.num .all{color:#777;font-size:.85em;display:block}
td.warn,tr.mistake td.where{background:var(--warnbg);color:var(--warn);font-weight:600}
td.bad,tr.failed td.state{background:var(--badbg);color:var(--bad);font-weight:600}
td.time{white-space:nowrap}
.muted{color:#888}.small{font-size:.85em}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:.85em;
 background:#eee}
.badge.unknown,.badge.unsorted{background:#f5c842;color:#3b2a00}
.badge.routed,.badge.followed{background:#d7f0dc;color:#0f5323}
svg{max-width:640px;width:100%;height:auto;background:#fff;border:1px solid var(--line)}
svg text{font:10px system-ui,sans-serif;fill:#555}
footer{margin-top:2em;color:#888;font-size:.85em}
"""


def e(value: Any) -> str:
    """HTML-escaped text of a value (quotes too: safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def short_time(value: str | None) -> str:
    """'2026-11-28T18:31:18+00:00' -> '2026-11-28 18:31'."""
    if not value:
        return "—"
    return value[:16].replace("T", " ")


def epoch_time(epoch: float | None, tz: ZoneInfo) -> str:
    if not epoch:
        return "—"
    return datetime.fromtimestamp(float(epoch), tz).strftime("%Y-%m-%d %H:%M")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def render(data: dict[str, Any], agent_title: str = "") -> str:
    """The whole page."""
    tz = _zone(str(data.get("timezone") or "UTC"))
    body = "\n".join(
        [
            _header(data, agent_title, tz),
            _alerts(data),
            _scanners(data),
            _chart(data.get("uploads_per_hour") or []),
            _recent(data.get("recent_series") or []),
            _failures(data.get("failures") or [], tz),
            _quarantine(data.get("quarantine") or [], tz),
            _pull(data.get("pull")),
        ]
    )
    title = f"fwagent {agent_title}".strip()
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>{e(title)} status</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f"<footer>Refreshes every {REFRESH_SECONDS} s. The same data: "
        '<a href="status.json">status.json</a> · <a href="metrics">metrics</a>.'
        "</footer>\n</body></html>\n"
    )


def _tile(ident: str, label: str, value: Any, cls: str = "") -> str:
    return (
        f'<div class="tile {cls}" id="{ident}"><b class="value">{e(value)}</b>'
        f"<span>{e(label)}</span></div>"
    )


def _header(data: dict[str, Any], agent_title: str, tz: ZoneInfo) -> str:
    series = data.get("series") or {}
    day = data.get("scanners_24h") or {}
    misplaced = sum(s.get("unknown", 0) + s.get("unsorted", 0) for s in day.values())
    failing = sum(int(s.get("failed_series", 0)) for s in (data.get("scanners") or {}).values())
    waiting = int(data.get("instances_waiting", 0))
    quarantined = len(data.get("quarantine") or [])
    uploaded_24h = sum(s.get("uploaded_series", 0) for s in day.values())
    states = " · ".join(f"{e(n)} {e(k.replace('_', ' '))}" for k, n in series.items() if n)
    tiles = "".join(
        [
            _tile("tile-uploaded", "series uploaded, 24 h", uploaded_24h),
            _tile("tile-queue", "images waiting (queue)", waiting),
            _tile("tile-failing", "series failing now", failing, "bad" if failing else ""),
            _tile(
                "tile-misplaced",
                "in Unknown / Unsorted, 24 h",
                misplaced,
                "warn" if misplaced else "",
            ),
            _tile(
                "tile-quarantine", "files quarantined", quarantined, "bad" if quarantined else ""
            ),
        ]
    )
    return (
        f"<header><h1>fwagent {e(agent_title)}</h1>"
        f'<p>Updated <time id="generated">{e(short_time(data.get("generated_at")))}</time>'
        f" ({e(tz.key)}) · series: {states or 'none yet'}</p>"
        f'<div class="tiles">{tiles}</div></header>'
    )


def _alerts(data: dict[str, Any]) -> str:
    """The operator's routing mistakes of the last 24 h, by scanner."""
    day = data.get("scanners_24h") or {}
    items = []
    for ae, counts in sorted(day.items()):
        parts = [
            f"{counts[k]} in {name}"
            for k, name in (("unknown", "Unknown"), ("unsorted", "Unsorted"))
            if counts.get(k)
        ]
        if parts:
            items.append(f"<li><b>{e(ae)}</b>: {e(', '.join(parts))}</li>")
    if not items:
        return ""
    return (
        '<div class="alert" id="routing-alert"><b>Routing mistakes in the last 24 h</b>'
        " (series placed in Unknown or Unsorted: the routing string had no <code>fw://</code>,"
        " or names a group or project that does not exist). Check the scanner's routing field,"
        " then triage with the unsorted-mover gear."
        f"<ul>{''.join(items)}</ul></div>"
    )


COLUMNS = (
    ("received", "received_instances", "Images received"),
    ("uploaded", "uploaded_series", "Series uploaded"),
    ("failed", "failed_series", "Failed"),
    ("opted-out", "opted_out_series", "Opted out"),
    ("unknown", "unknown", "Unknown"),
    ("unsorted", "unsorted", "Unsorted"),
)


def _scanners(data: dict[str, Any]) -> str:
    overall = data.get("scanners") or {}
    day = data.get("scanners_24h") or {}
    if not overall:
        return '<h2>Scanners</h2><p class="muted" id="scanners">Nothing received yet.</p>'
    head = "".join(f"<th>{e(title)}</th>" for _, _, title in COLUMNS)
    rows = []
    for ae in sorted(overall):
        total, recent = overall[ae], day.get(ae, {})
        cells = []
        for cls, key, _ in COLUMNS:
            now, ever = int(recent.get(key, 0)), int(total.get(key, 0))
            flag = ""
            if key in ("unknown", "unsorted") and now:
                flag = " warn"
            elif key == "failed_series" and now:
                flag = " bad"
            cells.append(
                f'<td class="num {cls}{flag}"><span class="h24">{now}</span>'
                f'<span class="all">{ever} all</span></td>'
            )
        done = int(total.get("uploaded_series", 0))
        failed = int(total.get("failed_series", 0))
        rate = f"{100 * done / (done + failed):.0f}%" if done + failed else "—"
        mistake = " mistake" if recent.get("unknown") or recent.get("unsorted") else ""
        rows.append(
            f'<tr class="scanner{mistake}" data-ae="{e(ae)}"><th class="ae">{e(ae or "?")}</th>'
            f"{''.join(cells)}"
            f'<td class="num success">{rate}</td>'
            f'<td class="time last">{e(short_time(total.get("last_received")))}</td></tr>'
        )
    return (
        "<h2>Scanners</h2>"
        '<p class="small muted">Per calling AE title: last 24 h, with the total below.'
        " Success = uploaded / (uploaded + failed), all time.</p>"
        f'<div class="scroll"><table id="scanners"><thead><tr><th>Scanner (AE)</th>{head}'
        f"<th>Success</th><th>Last received</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _chart(hours: list[dict[str, Any]]) -> str:
    """Uploaded (and failed) series per hour as an inline SVG bar chart."""
    if not hours:
        return ""
    width, height, left, bottom, top = 480, 140, 28, 18, 10
    plot_h = height - bottom - top
    step = (width - left - 4) / len(hours)
    peak = max(max(int(h["uploaded"]) + int(h["failed"]) for h in hours), 1)
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 2}" y2="{height - bottom}"'
        ' stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for i, h in enumerate(hours):
        up, bad = int(h["uploaded"]), int(h["failed"])
        x = left + i * step + 1
        label = short_time(h.get("hour"))[11:]
        up_h = plot_h * up / peak
        bad_h = plot_h * bad / peak
        y = height - bottom - up_h
        tip = f"{label}: {up} uploaded, {bad} failed, {h.get('received', 0)} images received"
        parts.append(
            f'<g class="bar" data-hour="{e(label)}" data-uploaded="{up}" data-failed="{bad}">'
            f"<title>{e(tip)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step - 2:.1f}" height="{up_h:.1f}"'
            ' fill="#2e7d32"/>'
            f'<rect x="{x:.1f}" y="{y - bad_h:.1f}" width="{step - 2:.1f}" height="{bad_h:.1f}"'
            ' fill="#c62828"/></g>'
        )
        if i % 6 == 0 or i == len(hours) - 1:
            anchor = "end" if i == len(hours) - 1 else "middle"
            parts.append(
                f'<text x="{min(x + step / 2, width - 2):.1f}" y="{height - 5}"'
                f' text-anchor="{anchor}">{e(label)}</text>'
            )
    total_up = sum(int(h["uploaded"]) for h in hours)
    total_bad = sum(int(h["failed"]) for h in hours)
    return (
        f"<h2>Uploads per hour, last 24 h</h2>"
        f'<p class="small muted" id="chart-total">{total_up} series uploaded,'
        f" {total_bad} failed attempts (red).</p>"
        f'<svg id="uploads-chart" viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="Series uploaded per hour over the last 24 hours"'
        f' xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _placement_badge(placement: str) -> str:
    name = PLACEMENT_NAMES.get(placement, placement)
    cls = {"existing session followed": "followed", "opted_out": "opted"}.get(placement, placement)
    return f'<span class="badge {e(cls)}">{e(name)}</span>' if name else ""


def _recent(series: list[dict[str, Any]]) -> str:
    if not series:
        return '<h2>Latest series</h2><p class="muted" id="recent">None yet.</p>'
    rows = []
    for s in series:
        placement = str(s.get("placement") or "")
        state = str(s.get("state") or "")
        classes = ["series", f"state-{state}"]
        if placement in ("unknown", "unsorted"):
            classes.append("mistake")
        if state in ("failed", "abandoned"):
            classes.append("failed")
        if placement == "opted_out":
            where = '<span class="muted">not uploaded (opted out)</span>'
        elif s.get("where"):
            where = f"{_placement_badge(placement)} {e(s['where'])}"
        else:
            where = '<span class="muted">not uploaded yet</span>'
        rows.append(
            f'<tr class="{" ".join(classes)}" title="{e(s.get("series_uid"))}">'
            f'<td class="time">{e(short_time(s.get("time")))}</td>'
            f'<td class="ae">{e(s.get("scanner"))}</td>'
            f'<td class="where">{where}</td>'
            f'<td class="description">{e(s.get("description")) or "—"}</td>'
            f'<td class="num images">{e(s.get("instances"))}</td>'
            f'<td class="state">{e(state.replace("_", " "))}</td>'
            f'<td class="reason small">{e(s.get("reason"))}</td></tr>'
        )
    return (
        f"<h2>Latest {len(series)} series</h2>"
        '<div class="scroll"><table id="recent"><thead><tr><th>Last image</th><th>Scanner</th>'
        "<th>Where it landed (Flywheel)</th><th>Series</th><th>Images</th><th>State</th>"
        f"<th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _failures(failures: Iterable[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        f'<tr><td class="time">{e(epoch_time(f.get("updated_at"), tz))}</td>'
        f'<td class="small">{e(f.get("series_uid"))}</td><td>{e(f.get("state"))}</td>'
        f'<td class="num">{e(f.get("attempts"))}</td><td>{e(f.get("last_error"))}</td></tr>'
        for f in failures
    ]
    if not rows:
        return ""
    return (
        f"<h2>Failing now ({len(rows)})</h2>"
        '<div class="scroll"><table id="failures"><thead><tr><th>Last attempt</th><th>Series</th>'
        "<th>State</th><th>Attempts</th><th>Reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _quarantine(entries: list[dict[str, Any]], tz: ZoneInfo) -> str:
    if not entries:
        return '<h2>Quarantine</h2><p class="muted" id="quarantine">Empty.</p>'
    shown = sorted(entries, key=lambda q: float(q.get("at") or 0), reverse=True)
    rows = [
        f'<tr><td class="time">{e(epoch_time(q.get("at"), tz))}</td>'
        f'<td class="small">{e(os.path.basename(str(q.get("path") or "")))}</td>'
        f'<td class="small">{e(q.get("series_uid")) or "—"}</td>'
        f'<td class="reason">{e(q.get("reason"))}</td></tr>'
        for q in shown[:QUARANTINE_SHOWN]
    ]
    more = len(entries) - len(rows)
    note = f'<p class="small muted">and {more} older (see status.json).</p>' if more > 0 else ""
    return (
        f"<h2>Quarantine ({len(entries)})</h2>"
        '<p class="small muted">Files kept aside in the spool as unreadable; the rest of their'
        " series carried on.</p>"
        '<div class="scroll"><table id="quarantine"><thead><tr><th>When</th><th>File</th>'
        f"<th>Series</th><th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table></div>{note}"
    )


def _pull(pull: Any) -> str:
    if not isinstance(pull, dict):
        return ""
    if "error" in pull:
        return f'<h2>Pull</h2><p class="bad" id="pull">{e(pull["error"])}</p>'
    counts = " · ".join(f"{e(n)} {e(k)}" for k, n in (pull.get("series") or {}).items() if n)
    poll = pull.get("last_poll") or {}
    problems = [
        f"<li>{e(p.get('series_uid'))}: {e(p.get('state'))} after {e(p.get('failures'))}"
        f" failures: {e(p.get('reason'))}</li>"
        for p in pull.get("abandoned_and_retrying") or []
    ]
    error = f" · last error: {e(poll['error'])}" if poll.get("error") else ""
    return f'<h2>Pull</h2><p id="pull">series: {counts or "none"}{error}</p>' + (
        f"<ul>{''.join(problems)}</ul>" if problems else ""
    )
