"""Process faults during a sustained stream: the Kafka broker restarts, Cassandra is down for 30 s.

Each test runs a real ``scorer worker`` subprocess against a server the test owns (never the shared dev
stack): a Kafka broker on a free port of 127.0.0.1, or a Cassandra node on 127.0.0.6, both with state under
pytest's tmp dir and stopped at the end of the module. A producer sends events at a steady rate for the
whole test, through the fault; afterwards the input topic is read back and every id on it must have a
prediction or a dead letter (duplicates allowed and counted), with the same worker process still running
(it recovers by itself). Each test records events lost, duplicates and time to recover in
reports/faults.json and prints them.

The third process fault, SIGKILL of a worker and its restart, is tests/integration/test_worker_crash.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from cassandra.cluster import Session
from support.faults import (
    SteadyProducer,
    account,
    accounting_row,
    create_topics,
    first_after,
    free_port,
    read_topic,
    record_fault,
)
from support.store import logistic
from support.stream import Collector, Topics, WorkerProcess, event, make_topics, metric_value, workers

from devstack.stack import CassandraNode, KafkaNode
from scorer import schema
from scorer.config import Settings, load_settings
from scorer.kafka.notices import publish_notice_async
from scorer.store import CassandraModelStore
from scorer.store.connection import connect

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = [f"S{i}" for i in range(10)]
OWN_CASSANDRA = "127.0.0.6"


def make_event(i: int) -> tuple[bytes, bytes]:
    return event(f"e-{i}", SEGMENTS[i % len(SEGMENTS)],
                 {"f0": (i % 7) / 7.0, "f1": (i % 5) - 2.0, "f2": (i % 3) * 0.5, "f3": 1.0})


def publish(settings: Settings, second_version: bool = False) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(seg, logistic(0, 4), None, None) for seg in SEGMENTS], activate=True)
        if second_version:
            store.publish_many(MODEL, [(seg, logistic(1, 4), None, None) for seg in SEGMENTS])


def output_ids_cover(collector: Collector, topics: Topics, ids: set[str]) -> bool:
    seen = collector.ids(topics.predictions) | collector.ids(topics.dlq)
    return ids <= seen


def caught_up_after(outputs: list, ids: set[str], moment: float) -> float | None:
    """Seconds after ``moment`` until every id in ``ids`` had its first output."""
    first: dict[str, float] = {}
    for out in outputs:
        key = out.value.get("id")
        if key in ids and (key not in first or out.received < first[key]):
            first[key] = out.received
    if set(first) != ids:
        return None
    return round(max(0.0, max(first.values()) - moment), 3)


# ------------------------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    node = KafkaNode(name="faults", address="127.0.0.1", port=free_port(), controller_port=free_port(),
                     state=tmp_path_factory.mktemp("kafka-faults"), heap="512m", start_timeout=180)
    try:
        assert node.up(), f"something already answers on {node.address}:{node.port}"
        yield node
    finally:
        node.down(quiet=True)


def test_kafka_broker_restart_mid_stream(settings: Settings, own_kafka: KafkaNode,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = f"{own_kafka.address}:{own_kafka.port}"
    monkeypatch.setenv("SCORER_KAFKA", f"kafka://{bootstrap}")  # the worker subprocess uses our broker
    publish(settings)
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"events-{tag}", f"predictions-{tag}", f"dlq-{tag}", f"changes-{tag}")
    asyncio.run(create_topics(bootstrap, {topics.events: 4, topics.predictions: 4, topics.dlq: 1,
                                          topics.changes: 1}))
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="kafka-fault")
    producer = SteadyProducer(bootstrap, topics.events, make_event, rate=400)
    with workers(worker.start()):
        worker.wait_ready()
        producer.start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 3_000, timeout=60, what="outputs before the fault")

        fault_start = time.time()
        own_kafka.down(quiet=True)  # SIGTERM: a clean broker shutdown
        time.sleep(5.0)
        own_kafka.up()
        fault_end = time.time()
        sent_before_end = {f"e-{i}" for i in producer.sent_before(fault_end)}

        collector.wait_for(lambda c: output_ids_cover(c, topics, sent_before_end), timeout=180,
                           what="outputs for every event sent before the broker returned")
        time.sleep(10.0)  # the stream goes on after the recovery
        producer.stop()
        expected = {f"e-{i}" for i in producer.acked}
        collector.wait_for(lambda c: output_ids_cover(c, topics, expected), timeout=120, what="every output")
        time.sleep(2.0)  # late duplicates would show up now
        assert worker.alive() and worker.starts == 1, f"the worker did not survive the restart:\n{worker.tail()}"
        metrics = worker.metrics()
    collector.stop()

    inputs = [key.decode() for key, _ in read_topic(bootstrap, topics.events) if key is not None]
    outputs = collector.snapshot()
    acc = account(inputs, outputs)
    assert acc.inputs == len(expected) == producer.scheduled, "the producer's events are not all on the topic"
    assert acc.lost == [], f"{len(acc.lost)} events lost, e.g. {acc.lost[:5]}"
    assert acc.dead_letters == 0, [o.value["error"] for o in outputs if "error" in o.value][:3]
    assert metric_value(metrics, "scorer_events_total", outcome="scored") >= acc.inputs
    recover = first_after(outputs, fault_end)
    assert recover is not None
    record_fault("kafka_restart", accounting_row(
        acc, fault="Kafka broker stopped (SIGTERM) for 5 s and restarted during a 400 events/s stream",
        outage_s=round(fault_end - fault_start, 1), recover_s=recover,
        caught_up_s=caught_up_after(outputs, sent_before_end, fault_end), producer_resends=producer.resends,
        worker_restarts=worker.starts - 1))


# --------------------------------------------------------------------------------------- Cassandra


@pytest.fixture(scope="module")
def own_cassandra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    node = CassandraNode(name="faults", address=OWN_CASSANDRA, port=free_port(OWN_CASSANDRA),
                         storage_port=free_port(OWN_CASSANDRA), state=tmp_path_factory.mktemp("cassandra-faults"),
                         heap="512M", start_timeout=240)
    try:
        assert node.up(), f"something already answers on {node.address}:{node.port}"
        yield node
    finally:
        node.down(quiet=True)


def stop_accepting_clients(node: CassandraNode, timeout: float = 30.0) -> None:
    """Ask the node to shut down (SIGTERM) and return once its CQL port is closed (the rest of the stop follows)."""
    pid = node.pid()
    assert pid is not None, "our Cassandra node is not running"
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((node.address, node.port)) != 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"Cassandra on {node.address}:{node.port} still takes clients {timeout} s after SIGTERM")


@pytest.fixture(scope="module")
def own_settings(own_cassandra: CassandraNode) -> Iterator[tuple[Settings, Session]]:
    """Settings on our node with a fresh keyspace (schema applied), and a session for raw CQL."""
    settings = load_settings(cassandra_hosts=own_cassandra.address, cassandra_port=own_cassandra.port,
                             keyspace=f"f_{uuid.uuid4().hex[:12]}")
    cluster, session = connect(settings)
    schema.apply(session, settings)
    yield settings, session
    cluster.shutdown()


def test_cassandra_down_30s_scoring_goes_on_and_the_swap_lands_after(
        own_cassandra: CassandraNode, own_settings: tuple[Settings, Session], bootstrap: str,
        new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, session = own_settings
    monkeypatch.setenv("SCORER_CASSANDRA_HOSTS", own_cassandra.address)
    monkeypatch.setenv("SCORER_CASSANDRA_PORT", str(own_cassandra.port))
    publish(settings, second_version=True)  # v1 live, v2 published
    swapped = "S3"
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="cassandra-fault")
    producer = SteadyProducer(bootstrap, topics.events, make_event, rate=200)
    with workers(worker.start()):
        worker.wait_ready()
        producer.start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 1_500, timeout=60, what="outputs before the fault")

        # The swap is asked for as the node goes down. The worker is paused until the node has stopped taking
        # CQL clients (the first step of its shutdown), so it cannot read the new pointer before the outage:
        # v2 can only be loaded after the node returns. (A clean stop: the node flushes on the way down. A
        # SIGKILLed single node may lose writes acknowledged in the last commitlog_sync_period, 10 s here.)
        assert worker.proc is not None
        os.kill(worker.proc.pid, signal.SIGSTOP)
        try:
            session.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s "
                            "AND segment = %s", (MODEL, swapped))
            stop_accepting_clients(own_cassandra)
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)
        fault_start = time.time()
        own_cassandra.down(quiet=True)
        # A notice (as `scorer activate` sends) makes the worker try the swap now, while the store is down.
        asyncio.run(publish_notice_async(settings.model_copy(update={"kafka": f"kafka://{bootstrap}"}), MODEL,
                                         swapped, "activate", 2, topic=topics.changes))
        time.sleep(10.0)
        during = worker.models()
        during_metrics = worker.metrics()
        time.sleep(20.0)
        assert worker.models()["models"][MODEL][swapped]["version"] == 1, "v2 was served before the node returned"
        own_cassandra.up()
        fault_end = time.time()

        def v2_served(c: Collector) -> bool:
            return any(o.value.get("segment") == swapped and o.value.get("version") == 2
                       for o in c.snapshot(topics.predictions))

        try:
            collector.wait_for(v2_served, timeout=90, what=f"{swapped} v2 predictions after Cassandra returned")
        except AssertionError as exc:
            row = session.execute(f"SELECT version FROM {settings.keyspace}.active_models WHERE model = %s "
                                  "AND segment = %s", (MODEL, swapped)).one()
            raise AssertionError(f"{exc}; pointer now {row}, worker serves {worker.models()['models'][MODEL][swapped]}"
                                 f"\n{worker.tail(20)}") from None
        time.sleep(5.0)
        producer.stop()
        expected = {f"e-{i}" for i in producer.acked}
        collector.wait_for(lambda c: output_ids_cover(c, topics, expected), timeout=120, what="every output")
        time.sleep(2.0)
        assert worker.alive() and worker.starts == 1, f"the worker did not survive the outage:\n{worker.tail()}"
        after = worker.models()
        after_metrics = worker.metrics()
        log_text = worker.log_path.read_text(errors="replace")
    collector.stop()

    inputs = [key.decode() for key, _ in read_topic(bootstrap, topics.events) if key is not None]
    outputs = collector.snapshot()
    acc = account(inputs, outputs, window=(fault_start, fault_end))
    assert acc.inputs == len(expected) == producer.scheduled
    assert acc.lost == [], f"{len(acc.lost)} events lost, e.g. {acc.lost[:5]}"
    assert acc.dead_letters == 0, [o.value["error"] for o in outputs if "error" in o.value][:3]

    # While the node was down: the store was reported down, and predictions kept flowing with loaded models.
    assert during["store"]["up"] is False, during["store"]
    assert metric_value(during_metrics, "scorer_store_up") == 0
    assert metric_value(during_metrics, "scorer_store_errors_total") >= 1
    scored_during = [o for o in outputs if "id" in o.value and fault_start + 1 < o.received < fault_end - 1]
    assert len(scored_during) > 100 * (fault_end - fault_start - 2), "scoring stalled while Cassandra was down"
    assert acc.max_gap_s < 5.0, f"outputs paused for {acc.max_gap_s} s during the outage"
    assert "model store unavailable" in log_text and "reachable again" in log_text

    # After: the swap asked for during the outage took effect, once, and never went back.
    assert after["store"]["up"] is True and after["models"][MODEL][swapped]["version"] == 2
    assert metric_value(after_metrics, "scorer_store_up") == 1
    # In scoring order: each batch is stamped once when scored (arrival order interleaves partitions).
    seq = [o.value["version"] for o in sorted(collector.snapshot(topics.predictions),
                                              key=lambda o: (o.value["scored_at"], o.received))
           if o.value["segment"] == swapped]
    assert seq == sorted(seq) and set(seq) == {1, 2}
    assert all(o.value["version"] == 1 for o in outputs if "id" in o.value and o.value["segment"] == swapped
               and o.received < fault_end)
    swap_s = first_after(outputs, fault_end, lambda o: o.value.get("segment") == swapped
                         and o.value.get("version") == 2)
    record_fault("cassandra_down", accounting_row(
        acc, fault="Cassandra node stopped for 30 s and restarted during a 200 events/s stream; v2 activated "
                   "for one segment as it went down",
        outage_s=round(fault_end - fault_start, 1), recover_s=first_after(outputs, fault_end),
        swap_after_return_s=swap_s,
        scored_during_outage=len(scored_during), producer_resends=producer.resends,
        worker_restarts=worker.starts - 1))
