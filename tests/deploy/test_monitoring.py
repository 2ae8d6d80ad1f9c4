"""Prometheus, Alertmanager and Grafana files: checked by the real tools (promtool, amtool), the
alert rules exercised by promtool's unit tests, and every metric name held to docs/metrics.md."""

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

from tests.deploy.test_docker import default

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
METRIC = re.compile(r"\b(itff_[a-z0-9_]+|kafka_consumergroup_lag|probe_success)\b")
SOURCES = ("bot", "producers", "consumers", "storage", "panel_app")
SUFFIXES = ("_bucket", "_count", "_sum")


def tool(name: str) -> str:
    """A checker binary: the pinned `go install` build first (Debian's amtool is too old for
    `url_file`), then PATH; missing fails under CI, else skips."""
    gopath = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / name
    found = str(gopath) if gopath.is_file() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run `bash deploy/system-deps.sh`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


def test_promtool_accepts_the_scrape_config() -> None:
    result = run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(DEPLOY / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_the_rule_unit_tests() -> None:
    files = ["alerts.test.yml", "alerts.test.daily.yml"]
    result = run(tool("promtool"), "test", "rules", *files, cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = [t for f in files for t in yaml.safe_load((DEPLOY / f).read_text())["tests"]]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(alert_names()), "each alert needs a test in which it fires"


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", str(DEPLOY / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules()]


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
    return exprs


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    recording = [{"record": f"itff:dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboards_and_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            if "datasource" in panel:
                assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])
    provider = yaml.safe_load((provisioning / "dashboards" / "itff.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def documented_metrics() -> dict[str, str]:
    """Metric name -> status (`in code`, `agreed`, or the exporter) from docs/metrics.md."""
    found: dict[str, str] = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([a-z_]+)`", cells[0]) if cells and cells[0] else []
        for name in names:
            found[name] = cells[4] if len(cells) >= 6 else "exporter"
    return found


def base_name(metric: str) -> str:
    for suffix in SUFFIXES:
        if metric.endswith(suffix) and not metric.endswith("_total"):
            return metric.removesuffix(suffix)
    return metric


def test_alerts_and_dashboards_use_documented_metrics_only() -> None:
    documented = documented_metrics()
    used = {base_name(m) for m in METRIC.findall((DEPLOY / "alerts.yml").read_text())}
    used |= {base_name(m) for e in dashboard_exprs() for m in METRIC.findall(e)}
    assert not used - set(documented), f"not in docs/metrics.md: {used - set(documented)}"


def registered_names() -> set[str]:
    """Metric names registered in the code, as Prometheus exposes them."""
    names: set[str] = set()
    pattern = re.compile(r"(Counter|Gauge|Histogram|Summary)\(\s*\"(itff_[a-z0-9_]+)\"", re.DOTALL)
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                total = kind == "Counter" and not name.endswith("_total")
                names.add(f"{name}_total" if total else name)
    return names


def test_documented_metrics_match_the_code() -> None:
    registered = registered_names()
    documented = {
        name: status for name, status in documented_metrics().items() if name.startswith("itff_")
    }
    missing = {name for name, status in documented.items() if status == "in code"} - registered
    assert not missing, (
        f"docs/metrics.md says these are in code, but nothing registers them: {missing}"
    )
    landed = {name for name, status in documented.items() if status == "agreed"} & registered
    assert not landed, (
        f"now registered by the code: mark them `in code` in docs/metrics.md: {landed}"
    )
    undocumented = registered - set(documented)
    assert not undocumented, f"registered but missing from docs/metrics.md: {undocumented}"


def test_alert_runbooks_exist_with_their_sections() -> None:
    for rule in rules():
        link = rule["annotations"]["runbook"]
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"{rule['alert']}: {path} does not exist"
        if anchor:
            anchors = {
                slug(h) for h in re.findall(r"^#+\s+(.*)$", target.read_text(), re.MULTILINE)
            }
            assert anchor in anchors, f"{rule['alert']}: {path} has no section #{anchor}"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_scrape_targets_use_the_configured_ports() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["itff-webhook"]["static_configs"][0]["targets"] == [
        f"webhook:{default('webhook_metrics_port')}"  # the metrics listener, not the public port
    ]
    assert jobs["itff-consumer"]["dns_sd_configs"][0]["port"] == default("consumer_metrics_port")
    assert jobs["itff-scheduler"]["static_configs"][0]["targets"] == [
        f"scheduler:{default('scheduler_metrics_port')}"
    ]
    probes = jobs["itff-health"]["static_configs"][0]["targets"]
    assert f"http://dashboard:{default('dash_port')}/health" in probes
    assert f"http://webhook:{default('webhook_port')}/health" in probes


def test_drift_alert_uses_the_configured_margin() -> None:
    """Not a copy of the default: the scheduler exports its ITFF_DRIFT_MARGIN and the rule compares
    with it (alerts.test.yml fires at 0.05 and stays quiet at 0.10 for the same drift)."""
    (drift,) = [rule for rule in rules() if rule["alert"] == "ItffLiveBacktestDrift"]
    assert drift["expr"] == "itff_live_backtest_drift > on() group_left() itff_drift_margin"
    latency = next(rule for rule in rules() if rule["alert"] == "ItffApiLatencyP95High")
    assert "itff_api_request_latency_seconds_bucket" in latency["expr"]
    assert "> 0.5" in latency["expr"]
