"""Per-scanner numbers from the state database, the bounded ``calling_ae`` label, the status
page's escaping and the listener's routing and basic auth (in-process WSGI calls)."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from fwagent import statuspage
from fwagent.config import ConfigError, config_from_dict
from fwagent.metrics import OTHER, ScannerLabels
from fwagent.report import status
from fwagent.state import FAILED, OPTED_OUT, UPLOADED, State
from fwagent.web import Credentials, StatusApp, credentials_for

DAY = 24 * 3600


def receive(state: State, series: str, count: int, ae: str, at: float, desc: str = "") -> None:
    for n in range(count):
        state.record_instance(
            f"{series}.{n}.{at}", series, "ST", Path(f"/spool/{series}/{n}"), 10,
            calling_aet=ae, now=at, description=desc,
        )  # fmt: skip


def settle(state: State, series: str, final: str, placement: str = "", error: str = "") -> None:
    claimed = state.claim(series)
    assert claimed is not None
    at, rows = claimed
    done = [] if final == FAILED else rows
    ok, _ = state.finish(series, final, at, done, placement=placement, error=error,
                         destination="psych/study01/s1/ses" if final == UPLOADED else "")  # fmt: skip
    assert ok


def backdate(state: State, series: str, at: float) -> None:
    with state._tx() as db:
        db.execute(
            "UPDATE series SET uploaded_at=?, updated_at=? WHERE series_uid=?", (at, at, series)
        )


def test_scanner_counts_overall_and_last_24h(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    now = time.time()
    receive(state, "S1", 3, "MR1", now - 2 * DAY)  # two days ago, routed
    settle(state, "S1", UPLOADED, "routed")
    backdate(state, "S1", now - 2 * DAY)
    receive(state, "S2", 2, "MR1", now - 60, "T1")  # today, to Unknown; its third instance
    receive(state, "S2", 1, "CT9", now - 50, "other")  # comes from another AE: still MR1's
    settle(state, "S2", UPLOADED, "unknown")
    receive(state, "S3", 1, "CT9", now - 40)
    settle(state, "S3", FAILED, error="HTTP 403: refused")
    receive(state, "S4", 1, "CT9", now - 30)
    settle(state, "S4", OPTED_OUT, "opted_out")

    overall = state.scanner_counts()
    assert {ae: {k: v for k, v in c.items() if k != "last_received"} for ae, c in overall.items()} == {
        "MR1": {"received_instances": 6, "uploaded_series": 2, "failed_series": 0,
                "opted_out_series": 0, "unknown": 1, "unsorted": 0, "routed": 1},
        "CT9": {"received_instances": 2, "uploaded_series": 0, "failed_series": 1,
                "opted_out_series": 1, "unknown": 0, "unsorted": 0, "routed": 0},
    }  # fmt: skip
    assert overall["MR1"]["last_received"] == pytest.approx(now - 50)
    day = state.scanner_counts(since=now - DAY)
    assert day["MR1"]["received_instances"] == 3 and day["MR1"]["uploaded_series"] == 1
    assert day["MR1"]["routed"] == 0 and day["MR1"]["unknown"] == 1
    assert day["CT9"]["failed_series"] == 1 and day["CT9"]["opted_out_series"] == 1
    # a scanner with nothing in the window is not listed for it
    receive(state, "S5", 1, "OLD", now - 3 * DAY)
    assert "OLD" in state.scanner_counts() and "OLD" not in state.scanner_counts(now - DAY)

    # a failed series being retried right now still counts as failed (no blinking)
    assert state.claim("S3") is not None
    assert state.series("S3").state == "uploading"  # type: ignore[union-attr]
    assert state.scanner_counts()["CT9"]["failed_series"] == 1
    assert state.scanner_counts(since=now - DAY)["CT9"]["failed_series"] == 1
    state.recover()  # back to complete, as after a restart

    config = config_from_dict({"spool_dir": str(tmp_path), "timezone": "Europe/Berlin"})
    doc = status(config, state, now=now)
    json.dumps(doc)  # one JSON document
    assert doc["scanners"]["MR1"]["received_instances"] == 6
    assert doc["scanners"]["MR1"]["last_received"].endswith(("+01:00", "+02:00"))
    assert doc["scanners_24h"]["MR1"]["received_instances"] == 3
    assert [s["series_uid"] for s in doc["recent_series"]] == ["S4", "S3", "S2", "S1", "S5"]
    s2 = doc["recent_series"][2]
    assert (s2["scanner"], s2["description"], s2["instances"]) == ("MR1", "T1", 3)
    assert doc["recent_series"][1]["reason"] == "HTTP 403: refused"
    hours = doc["uploads_per_hour"]
    # upload events are counted when they happen (S1 was uploaded now, then backdated)
    assert len(hours) == 24 and sum(h["uploaded"] for h in hours) == 2
    assert sum(h["received"] for h in hours) == 5 and sum(h["failed"] for h in hours) == 1


def test_state_written_before_the_scanner_columns_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE series (series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL DEFAULT '',"
        " state TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'push', calling_aet TEXT NOT NULL"
        " DEFAULT '', first_seen REAL NOT NULL, last_received REAL NOT NULL, attempts INTEGER"
        " NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL"
        " DEFAULT '', placement TEXT NOT NULL DEFAULT '', destination TEXT NOT NULL DEFAULT '',"
        " uploaded_count INTEGER NOT NULL DEFAULT 0, uploaded_at REAL, updated_at REAL NOT NULL);"
        "INSERT INTO series(series_uid, state, calling_aet, first_seen, last_received,"
        " placement, uploaded_at, updated_at) VALUES ('OLD', 'uploaded', 'MR1', 1, 2, 'routed',"
        " 3, 3);"
    )
    db.commit()
    db.close()
    state = State(path)
    row = state.series("OLD")
    assert row is not None and row.received_count == 0 and row.description == ""
    receive(state, "OLD", 1, "MR1", 10.0, "late")
    assert state.scanner_counts()["MR1"]["received_instances"] == 1
    assert state.series("OLD").description == "late"  # type: ignore[union-attr]


def test_calling_ae_label_is_bounded() -> None:
    labels = ScannerLabels(limit=3)
    labels.configure(["MR1", " PACS "])
    assert [labels(a) for a in ("A", "B", "C", "D", "A", "MR1", "PACS", "")] == [
        "A", "B", "C", OTHER, "A", "MR1", "PACS", OTHER,
    ]  # fmt: skip


def test_credentials_compare_user_and_password() -> None:
    creds = Credentials("admin", "pa:ss")

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert creds.check(basic("admin:pa:ss"))
    assert creds.check("basic " + basic("admin:pa:ss")[6:])
    for bad in ("admin:pa", "admin:pa:ssx", "Admin:pa:ss", "adminpa:ss", ":pa:ss"):
        assert not creds.check(basic(bad)), bad
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"x").decode()):
        assert not creds.check(header), header


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_escapes_everything_from_scanners() -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    counts = dict.fromkeys(
        ("received_instances", "uploaded_series", "failed_series", "opted_out_series"), 1
    )
    scanner = {**counts, "unknown": 1, "unsorted": 0, "routed": 0, "last_received": None}
    data = {
        "series": {"uploaded": 1},
        "instances_waiting": 0,
        "scanners": {hostile: scanner},
        "scanners_24h": {hostile: scanner},
        "recent_series": [
            {
                "time": None,
                "scanner": hostile,
                "series_uid": hostile,
                "description": hostile,
                "instances": 1,
                "state": "failed",
                "placement": "unknown",
                "where": hostile,
                "reason": hostile,
            }
        ],  # fmt: skip
        "uploads_per_hour": [{"hour": hostile, "uploaded": 1, "failed": 0, "received": 1}],
        "failures": [
            {
                "series_uid": hostile,
                "state": "failed",
                "attempts": 1,
                "last_error": hostile,
                "updated_at": 1.0,
            }
        ],  # fmt: skip
        "quarantine": [
            {"path": "/q/" + hostile, "reason": hostile, "series_uid": hostile, "at": 1.0}
        ],  # fmt: skip
        "pull": {"error": hostile},
        "timezone": hostile,
    }
    page = statuspage.render(data, agent_title=hostile)
    tree = _Tree()
    tree.feed(page)
    assert "script" not in tree.tags and "img" not in tree.tags
    assert not [name for name, _ in tree.attrs if name.startswith("on")]
    assert "".join(tree.text).count(hostile) >= 8  # shown literally, as text


def wsgi(app: StatusApp, path: str, method: str = "GET", auth: str | None = None) -> Any:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": method}
    if auth:
        environ["HTTP_AUTHORIZATION"] = auth
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO()
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return int(got["status"].split()[0]), got["headers"], body


def test_listener_routes_and_auth(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("hunter2\nignored second line\n")
    config = config_from_dict(
        {
            "spool_dir": str(tmp_path),
            "metrics": {"basic_auth": {"user": "admin", "password_file": str(password)}},
        }
    )
    state = State(config.state_path)
    app = StatusApp(config, state, credentials_for(config))
    token = "Basic " + base64.b64encode(b"admin:hunter2").decode()
    for path in ("/", "/status.json", "/metrics", "/nope"):
        code, headers, _ = wsgi(app, path)
        assert code == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    code, headers, body = wsgi(app, "/status.json", auth=token)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["scanners"] == {}
    code, headers, body = wsgi(app, "/", auth=token)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"Nothing received yet" in body
    code, _, body = wsgi(app, "/metrics", auth=token)
    assert code == 200 and b"fwagent_queue_depth" in body
    code, headers, body = wsgi(app, "/", method="HEAD", auth=token)
    assert (code, body) == (200, b"") and int(headers["Content-Length"]) > 1000
    assert wsgi(app, "/nope", auth=token)[0] == 404
    assert wsgi(app, "/", method="POST", auth=token)[0] == 405


def test_basic_auth_config_is_checked(tmp_path: Path) -> None:
    def load(auth: dict[str, str]) -> None:
        config_from_dict({"metrics": {"basic_auth": auth}})

    with pytest.raises(ConfigError, match="metrics.basic_auth.password_file"):
        load({"user": "admin"})
    with pytest.raises(ConfigError, match="metrics.basic_auth.user"):
        load({"password_file": str(tmp_path / "pw")})
    with pytest.raises(ConfigError, match="not a readable file"):
        load({"user": "admin", "password_file": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    config = config_from_dict(
        {"metrics": {"basic_auth": {"user": "admin", "password_file": str(tmp_path / "empty")}}}
    )
    with pytest.raises(ValueError, match="is empty"):  # `fwagent run: cannot start: ...`
        credentials_for(config)
