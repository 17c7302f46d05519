"""deploy/grafana/fwagent.json: valid JSON Grafana can import, and every PromQL expression
in it names only metrics the agent exports (read from the agent's own registry)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fwagent import metrics
from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fwagent.json"

# PromQL words that are not metric names: functions, aggregations, keywords
PROMQL_WORDS = {
    *("sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile"),
    *("count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right"),
    *("bool", "and", "or", "unless", "offset", "rate", "irate", "increase", "delta", "idelta"),
    *("histogram_quantile", "sum_over_time", "avg_over_time", "max_over_time", "min_over_time"),
    *("clamp_min", "clamp_max", "abs", "ceil", "floor", "round", "vector", "scalar", "time"),
    *("label_replace", "label_join", "absent", "resets", "changes", "deriv", "sort", "sort_desc"),
    *("inf", "nan", "last_over_time", "count_over_time", "predict_linear", "timestamp"),
}


def exported_names() -> set[str]:
    """Every sample name the agent's collectors expose (fwagent_ ones in REGISTRY)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names = set()
    for collector in list(REGISTRY._collector_to_names):  # every registered collector
        for family in getattr(collector, "describe", lambda: [])():
            if family.name.startswith("fwagent_"):
                names.update(family.name + s for s in suffixes[family.type])
    return names


def expressions(node: Any) -> Iterator[str]:
    """Every ``expr`` of every target, rows' nested panels included."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: what is left once strings, label matchers,
    grouping label lists, range/offset durations, Grafana variables, numbers and PromQL's
    own words are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers and durations (0.95, 1h, 5m30s)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w.lower() not in PROMQL_WORDS}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def test_metric_name_parser() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, calling_ae) (rate(fwagent_upload_seconds_bucket"
        '{instance=~"$instance", calling_ae!="other"}[$__rate_interval] offset 1h)))'
        " / on(instance) group_left(x) fwagent_queue_depth"
    )
    assert metric_names(expr) == {"fwagent_upload_seconds_bucket", "fwagent_queue_depth"}
    assert metric_names('sum(up{job="fwagent_queue_depth"})') == {"up"}


def test_registry_exports_the_labelled_counters() -> None:
    names = exported_names()
    assert {
        "fwagent_received_instances_total",
        "fwagent_uploaded_series_total",
        "fwagent_failed_uploads_total",
        "fwagent_opted_out_series_total",
        "fwagent_queue_depth",
        "fwagent_upload_seconds_bucket",
    } <= names
    for counter in (metrics.RECEIVED, metrics.UPLOADED, metrics.FAILED, metrics.OPTED_OUT):
        assert "calling_ae" in counter._labelnames


def test_dashboard_is_valid_and_names_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "fwagent" and dashboard["title"]
    exported = exported_names()
    exprs = list(expressions(dashboard["panels"]))
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable.get("query", ""))
        if variable["type"] == "query":
            assert found and found.group(1) in exported, variable["query"]
    # what the issue asks the dashboard to show
    assert {
        "fwagent_received_instances_total",
        "fwagent_uploaded_series_total",
        "fwagent_failed_uploads_total",
        "fwagent_queue_depth",
        "fwagent_upload_seconds_bucket",
    } <= used
    assert any('placement=~"unknown|unsorted"' in e for e in exprs)
    assert any("by (calling_ae)" in e for e in exprs)


def test_panels_are_laid_out_without_overlap(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["refId"] and t["expr"] for t in panel["targets"])
