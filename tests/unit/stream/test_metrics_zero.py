"""Labelled counters exist at zero before their first increment (else rate()/increase() miss the first one)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from scorer.monitor.observer import STATISTICS, DriftGauges
from scorer.stream.events import REASON_KINDS
from scorer.stream.metrics import RETRY_CAUSES, STORE_OPERATIONS, SWAP_ERRORS, WorkerMetrics


def _samples(registry: object) -> dict[tuple[str, frozenset], float]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_worker_counters_start_at_zero_for_known_labels() -> None:
    metrics = WorkerMetrics()
    samples = _samples(metrics.registry)
    for reason in REASON_KINDS:
        assert samples[("scorer_dead_letters_total", frozenset({("reason", reason)}))] == 0
    for cause in RETRY_CAUSES:
        assert samples[("scorer_batch_retries_total", frozenset({("cause", cause)}))] == 0
    for operation in STORE_OPERATIONS:
        assert samples[("scorer_store_errors_total", frozenset({("operation", operation)}))] == 0

    metrics.version_served("m", "A", 3, canary=False)
    metrics.version_served("m", "A", 4, canary=True)
    samples = _samples(metrics.registry)
    for result in ("ok", "failed"):
        assert samples[("scorer_swaps_total", frozenset({("model", "m"), ("result", result)}))] == 0
    for error in SWAP_ERRORS:
        assert samples[("scorer_swap_failures_total", frozenset({("model", "m"), ("error", error)}))] == 0
    events = {dict(labels)["outcome"] + dict(labels)["version"] for (name, labels), _ in samples.items()
              if name == "scorer_events_total"}
    assert events == {"scored3", "dead_letter3", "canary4", "dead_letter4"}


def test_lag_gauges_follow_the_assignment() -> None:
    metrics = WorkerMetrics()
    metrics.set_lag({0: 5, 1: 7})
    metrics.set_lag({1: 2})
    samples = _samples(metrics.registry)
    lags = {dict(labels)["partition"]: v for (name, labels), v in samples.items() if name == "scorer_consumer_lag"}
    assert lags == {"1": 2} and samples[("scorer_consumer_lag_sum", frozenset())] == 2


def test_drift_alert_series_start_at_zero_per_segment() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    gauges.segment_seen("m", "A")
    gauges.segment_seen("m", "A")
    samples = _samples(registry)
    alerts = {dict(labels)["statistic"]: v for (name, labels), v in samples.items()
              if name == "scorer_drift_alerts_total"}
    assert alerts == dict.fromkeys(STATISTICS, 0.0)


def test_retrain_counters_start_at_zero() -> None:
    from scorer.retrain.config import RetrainGauges

    samples = _samples(RetrainGauges().registry)
    actions = {dict(labels)["action"] for (name, labels), v in samples.items()
               if name == "scorer_retrain_actions_total" and v == 0}
    assert {"trial_canary", "promoted", "retired", "failed"} <= actions
    triggers = {dict(labels)["reason"] for (name, labels), _ in samples.items()
                if name == "scorer_retrain_triggers_total"}
    assert triggers == {"drift", "accuracy"}
