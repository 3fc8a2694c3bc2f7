"""A real Prometheus (the devstack's) scraping a real worker: every dashboard panel's query returns data once
the events that feed it happened, first occurrences included, and the alert rules load."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra.cluster import Session
from support.store import logistic
from support.stream import WorkerProcess, event, make_topics, produce_sync, run_cli, workers

from devstack.prometheus import PrometheusNode, default_prometheus
from scorer.config import Settings
from scorer.store import CassandraModelStore
from trainers.stats import feature_stats

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "scorer.json"
MODEL = "delay"
NAMES = [f"f{i}" for i in range(4)]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusNode]:
    node = default_prometheus()
    node.up()  # started by `make test` / `make up`; idempotent when it already runs
    yield node


def query(node: PrometheusNode, expr: str) -> list[dict[str, Any]]:
    url = f"{node.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def value(node: PrometheusNode, expr: str) -> float:
    result = query(node, expr)
    return sum(float(sample["value"][1]) for sample in result) if result else float("nan")


def dashboard_queries(instance: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, with the dashboard variables set to this worker."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$instance", instance).replace("$model", MODEL)
            out.append((panel["title"], expr))
    return out


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_every_dashboard_panel_has_data_after_the_events_that_feed_it(
        prometheus: PrometheusNode, settings: Settings, cassandra: Session, bootstrap: str,
        new_topic: Callable[..., str]) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 4))
    stats = feature_stats(train, NAMES, y=(train[:, 0] > 0).astype(int), classes=[0, 1])
    with CassandraModelStore(settings) as store:
        for seed in (0, 1, 2):
            store.publish(MODEL, "A", logistic(seed, 4), stats=stats, activate=seed == 0)
    rows = cassandra.execute(f"SELECT chunk, data FROM {settings.keyspace}.model_chunks WHERE model = %s "
                             "AND segment = %s AND version = 3", (MODEL, "A"))
    first = next(iter(rows))
    cassandra.execute(f"UPDATE {settings.keyspace}.model_chunks SET data = %s WHERE model = %s AND segment = %s "
                      "AND version = 3 AND chunk = %s", (bytes(first.data)[::-1], MODEL, "A", first.chunk))

    topics = make_topics(new_topic)
    worker = WorkerProcess(settings, topics, extra_args=["--drift-seconds", "1", "--drift-min-events", "100",
                                                         "--drift-events", "400"])
    instance = f"127.0.0.1:{worker.port}"
    with workers(worker.start()):
        worker.wait_ready()
        prometheus.add_target(worker.app_id, instance, test="prometheus-scrape")
        try:
            wait_until(lambda: value(prometheus, f'up{{job="scorer", instance="{instance}"}}') == 1, 60,
                       "Prometheus to scrape the worker")
            wait_until(lambda: value(prometheus, f'scorer_dead_letters_total{{instance="{instance}", '
                                                 'reason="not_json"}') == 0, 30,
                       "the dead-letter series at zero before the first dead letter")
            time.sleep(2.5)  # a couple of scrapes at zero: the first increments are then seen by rate()

            # The events: a good swap and a swap to a corrupt version (refused: the old version keeps serving),
            # a first wave that makes the worker load the serving version's training statistics, then drifted
            # inputs (every feature shifted by 3) and one malformed event.
            for version in ("2", "3"):
                result = run_cli(settings, "activate", MODEL, "A", version, changes=topics.changes)
                assert result.returncode == 0, result.stderr
                time.sleep(1.5)

            def send(prefix: str, rows: np.ndarray) -> None:
                produce_sync(bootstrap, topics.events,
                             [event(f"{prefix}-{i}", "A", dict(zip(NAMES, map(float, row), strict=True)))
                              for i, row in enumerate(rows)])

            send("w", rng.normal(size=(50, 4)))
            time.sleep(3.0)
            send("e", rng.normal(loc=3.0, size=(1500, 4)))
            produce_sync(bootstrap, topics.events, [(b"bad", b"{not json")])

            firsts = {
                "dead letters": f'sum(increase(scorer_dead_letters_total{{instance="{instance}"}}[1m]))',
                "failed swap": f'sum(increase(scorer_swaps_total{{instance="{instance}", result="failed"}}[1m]))',
                "swap failure": f'sum(increase(scorer_swap_failures_total{{instance="{instance}", '
                                'error="ChecksumMismatch"}[1m]))',
                "drift alert": f'sum(increase(scorer_drift_alerts_total{{instance="{instance}"}}[1m]))',
                "first swap of the segment": f'sum(increase(scorer_swaps_total{{instance="{instance}", '
                                             'result="ok"}[1m]))',
            }
            for what, expr in firsts.items():
                wait_until(lambda expr=expr: value(prometheus, expr) > 0, 60, f"the first {what} in Prometheus")

            empty: list[str] = []
            deadline = time.monotonic() + 30
            for title, expr in dashboard_queries(instance):
                while not query(prometheus, expr) and time.monotonic() < deadline:
                    time.sleep(1.0)
                if not query(prometheus, expr):
                    empty.append(f"{title}: {expr}")
            assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
            assert value(prometheus, f'max(scorer_swaps_blocked{{instance="{instance}"}})') == 1
            assert value(prometheus, f'max(scorer_drift_max_psi{{instance="{instance}"}})') > 0.2
        finally:
            prometheus.remove_target(worker.app_id)


def test_the_alert_rules_are_loaded(prometheus: PrometheusNode) -> None:
    url = f"{prometheus.url}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"ScorerWorkerDown", "ScorerDeadLetters"} <= names, names
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
