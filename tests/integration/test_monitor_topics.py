"""Snapshots published to real Kafka topics and read back by `scorer drift` / `scorer metrics`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from click.testing import CliRunner

from scorer.cli import main
from scorer.config import Settings
from scorer.monitor.topics import Publisher, read_latest, version_key


def drift_snapshot(segment: str, version: int, psi: float, n: int = 1000) -> dict:
    return {"model": "delay", "segment": segment, "version": version, "max_psi": psi, "max_ks": psi / 2,
            "window": {"start": 1.0, "end": 2.0, "n": n},
            "features": {"dep_delay": {"psi": psi, "ks": psi / 2, "missing_rate": 0.0, "expected_missing_rate": 0.0},
                         "distance": {"psi": 0.01, "ks": 0.01, "missing_rate": 0.0, "expected_missing_rate": 0.0}}}


def publish(settings: Settings, messages: list[tuple[str, bytes, dict]]) -> None:
    async def run() -> None:
        publisher = Publisher(settings)
        await publisher.start()
        try:
            await publisher.send_many(messages)
        finally:
            await publisher.stop()

    asyncio.run(run())


def test_drift_and_metrics_commands_show_the_latest_snapshot_per_key(
        base_settings: Settings, new_topic: Callable[..., str]) -> None:
    drift_topic, metrics_topic = new_topic("drift", 2), new_topic("metrics", 2)
    publish(base_settings, [
        (drift_topic, version_key("delay", "ORD", 1), drift_snapshot("ORD", 1, 0.9, n=111)),  # superseded below
        (drift_topic, version_key("delay", "ORD", 1), drift_snapshot("ORD", 1, 0.45)),
        (drift_topic, version_key("delay", "JFK", 2), drift_snapshot("JFK", 2, 0.02)),
        (drift_topic, version_key("other", "ORD", 1), drift_snapshot("ORD", 1, 0.7)),
        (metrics_topic, version_key("delay", "ORD", 1), {
            "model": "delay", "segment": "ORD", "version": 1, "role": "live", "task": "binary",
            "metrics": {"n": 500, "roc_auc": 0.61, "log_loss": 0.66, "accuracy": 0.6}, "window": 500,
            "total": 1234, "at": 1700000000.0}),
        (metrics_topic, version_key("delay", "ORD", 2), {
            "model": "delay", "segment": "ORD", "version": 2, "role": "canary", "task": "binary",
            "metrics": {"n": 120, "roc_auc": 0.88, "log_loss": 0.41, "accuracy": 0.82}, "window": 500,
            "total": 120, "at": 1700000001.0}),
    ])
    latest = asyncio.run(read_latest(base_settings, drift_topic, prefix="delay/"))
    assert set(latest) == {"delay/ORD/1", "delay/JFK/2"}
    assert latest["delay/ORD/1"]["max_psi"] == 0.45

    runner = CliRunner()
    result = runner.invoke(main, ["drift", "delay", "--topic", drift_topic])
    assert result.exit_code == 0, result.output
    assert "ORD" in result.output and "JFK" in result.output and "DRIFT" in result.output
    assert "0.450" in result.output and "0.900" not in result.output

    result = runner.invoke(main, ["drift", "delay", "ORD", "--topic", drift_topic, "--json"])
    assert result.exit_code == 0, result.output
    (snapshot,) = json.loads(result.output)
    assert snapshot["segment"] == "ORD" and snapshot["window"]["n"] == 1000

    result = runner.invoke(main, ["drift", "delay", "ORD", "--topic", drift_topic])
    assert "dep_delay" in result.output and "distance" in result.output  # per-feature table for one segment

    result = runner.invoke(main, ["metrics", "delay", "ORD", "--topic", metrics_topic])
    assert result.exit_code == 0, result.output
    assert "canary" in result.output and "0.880" in result.output and "500/1234" in result.output

    result = runner.invoke(main, ["metrics", "delay", "--topic", metrics_topic, "--json"])
    assert [s["version"] for s in json.loads(result.output)] == [2, 1]


def test_reading_a_topic_that_was_never_written(base_settings: Settings) -> None:
    result = CliRunner().invoke(main, ["drift", "delay", "--topic", "model-drift-never-created-x1"])
    assert result.exit_code == 0 and "no drift snapshots for delay" in result.output
