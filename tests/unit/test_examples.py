"""The shipped Grafana dashboard and alerting rules: importable, and about real metrics only.

The dashboard is imported through Grafana's "Import dashboard" page, which asks for the
datasource declared in ``__inputs`` and substitutes ``${DS_PROMETHEUS}``: every panel and
query must use that input, or it points at a datasource the importer does not have. Every
metric named in a query or a rule must be one memwatch serves (or pushes), or the panel
stays empty and the alert never fires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
ALERTS = EXAMPLES / "alerts.yml"

# What memwatch's exporter serves (daemon, `memwatch run --metrics-port`) and what a
# finished batch run pushes (--pushgateway / --textfile), with each metric's labels.
SERVED = {
    "memwatch_job_memory_bytes": {"job", "memtype"},
    "memwatch_job_processes": {"job"},
    "memwatch_job_peak_memory_bytes": {"job"},
    "memwatch_job_peak_timestamp_seconds": {"job"},
    "memwatch_job_swap_suspected": {"job"},
    "memwatch_job_unreadable_processes": {"job"},
    "memwatch_job_input_size": {"job"},
    "memwatch_job_recommended_memory_bytes": {"job", "size"},
    "memwatch_sample_duration_seconds": set(),
    "memwatch_samples_total": set(),
    "memwatch_read_errors_total": set(),
    "memwatch_last_sample_timestamp_seconds": set(),
    "memwatch_build_info": {"version"},
}
PUSHED = {
    name: {"job"}
    for name in (
        "memwatch_run_peak_memory_bytes",
        "memwatch_run_peak_rss_bytes",
        "memwatch_run_peak_swap_bytes",
        "memwatch_run_duration_seconds",
        "memwatch_run_exit_status",
        "memwatch_run_swap_suspected",
        "memwatch_run_oom_killed",
        "memwatch_run_last_completion_timestamp_seconds",
        "memwatch_run_input_size",
    )
}
METRICS = {**SERVED, **PUSHED}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}

PROMQL_WORDS = {
    # aggregations, modifiers and keywords: followed by "(" or not
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "atan2",
    # aggregation operators: "sum without (x) (...)" puts the grouping before the "("
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range / subquery durations
    s = re.sub(r"(?<![\w:])\d[\w.]*", " ", s)  # numbers, durations (offset 5m)
    # grouping label lists: by (a, b), without (a), on (a), ignoring (a), group_left (a)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", s)
    names = set()
    for m in IDENT.finditer(s):
        word = m.group()
        rest = s[m.end() :].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def label_names(expr: str) -> set[str]:
    """Label names the expression matches on or groups by."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set()
    for matchers in re.findall(r"\{([^}]*)\}", s):
        names.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for group in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", s
    ):
        names.update(x.strip() for x in group.split(",") if x.strip())
    return names


def test_metric_names_parser() -> None:
    expr = (
        'sum without (memtype) (memwatch_job_memory_bytes{job=~"$job", memtype=~"rss|swap"})'
        " / max by (job) (rate(memwatch_read_errors_total[$__rate_interval]))"
        " > 0.9 * on (job) group_left time() - up offset 5m"
    )
    assert metric_names(expr) == {"memwatch_job_memory_bytes", "memwatch_read_errors_total", "up"}
    assert label_names(expr) == {"job", "memtype"}


# ---- the dashboard ------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a collapsed row holds its panels


def exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query: panel targets and template variables."""
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert m, f"variable {var['name']}: {query}"
            yield f"variable {var['name']}", m.group(1)


INPUT_DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def test_dashboard_declares_the_datasource_input(dashboard: dict[str, Any]) -> None:
    inputs = dashboard["__inputs"]
    assert [i["name"] for i in inputs] == ["DS_PROMETHEUS"]
    assert inputs[0]["type"] == "datasource"
    assert inputs[0]["pluginId"] == "prometheus"
    required = {r["id"] for r in dashboard["__requires"]}
    used = {p["type"] for p in all_panels(dashboard["panels"])} - {"row"}
    assert {"grafana", "prometheus"} | used <= required
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None  # an import must not overwrite another dashboard by id
    assert dashboard["uid"] and dashboard["title"]
    # Nothing points at a datasource of the machine it was exported from.
    text = DASHBOARD.read_text()
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text))
    assert uids <= {"${DS_PROMETHEUS}", "-- Grafana --", dashboard["uid"]}


def test_every_panel_and_query_uses_the_input(dashboard: dict[str, Any]) -> None:
    panels = [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]
    assert len(panels) >= 6
    for panel in panels:
        assert panel["datasource"] == INPUT_DS, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == INPUT_DS, (panel["title"], target["refId"])
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == INPUT_DS, var["name"]


def test_panel_ids_and_layout(dashboard: dict[str, Any]) -> None:
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        # no two panels overlap on the 24-column grid
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]


def test_job_variable(dashboard: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in dashboard["templating"]["list"]}
    job = by_name["job"]
    assert job["type"] == "query"
    assert job["query"]["query"] == "label_values(memwatch_job_processes, job)"
    assert job["multi"] is True and job["includeAll"] is True
    # every per-job query is filtered by it
    for where, expr in exprs(dashboard):
        if where.startswith("panel") and "memwatch_job_" in expr:
            for selector in re.findall(r"memwatch_job_\w+(\{[^}]*\})?", expr):
                assert 'job=~"$job"' in selector, (where, expr)
    # the variables a query uses exist
    defined = set(by_name) | {"__rate_interval", "__interval", "__range"}
    for where, expr in exprs(dashboard):
        for used in re.findall(r"\$(\w+)", expr):
            assert used in defined, (where, used)


def test_queries_name_only_memwatch_metrics(dashboard: dict[str, Any]) -> None:
    seen: set[str] = set()
    for where, expr in exprs(dashboard):
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = names - set(METRICS)
        assert not unknown, f"{where}: {sorted(unknown)} in {expr}"
        seen |= names
        allowed = set().union(*(METRICS[n] for n in names)) | TARGET_LABELS
        assert label_names(expr) <= allowed, (where, expr)
    # the panels the dashboard is for
    for name in (
        "memwatch_job_memory_bytes",
        "memwatch_job_peak_memory_bytes",
        "memwatch_job_peak_timestamp_seconds",
        "memwatch_job_swap_suspected",
        "memwatch_job_recommended_memory_bytes",
        "memwatch_job_processes",
        "memwatch_sample_duration_seconds",
        "memwatch_read_errors_total",
    ):
        assert name in seen, name


def test_units(dashboard: dict[str, Any]) -> None:
    """Bytes in IEC units (Grafana's "bytes"; "decbytes" is SI), durations in seconds."""
    for panel in all_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        units = {panel["fieldConfig"]["defaults"].get("unit")}
        for override in panel["fieldConfig"]["overrides"]:
            units |= {p["value"] for p in override["properties"] if p["id"] == "unit"}
        text = " ".join(t["expr"] for t in panel["targets"])
        assert "decbytes" not in units, panel["title"]
        ratio = "/" in text and "_bytes" in text
        if "_bytes" in text and not ratio:
            assert "bytes" in units, panel["title"]
        if re.search(r"_seconds(?!_total)\b(?! \* 1000)", text) and "_timestamp_" not in text:
            assert "s" in units, panel["title"]


def test_ram_vs_swap_panel_stacks_by_memtype(dashboard: dict[str, Any]) -> None:
    (panel,) = [
        p
        for p in all_panels(dashboard["panels"])
        if p["type"] == "timeseries"
        and any('memtype=~"rss|swap"' in t["expr"] for t in p["targets"])
        and p["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    ]
    assert panel["repeat"] == "job"
    assert panel["fieldConfig"]["defaults"]["unit"] == "bytes"


def test_swap_suspicion_panel(dashboard: dict[str, Any]) -> None:
    panels = [
        p
        for p in all_panels(dashboard["panels"])
        if any("memwatch_job_swap_suspected" in t["expr"] for t in p.get("targets", []))
    ]
    assert panels and panels[0]["type"] in {"state-timeline", "stat"}
    mapped = panels[0]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert set(mapped) == {"0", "1"}


# ---- the alerting rules -------------------------------------------------------------
@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alerts_name_only_memwatch_metrics(rules: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in rules}
    assert {
        "MemwatchSwapSuspected",
        "MemwatchNearRecommendation",
        "MemwatchJobGone",
        "MemwatchReadErrors",
        "MemwatchStale",
        "MemwatchBatchOOMKilled",
    } <= names
    for rule in rules:
        used = metric_names(rule["expr"])
        # queries inside annotation templates: {{ with printf "EXPR" ... | query }}
        for text in rule["annotations"].values():
            for q in re.findall(r'printf\s+"([^"]*)"[^}]*\|\s*query', text):
                used |= metric_names(q)
        assert used, rule["alert"]
        assert used <= set(METRICS), (rule["alert"], used - set(METRICS))
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert (
            "$labels.job" in rule["annotations"]["summary"] + rule["annotations"]["description"]
            or "$labels.instance" in rule["annotations"]["summary"]
        ), rule["alert"]


def test_alert_annotations_humanize_bytes(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        if "_bytes" in rule["expr"]:
            assert "humanize1024" in rule["annotations"]["description"], rule["alert"]
