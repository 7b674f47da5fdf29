"""The observability kit in ops/: the alert rules pass promtool (syntax and their unit tests),
the Grafana dashboard's queries parse, and every metric either names is one the service's
/metrics really exports, with the labels it really has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.store import SESSION_STATUSES
from tests.support.server import ROOT

ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "wa-sidecar.json"
# Labels Prometheus adds at scrape time, and the node label every series gets in a cluster.
SCRAPE_LABELS = {"job", "instance", "node"}
SELECTOR = re.compile(r"\b(wa_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*,?')


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (./scripts/test does)"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120)


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def selectors(exprs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Each `wa_*` metric the expressions name, with its label matchers (name -> value)."""
    found = []
    for expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            labels = {m.group(1): m.group(3) for m in MATCHER.finditer(matchers)}
            found.append((name, labels))
    return found


def exported(text: str) -> dict[str, str]:
    """Every sample name the exposition can hold, mapped to its family (counters end in
    _total, histograms have _bucket, _sum and _count), families without samples included."""
    names = {}
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names[family.name + suffix] = family.name
    return names


def label_names() -> dict[str, set[str]]:
    """Each family's label names, from the registry (a family with no series yet shows none
    in the exposition)."""
    registry = Metrics(node="n1", role="worker").registry
    # prometheus_client keeps a collector's label names in `_labelnames`.
    return {
        name: set(getattr(collector, "_labelnames", ()))
        for name, collector in registry._names_to_collectors.items()
    }


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_cover_what_operators_must_hear_of() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {
        "WaSidecarSessionsFailed",
        "WaSidecarSessionsStuckStarting",
        "WaSidecarWebhookBacklog",
        "WaSidecarWebhookDeliveriesDead",
        "WaSidecarMemoryCeilingRestarts",
        "WaSidecarWorkerHeartbeatMissing",
    }
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, with the $job variable filled in."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": expr.replace("$job", ".+")}
                    for i, expr in enumerate(dashboard_exprs())
                    if not expr.startswith("label_values(")
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_imports_with_a_datasource_input() -> None:
    board = dashboard()
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert '{job=~"$job"' in target["expr"], target["expr"]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_is_exported_with_those_labels(raw: httpx.Client, source: str) -> None:
    exprs = alert_exprs() if source == "alerts" else dashboard_exprs()
    response = raw.get("/metrics")
    assert response.status_code == 200
    names = exported(response.text)
    labels = label_names()
    named = selectors(exprs)
    assert named
    for name, matchers in named:
        assert name in names, f"{name} is not in /metrics"
        family = names[name]
        extra = {"le"} if name.endswith("_bucket") else set()
        unknown = set(matchers) - labels[family] - SCRAPE_LABELS - extra
        assert not unknown, f"{name} has no label {unknown}"
        if "status" in matchers and family == "wa_sessions":
            assert set(matchers["status"].split("|")) <= set(SESSION_STATUSES)
