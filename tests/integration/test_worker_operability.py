"""What an operator sees of a real worker: health pages, counters at zero before their first event, consumer
lag, outside pointer changes on the log, and a fast failure on a model name with nothing published."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable

import orjson
import pytest
from support.store import logistic
from support.stream import (
    Collector,
    WorkerProcess,
    event,
    make_topics,
    metric_value,
    produce_sync,
    run_cli,
    workers,
)

from scorer.config import Settings
from scorer.store import CassandraModelStore

MODEL = "delay"
FEATURES = {"f0": 0.5, "f1": -1.0, "f2": 2.0, "f3": 0.0}


def _status(worker: WorkerProcess, path: str) -> tuple[int, dict]:
    try:
        return 200, orjson.loads(worker.get(path))
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _has_series(text: str, name: str, **labels: str) -> bool:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return any(line.startswith((name + "{", name + " ")) and all(w in line for w in wanted)
               for line in text.splitlines())


def test_health_zero_counters_lag_and_outside_changes(settings: Settings, bootstrap: str, cassandra: object,
                                                     new_topic: Callable[..., str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [("A", logistic(0, 4), None, None)], activate=True)
        store.publish(MODEL, "A", logistic(1, 4))
    topics = make_topics(new_topic)
    worker = WorkerProcess(settings, topics, extra_args=["--models", MODEL])
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    with workers(worker.start()):
        worker.wait_ready()
        assert _status(worker, "/healthz")[0] == 200
        deadline = time.monotonic() + 30
        while (status := _status(worker, "/readyz"))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert status == (200, {"status": "ready", "waiting_for": []}), status

        # Before any event: every labelled counter an alert or a panel uses is there, at zero.
        text = worker.metrics()
        for name, labels in (("scorer_dead_letters_total", {"reason": "not_json"}),
                             ("scorer_dead_letters_total", {"reason": "unknown_model"}),
                             ("scorer_swaps_total", {"model": MODEL, "result": "failed"}),
                             ("scorer_swap_failures_total", {"model": MODEL, "error": "ChecksumMismatch"}),
                             ("scorer_batch_retries_total", {"cause": "send"}),
                             ("scorer_store_errors_total", {"operation": "active"}),
                             ("scorer_events_total", {"model": MODEL, "segment": "A", "version": "1",
                                                      "outcome": "dead_letter"})):
            assert _has_series(text, name, **labels), f"{name}{labels} missing before its first event"
            assert metric_value(text, name, **labels) == 0
        assert _has_series(text, "scorer_consumer_lag_sum")

        # Lag: events produced while the worker's partitions exist are read, and the lag returns to 0.
        produce_sync(bootstrap, topics.events, [event(f"e-{i}", "A", FEATURES) for i in range(2000)])
        produce_sync(bootstrap, topics.events, [(b"bad", b"{not json")])
        collector.wait_for(lambda c: len(c.snapshot(topics.predictions)) >= 2000 and c.snapshot(topics.dlq),
                           timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = worker.metrics()
            partitions = [line for line in text.splitlines() if line.startswith("scorer_consumer_lag{")]
            if len(partitions) == 4 and metric_value(text, "scorer_consumer_lag_sum") == 0:
                break
            time.sleep(0.5)
        assert len(partitions) == 4, text
        assert metric_value(text, "scorer_consumer_lag_sum") == 0
        assert metric_value(text, "scorer_dead_letters_total", reason="not_json") == 1
        assert metric_value(text, "scorer_events_total", segment="A", version="1", outcome="scored") == 2000

        # A raw CQL swap: the worker follows it and the log gets it once (the worker may be the one to write it).
        cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 "  # type: ignore[attr-defined]
                          "WHERE model = %s AND segment = %s", (MODEL, "A"))
        deadline = time.monotonic() + 20
        while worker.version_of(MODEL, "A") != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.version_of(MODEL, "A") == 2
        rows = list(cassandra.execute(  # type: ignore[attr-defined]
            f"SELECT action, to_version FROM {settings.keyspace}.activations WHERE model = %s AND segment = %s",
            (MODEL, "A")))
        assert [(row.action, row.to_version) for row in rows] == [("external", 2), ("release", 1)]
        text = worker.metrics()  # version 2 went live: its series exist before its first event
        assert _has_series(text, "scorer_events_total", segment="A", version="2", outcome="scored")
        assert metric_value(text, "scorer_swaps_total", model=MODEL, result="ok") >= 1
    collector.stop()
    listed = run_cli(settings, "activations", MODEL, "A")
    assert listed.returncode == 0 and "outside scorer" in listed.stdout, listed.stderr


def test_readyz_waits_while_nothing_is_served(settings: Settings, new_topic: Callable[..., str]) -> None:
    topics = make_topics(new_topic)
    worker = WorkerProcess(settings, topics, extra_args=["--models", "later", "--allow-empty"])
    with workers(worker.start()):
        worker.wait_ready()
        assert _status(worker, "/healthz")[0] == 200
        code, body = _status(worker, "/readyz")
        assert code == 503 and body["status"] == "waiting"
        assert any(reason.startswith("models:") for reason in body["waiting_for"]), body


@pytest.mark.parametrize("flags", [["--models", "typo"], ["--models", f"{MODEL},typo"]])
def test_worker_with_a_model_that_has_nothing_published_fails_fast(settings: Settings, flags: list[str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish(MODEL, "A", logistic(0, 4), activate=True)
    started = time.monotonic()
    result = run_cli(settings, "worker", *flags, "--web-port", "1", timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --models: nothing is published for 'typo'"), lines
    assert "--allow-empty" in lines[0] and MODEL in lines[0]
    assert time.monotonic() - started < 30


def test_usage_mistakes_are_one_error_line_with_exit_1(settings: Settings) -> None:
    for args in (["activate", MODEL], ["worker", "--no-such-flag"], ["rollback"], ["no-such-command"]):
        result = run_cli(settings, *args)
        assert result.returncode == 1, (args, result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
        assert result.stdout == ""


def test_an_unreachable_broker_is_one_line_with_no_library_noise_before_or_after(
        settings: Settings, tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "events.csv"
    data.write_text("id,city,f0\n1,A,0.5\n")
    result = run_cli(settings, "--kafka", "kafka://127.0.0.1:1", "send", "--data", str(data), "--model", MODEL,
                     "--segment-col", "city", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("error: cannot reach Kafka at 127.0.0.1:1")
