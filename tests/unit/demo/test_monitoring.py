"""Monitoring out of the box: the dashboard asks only for metrics and labels the worker exports, and the
Prometheus/Grafana files are wired together the way docker-compose.yml mounts them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from scorer.monitor.observer import DriftGauges
from scorer.stream.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "scorer.json"
# Labels Prometheus adds at scrape time (plus `le` of histogram buckets and the ones our prometheus.yml sets).
SCRAPE_LABELS = {"instance", "job", "le", "service"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "topk", "count", "min", "max", "or", "vector",
                "up", "label_values", "without", "on", "ignoring", "avg"}


def _exported() -> dict[str, set[str]]:
    """Sample name -> label names, from a worker's /metrics text with every labelled metric touched once."""
    metrics = WorkerMetrics()
    drift = DriftGauges(metrics.registry)  # a monitored worker's drift gauges join its registry
    for value in [*vars(metrics).values(), *vars(drift).values()]:
        labelnames = getattr(value, "_labelnames", ())
        if labelnames:
            child = value.labels(*["x"] * len(labelnames))
            (child.inc if hasattr(child, "inc") else child.observe)(1)
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return exported


def _expressions(node: object) -> list[str]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                out.append(value)
            elif key == "query" and isinstance(value, str | dict):
                out.extend([value] if isinstance(value, str) else _expressions(value))
            else:
                out.extend(_expressions(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_expressions(item))
    return out


def test_every_metric_in_the_dashboard_is_exported_by_the_worker() -> None:
    exported = _exported()
    expressions = _expressions(json.loads(DASHBOARD.read_text()))
    assert len(expressions) > 20
    used = {name for expr in expressions for name in re.findall(r"\bscorer_[a-z0-9_]+", expr)}
    assert used, "the dashboard queries no scorer metric"
    missing = sorted(used - set(exported))
    assert not missing, f"dashboard metrics the worker does not export: {missing}; exported: {sorted(exported)}"
    # The panels the issue asks for are there.
    for name in ("scorer_events_total", "scorer_e2e_latency_seconds_bucket", "scorer_swaps_total",
                 "scorer_dead_letters_total", "scorer_store_errors_total", "scorer_consumer_lag_sum",
                 "scorer_consumer_lag", "scorer_drift_max_psi", "scorer_drift_max_ks", "scorer_drift_alerts_total"):
        assert name in used, name


def test_every_label_the_dashboard_groups_or_filters_by_exists_on_its_metrics() -> None:
    exported = _exported()
    for expr in _expressions(json.loads(DASHBOARD.read_text())):
        names = re.findall(r"\bscorer_[a-z0-9_]+", expr)
        if not names:
            continue
        available = set().union(*(exported[name] for name in names)) | SCRAPE_LABELS
        grouped = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for label in group.split(",")}
        filtered = set(re.findall(r"([a-z_]+)\s*=~?", expr)) - PROMQL_WORDS
        unknown = (grouped | filtered) - available
        assert not unknown, f"labels {sorted(unknown)} not on {names} in: {expr}"


def test_dashboard_shape_and_datasource_match_the_provisioning() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasources = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    # Panels take their datasource from a variable whose default is the provisioned one (another Grafana picks
    # its own Prometheus from the list instead of editing every panel).
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    assert variable["current"]["value"] == uid
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
            assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_prometheus_scrapes_the_worker_port_and_compose_mounts_the_files() -> None:
    prometheus = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "scorer" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["host.docker.internal:6066"]

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("cassandra", "kafka"):
        assert "profiles" not in services[name], f"{name} must start without a profile"
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/scorer.yml").read_text())
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith("./")}
    assert provider["providers"][0]["options"]["path"] in mounted
