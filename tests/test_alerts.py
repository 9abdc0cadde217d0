"""The alert rules and the Grafana dashboard, as files: `promtool check rules` and
`promtool test rules` pass (unit tests of every alert with synthetic series, in
deploy/prometheus/tests/); every expression of the rules and of the dashboard names only
metrics the code exports (apex_* and the process collectors in this process's registry,
temporal_* among the SDK metrics tests/test_metrics_e2e.py scrapes from a real worker);
the dashboard has its rows by layer and every panel a query.

promtool comes from Debian's `prometheus` package (.ci/run installs it). Without it the
promtool tests skip, saying so, unless CI is set: then they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_metrics_docs import import_everything
from test_metrics_e2e import SDK_METRICS

from apex_platform import metrics

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "apex.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "apex.yaml"
LAYERS = ["Workflows", "Activities and the saga", "Data quality", "Infrastructure", "Business", "Logs and links"]


def promtool() -> str:
    found = os.environ.get("APEX_PROMTOOL") or shutil.which("promtool")
    if found:
        return found
    reason = (
        "PROMTOOL NOT FOUND: the alert rules were NOT checked. Install Debian's prometheus package "
        "(apt-get install --no-install-recommends prometheus) or set APEX_PROMTOOL"
    )
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules() -> None:
    assert RULE_TESTS, "no unit-test file in deploy/prometheus/tests"
    result = run("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert sorted(names - firing) == [], "alerts no unit test fires"
    assert sorted(names - quiet) == [], "alerts no unit test shows quiet"
    assert sorted((firing | quiet) - names) == [], "unit tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {rule['alert']}" in doc, f"docs/operations.md has no section for {rule['alert']}"


# -- metric names in PromQL ------------------------------------------------------------------

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "le",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, Grafana variables, numbers and functions are gone."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"\b[a-z_]+\s*\(", " (", text)  # function calls
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", text))
    return {n for n in names if n not in KEYWORDS and not re.fullmatch(r"\d.*", n)}


def exported() -> set[str]:
    """Every sample name this process's registry can export, and the SDK metrics."""
    from prometheus_client import REGISTRY

    import_everything()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names: set[str] = set(SDK_METRICS)
    for family in [*REGISTRY.collect(), *metrics.INBOX.describe()]:
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_metric_names_are_found_in_promql() -> None:
    expr = 'sum by (source) (rate(apex_x_total{kind!="a.b", source=~"$source"}[$__rate_interval])) / on (source) apex_y'
    assert metric_names(expr) == {"apex_x_total", "apex_y"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(apex_h_bucket[5m]))) > 3 * up") == {
        "apex_h_bucket",
        "up",
    }


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def dashboard_exprs() -> list[tuple[str, str]]:
    out = [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            # label_values(metric, label): the metric only
            out.append((f"variable {var['name']}", re.sub(r"^label_values\((\w+),.*$", r"\1", var["definition"])))
    return out


def test_every_expression_of_the_rules_and_the_dashboard_names_only_exported_metrics() -> None:
    known = exported()
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr in [*((r["alert"], r["expr"]) for r in alerts()), *dashboard_exprs()]
        if metric_names(expr) - known
    }
    assert unknown == {}
    assert all(metric_names(expr) for _, expr in dashboard_exprs()), "a query that selects no metric"


def test_the_dashboard_has_a_row_per_layer_and_every_panel_a_query() -> None:
    doc = dashboard()
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert rows == LAYERS
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] in {"row", "text"}:
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    panels = [p for p in doc["panels"] if p["type"] not in {"row", "text"}]
    assert len(panels) >= 30
    # every layer's row holds panels: the next row starts below the last panel of this one
    starts = [p["gridPos"]["y"] for p in doc["panels"] if p["type"] == "row"]
    for top, bottom in zip(starts, [*starts[1:], 10**6], strict=True):
        assert any(top < p["gridPos"]["y"] < bottom for p in doc["panels"] if p["type"] != "row")
    assert doc["uid"]
    assert doc["title"]
    assert doc["schemaVersion"] >= 36


def test_every_apex_metric_is_on_the_dashboard_or_in_an_alert() -> None:
    """Nothing exported that no one looks at (histograms count by their base name)."""
    used: set[str] = set()
    for _, expr in [*((r["alert"], r["expr"]) for r in alerts()), *dashboard_exprs()]:
        used |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in metric_names(expr)}
    from test_metrics_docs import code_metrics

    missing = sorted(name for name in code_metrics() if name not in used)
    assert missing == []


def test_the_provisioning_file_names_a_file_provider() -> None:
    doc = yaml.safe_load(PROVISIONING.read_text(encoding="utf-8"))
    (provider,) = doc["providers"]
    assert doc["apiVersion"] == 1
    assert provider["type"] == "file"
    assert provider["options"]["path"]
