"""Two workers in one consumer group split the partitions and both follow a swap; CLI notices are best effort."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
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

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = [f"G{i}" for i in range(8)]
FEATURES = {"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4}


@pytest.mark.parametrize("reader", ["direct", "faust"])
def test_two_workers_split_partitions_and_both_follow_a_cli_swap_by_notice(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str], reader: str) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(s, logistic(0, 4), None, None) for s in SEGMENTS], activate=True)
        store.publish_many(MODEL, [(s, logistic(1, 4), None, None) for s in SEGMENTS])
    topics = make_topics(new_topic, partitions=4)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    # A 30 s poll: only the model-changes notice can make the swap visible within seconds.
    args = ["--poll-interval", "30", "--consumer", reader]
    a = WorkerProcess(settings, topics, extra_args=args, name="a")
    b = WorkerProcess(settings, topics, app_id=a.app_id, extra_args=args, name="b")
    stop = threading.Event()
    sent = [0]

    def feed() -> None:
        n = 0
        while not stop.is_set():
            batch = [event(f"e-{n + i}", SEGMENTS[(n + i) % len(SEGMENTS)], FEATURES) for i in range(200)]
            produce_sync(bootstrap, topics.events, batch)
            n += len(batch)
            sent[0] = n
            time.sleep(0.2)

    with workers(a.start(), b.start()):
        a.wait_ready()
        b.wait_ready()
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                parts = (a.models()["worker"]["partitions"], b.models()["worker"]["partitions"])
                if parts[0] and parts[1] and a.models()["worker"]["events"] and b.models()["worker"]["events"]:
                    break
                time.sleep(0.5)
            assert parts[0] and parts[1], f"both workers should own partitions; got {parts}"
            assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == [0, 1, 2, 3]

            done = run_cli(settings, "activate", MODEL, "G3", "2", changes=topics.changes)
            assert done.returncode == 0, done.stderr
            assert "warning" not in done.stderr
            swapped_at = time.time()
            for worker in (a, b):
                deadline = time.monotonic() + 5
                while worker.version_of(MODEL, "G3") != 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert worker.version_of(MODEL, "G3") == 2, f"{worker.log_path} did not follow the swap"
            took = time.time() - swapped_at
            assert took < 5, f"swap took {took:.1f} s to reach both workers with a 30 s poll"
            time.sleep(2.0)  # let both score some G3 events on v2
        finally:
            stop.set()
            feeder.join(30)
        total = sent[0]
        collector.wait_for(lambda c: len(c.ids(topics.predictions)) >= total, timeout=60)
        metrics = [a.metrics(), b.metrics()]
    collector.stop()

    assert len(collector.snapshot(topics.dlq)) == 0
    assert collector.ids(topics.predictions) == {f"e-{i}" for i in range(total)}
    for text in metrics:
        assert metric_value(text, "scorer_events_total", outcome="scored") > 0
        assert metric_value(text, "scorer_events_total", segment="G3", version="2") > 0
        assert metric_value(text, "scorer_notices_total") >= 1
    assert sum(metric_value(t, "scorer_events_total", outcome="scored") for t in metrics) >= total


def test_cli_change_publishes_a_notice_and_survives_kafka_being_unreachable(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish(MODEL, "N", logistic(0, 4), activate=True)
        store.publish(MODEL, "N", logistic(1, 4))
    changes = new_topic("changes", 1)
    env = {"SCORER_CHANGES_TOPIC": changes}
    from support.stream import cli_env

    done = run_cli(settings, "canary", MODEL, "N", "2", "--fraction", "0.25", env=cli_env(settings, **env))
    assert done.returncode == 0, done.stderr
    done = run_cli(settings, "promote", MODEL, "N", env=cli_env(settings, **env))
    assert done.returncode == 0, done.stderr

    import asyncio

    async def read() -> list[dict]:
        consumer = AIOKafkaConsumer(changes, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            got = await consumer.getmany(timeout_ms=5000)
            return [orjson.loads(r.value) for records in got.values() for r in records]
        finally:
            await consumer.stop()

    notices = asyncio.run(read())
    assert [(n["model"], n["segment"], n["action"], n["version"]) for n in notices] == [
        (MODEL, "N", "canary", 2), (MODEL, "N", "promote", 2)]
    assert all(set(n) == {"model", "segment", "action", "version", "at"} for n in notices)

    # Kafka unreachable: the pointer still changes, the command still succeeds, with one warning line.
    done = run_cli(settings, "rollback", MODEL, "N",
                   env=cli_env(settings, SCORER_KAFKA="kafka://127.0.0.1:1", **env), timeout=90)
    assert done.returncode == 0, done.stderr
    assert "warning: the change is live, but its" in done.stderr and "next poll" in done.stderr
    with CassandraModelStore(settings) as store:
        assert store.active(MODEL, "N")["N"].version == 1
