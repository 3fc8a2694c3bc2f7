"""Exactly-once scoring (``--guarantee exactly-once``) on the real servers, read the way downstream must read it.

Every check reads the outputs with ``isolation_level="read_committed"`` (support.stream.Collector) and
asserts each input id exactly once (0 lost, 0 duplicates) through a fault: a SIGKILL and restart, a second
worker joining and leaving (two rebalances), a worker frozen with SIGSTOP until its partitions move and then
resumed (fenced: whatever it still sends is aborted). During each a segment is swapped by a raw CQL
``UPDATE`` of ``active_models``, and the swap must show in the predictions.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from cassandra.cluster import Session
from support.store import logistic
from support.stream import Collector, Topics, WorkerProcess, event, make_topics, metric_value, produce_sync, workers

from scorer.config import Settings
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = [f"K{i}" for i in range(10)]
FEATURES = {"f0": 1.0, "f1": 0.0, "f2": -1.0, "f3": 0.5}
SWAPPED = "K3"
EOS = ["--guarantee", "exactly-once", "--commit-interval", "0.5", "--session-timeout", "6"]


def publish(settings: Settings) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(s, logistic(i % 3, 4), None, None) for i, s in enumerate(SEGMENTS)],
                           activate=True)
        store.publish(MODEL, SWAPPED, logistic(7, 4))  # version 2, swapped in by raw CQL mid-stream


def messages(start: int, stop: int) -> list[tuple[bytes, bytes]]:
    return [event(f"e-{i}", SEGMENTS[i % len(SEGMENTS)], FEATURES) for i in range(start, stop)]


def cql_swap(cassandra: Session, settings: Settings) -> float:
    cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s AND segment = %s",
                      (MODEL, SWAPPED))
    return time.time()


class Feed:
    """Sends events e-0, e-1, ... at about ``rate`` per second in a thread until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.sent = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feed:
        self.thread.start()
        return self

    def _run(self) -> None:
        chunk = int(self.rate / 10)
        while not self._stop.is_set():
            started = time.monotonic()
            produce_sync(self.bootstrap, self.topic, messages(self.sent, self.sent + chunk))
            self.sent += chunk
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    def stop(self) -> int:
        """Stop sending; the number of events sent."""
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the producer did not stop"
        return self.sent


def check_exactly_once(collector: Collector, topics: Topics, n: int, swapped_at: float) -> Counter:
    """Every id once in the committed predictions, no dead letter, and the raw CQL swap took effect."""
    collector.wait_for(lambda c: len(c.ids(topics.predictions)) >= n, timeout=120, what=f"all {n} ids")
    time.sleep(2.0)  # anything late (a duplicate) has time to show up
    outputs = collector.snapshot(topics.predictions)
    counts = Counter(o.value["id"] for o in outputs)
    lost = {f"e-{i}" for i in range(n)} - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    print(f"\n{len(outputs)} committed predictions for {n} events: {len(lost)} lost, {duplicates} duplicates")
    assert not lost, f"{len(lost)} events lost, e.g. {sorted(lost)[:5]}"
    assert duplicates == 0, f"{duplicates} duplicates, e.g. {[k for k, c in counts.items() if c > 1][:5]}"
    assert collector.snapshot(topics.dlq) == []
    late = [o for o in outputs if o.value["segment"] == SWAPPED and o.timestamp > swapped_at + 2.5]
    assert late, "no prediction of the swapped segment after the swap"
    assert all(o.value["version"] == 2 for o in late), "the raw CQL swap did not take effect"
    return counts


def test_sigkill_mid_stream_then_restart_every_id_exactly_once(
        settings: Settings, cassandra: Session, bootstrap: str, new_topic: Callable[..., str]) -> None:
    publish(settings)
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, extra_args=EOS)
    with workers(worker.start()):
        worker.wait_ready()
        feed = Feed(bootstrap, topics.events, rate=1_500).start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 3_000, timeout=60, what="3,000 outputs before the kill")
        worker.kill()  # SIGKILL: its open transactions stay open until the restarted worker fences them
        swapped_at = cql_swap(cassandra, settings)
        worker.start()
        worker.wait_ready(timeout=90)
        collector.wait_for(lambda c: len(c.snapshot()) >= feed.sent - 3_000, timeout=60, what="catching up")
        time.sleep(4.0)
        n = feed.stop()
        check_exactly_once(collector, topics, n, swapped_at)
        text = worker.metrics()
    collector.stop()
    assert metric_value(text, "scorer_transactions_total", outcome="committed") > 0


def test_a_worker_joining_and_leaving_no_duplicate_no_loss(
        settings: Settings, cassandra: Session, bootstrap: str, new_topic: Callable[..., str]) -> None:
    publish(settings)
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    a = WorkerProcess(settings, topics, extra_args=EOS, name="a")
    b = WorkerProcess(settings, topics, app_id=a.app_id, extra_args=EOS, name="b")
    with workers(a.start(), b):
        a.wait_ready()
        feed = Feed(bootstrap, topics.events, rate=1_500).start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 2_000, timeout=60, what="outputs before the join")
        b.start()
        b.wait_ready()
        deadline = time.monotonic() + 60
        while not (b.models()["worker"]["partitions"] and b.models()["worker"]["events"]):
            assert time.monotonic() < deadline, "the second worker never got partitions and events"
            time.sleep(0.3)
        swapped_at = cql_swap(cassandra, settings)
        time.sleep(4.0)
        assert b.terminate() == 0, b.tail()  # leaves: its partitions go back to a
        time.sleep(3.0)
        n = feed.stop()
        check_exactly_once(collector, topics, n, swapped_at)
    collector.stop()


def test_a_paused_worker_is_fenced_when_its_partitions_move(
        settings: Settings, cassandra: Session, bootstrap: str, new_topic: Callable[..., str]) -> None:
    publish(settings)
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    a = WorkerProcess(settings, topics, extra_args=EOS, name="a")
    b = WorkerProcess(settings, topics, app_id=a.app_id, extra_args=EOS, name="b")
    with workers(a.start(), b.start()):
        a.wait_ready()
        b.wait_ready()
        feed = Feed(bootstrap, topics.events, rate=1_500).start()
        deadline = time.monotonic() + 60
        while not (a.models()["worker"]["events"] and b.models()["worker"]["events"]):
            assert time.monotonic() < deadline, "both workers should be scoring"
            time.sleep(0.3)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)  # frozen mid-transaction; its session expires, b takes everything
        try:
            deadline = time.monotonic() + 60
            while sorted(b.models()["worker"]["partitions"]) != [0, 1, 2, 3]:
                assert time.monotonic() < deadline, "the paused worker's partitions never moved"
                time.sleep(0.3)
            swapped_at = cql_swap(cassandra, settings)
            time.sleep(4.0)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)  # resumes believing it still owns its partitions
        time.sleep(4.0)
        n = feed.stop()
        counts = check_exactly_once(collector, topics, n, swapped_at)
        text = a.metrics()
    collector.stop()
    assert len(counts) == n
    fenced = metric_value(text, "scorer_transactions_total", outcome="fenced")
    aborted = metric_value(text, "scorer_transactions_total", outcome="aborted")
    print(f"paused worker: {fenced:.0f} fenced, {aborted:.0f} aborted transactions")
    assert fenced + aborted >= 1, "the resumed worker should have found its transactions fenced"
