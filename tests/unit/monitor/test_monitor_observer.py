"""The worker's drift hook: references loaded once, snapshots and alerts queued, never raising into scoring."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import CollectorRegistry

from scorer.monitor.drift import DriftConfig
from scorer.monitor.observer import DriftGauges, DriftObserver
from trainers.stats import feature_stats

NAMES = ("a", "b")


def test_observer_loads_reference_then_publishes_snapshot_and_alert() -> None:
    rng = np.random.default_rng(0)
    stats = feature_stats(rng.normal(size=(2000, 2)), NAMES)
    loads: list[tuple[str, str, int]] = []
    sent: list[tuple[str, bytes, dict]] = []

    def loader(model: str, segment: str, version: int):
        loads.append((model, segment, version))
        return (NAMES, stats) if segment == "ORD" else None

    async def send(messages: list) -> None:
        sent.extend(messages)

    registry = CollectorRegistry()
    observer = DriftObserver(loader, send, config=DriftConfig(every_events=500, min_events=100),
                             gauges=DriftGauges(registry))

    async def scenario() -> None:
        observer.observe("m", "ORD", 1, rng.normal(size=(100, 2)))  # before the reference: counted, not binned
        observer.observe("m", "JFK", 1, rng.normal(size=(100, 2)))  # a version without stats
        await observer.flush()
        observer.observe("m", "JFK", 1, rng.normal(size=(100, 2)))
        observer.observe("m", "ORD", 1, np.column_stack([rng.normal(size=500), rng.normal(size=500) + 3]))
        observer.observe("m", "ORD", 1, np.zeros((3, 5)))  # wrong width: logged, not raised
        assert await observer.flush() == 3
        await observer.flush()

    asyncio.run(scenario())
    assert sorted(loads) == [("m", "JFK", 1), ("m", "ORD", 1)]  # each loaded once
    topics = [topic for topic, _, _ in sent]
    assert topics == ["model-drift", "model-alerts", "model-alerts"]
    drift = sent[0][2]
    assert sent[0][1] == b"m/ORD/1" and drift["window"]["n"] == 500 and drift["features"]["b"]["psi"] > 1
    assert {m[2]["statistic"] for m in sent[1:]} == {"psi", "ks"} and sent[1][1] == b"m/ORD"
    assert observer.monitor.unreferenced == 300
    assert registry.get_sample_value("scorer_drift_max_psi", {"model": "m", "segment": "ORD", "version": "1"}) > 1


def test_failed_publish_is_retried_at_the_next_flush() -> None:
    rng = np.random.default_rng(1)
    stats = feature_stats(rng.normal(size=(500, 2)), NAMES)
    attempts: list[int] = []
    sent: list = []

    async def flaky(messages: list) -> None:
        attempts.append(len(messages))
        if len(attempts) == 1:
            raise ConnectionError("broker away")
        sent.extend(messages)

    quiet = DriftConfig(every_events=100, min_events=10, psi_threshold=50, ks_threshold=1.0)  # no alerts here
    observer = DriftObserver(lambda *key: (NAMES, stats), flaky, config=quiet)

    async def scenario() -> None:
        observer.observe("m", "s", 2, rng.normal(size=(5, 2)))
        await observer.flush()
        observer.observe("m", "s", 2, rng.normal(size=(100, 2)))
        assert await observer.flush() == 0
        assert await observer.flush() == 1

    asyncio.run(scenario())
    assert attempts == [1, 1] and sent[0][0] == "model-drift"
