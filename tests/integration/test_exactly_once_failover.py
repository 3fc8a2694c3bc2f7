"""Exactly-once through a broker failure: three brokers (RF 3, min.insync.replicas 2), the leader of an input
partition SIGKILLed mid-stream, a raw CQL swap meanwhile; every input record has exactly one committed output.

The cluster is the test's own (devstack.cluster on free ports, state under pytest's tmp dir), never the
shared broker. The events are sent by a producer that re-sends what a dying broker did not acknowledge, so
an event may land on the input topic twice; the check is therefore per input record: each id has as many
committed predictions as it has copies on the input topic (0 lost, 0 duplicates beyond the input's own).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from cassandra.cluster import Session
from support.faults import SteadyProducer, free_port, read_topic, record_fault
from support.store import logistic
from support.stream import Collector, Topics, WorkerProcess, event, wait_for_topics, workers

from devstack.cluster import bootstrap as cluster_bootstrap
from devstack.cluster import kafka_cluster, start
from devstack.nodes import KafkaNode
from scorer.config import Settings
from scorer.kafka import ensure_topics
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = [f"S{i}" for i in range(10)]
SWAPPED = "S3"


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[KafkaNode]]:
    nodes = kafka_cluster(tmp_path_factory.mktemp("kafka3"), [free_port() for _ in range(3)],
                          [free_port() for _ in range(3)], heap="384m", start_timeout=240)
    try:
        assert start(nodes) == ["stopped"] * 3, "something already answered on the cluster's ports"
        yield nodes
    finally:
        for node in nodes:
            node.down(quiet=True)


def make_event(i: int) -> tuple[bytes, bytes]:
    return event(f"e-{i}", SEGMENTS[i % len(SEGMENTS)], {"f0": (i % 7) / 7.0, "f1": 0.5, "f2": -1.0, "f3": 1.0})


async def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (found,) = [p for p in described["partitions"] if p["partition"] == partition]
        return int(found["leader"])
    finally:
        await admin.close()


def test_input_partition_leader_killed_mid_stream_nothing_lost_nothing_twice(
        settings: Settings, cassandra: Session, brokers: list[KafkaNode], monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = cluster_bootstrap(brokers)
    monkeypatch.setenv("SCORER_KAFKA", "kafka://" + bootstrap.replace(",", ";"))  # the worker's brokers
    cluster = settings.model_copy(update={"kafka": "kafka://" + bootstrap.replace(",", ";")})
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(s, logistic(i % 3, 4), None, None) for i, s in enumerate(SEGMENTS)],
                           activate=True)
        store.publish(MODEL, SWAPPED, logistic(7, 4))
    tag = time.strftime("%H%M%S")
    topics = Topics(f"events-{tag}", f"predictions-{tag}", f"dlq-{tag}", f"changes-{tag}")
    asyncio.run(ensure_topics(cluster, {topics.events: 4, topics.predictions: 4, topics.dlq: 1, topics.changes: 1},
                              replication=3))
    # A young cluster on 2 cores: a broker can lag minutes behind in learning of new topics.
    waited = wait_for_topics(bootstrap, [topics.events, topics.predictions, topics.dlq, topics.changes], timeout=180)
    print(f"\ntopics known to all three brokers after {waited:.1f} s")
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start(timeout=120)
    worker = WorkerProcess(settings, topics, name="failover", extra_args=[
        "--guarantee", "exactly-once", "--commit-interval", "0.5", "--no-drift", "--no-shadow"])
    producer = SteadyProducer(bootstrap, topics.events, make_event, rate=800)
    with workers(worker.start()):
        worker.wait_ready(timeout=90)
        producer.start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 3_000, timeout=90, what="outputs before the kill")
        leader = asyncio.run(leader_of(bootstrap, topics.events, 0))
        victim = next(node for node in brokers if node.node_id == leader)
        victim.kill()  # SIGKILL: no controlled shutdown, leadership moves only once the controller notices
        killed_at = time.time()
        cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s AND segment = %s",
                          (MODEL, SWAPPED))
        time.sleep(15.0)
        producer.stop()
        inputs = Counter(key.decode() for key, _ in read_topic(bootstrap, topics.events) if key is not None)
        collector.wait_for(lambda c: len(c.ids(topics.predictions)) >= len(inputs), timeout=180,
                           what="a prediction for every input")
        time.sleep(3.0)  # late duplicates would show up now
        assert worker.alive(), f"the worker died with the broker:\n{worker.tail()}"
    collector.stop()

    outputs = collector.snapshot(topics.predictions)
    counts = Counter(o.value["id"] for o in outputs)
    lost = set(inputs) - set(counts)
    extra = {i: counts[i] - inputs[i] for i in counts if counts[i] != inputs.get(i, 0)}
    print(f"\nbroker {leader} killed: {sum(inputs.values())} input records ({len(inputs)} ids), {len(outputs)} "
          f"committed predictions, {len(lost)} lost, {sum(v for v in extra.values() if v > 0)} duplicates")
    assert not lost, f"{len(lost)} events lost, e.g. {sorted(lost)[:5]}"
    assert not extra, f"outputs that do not match their inputs one to one, e.g. {list(extra.items())[:5]}"
    assert collector.snapshot(topics.dlq) == []
    late = [o for o in outputs if o.value["segment"] == SWAPPED and o.timestamp > killed_at + 5]
    assert late and all(o.value["version"] == 2 for o in late), "the raw CQL swap did not take effect"
    record_fault("eos_leader_killed", {
        "fault": "three brokers (RF 3, min ISR 2), leader of input partition 0 SIGKILLed at 800 events/s, "
                 "--guarantee exactly-once", "inputs": sum(inputs.values()), "outputs": len(outputs),
        "lost": len(lost), "duplicates": sum(v for v in extra.values() if v > 0),
        "producer_resends": producer.resends})
