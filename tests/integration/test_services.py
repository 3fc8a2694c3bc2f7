"""The foundation: the real servers answer, blobs round-trip, messages flow, the schema applies twice."""

from __future__ import annotations

import asyncio
import os
import uuid

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra.cluster import Session

from scorer import schema
from scorer.config import Settings


def test_blob_round_trip_in_real_cassandra(cassandra: Session, settings: Settings) -> None:
    table = f"{settings.keyspace}.blobs"
    cassandra.execute(f"CREATE TABLE {table} (k text PRIMARY KEY, v blob)")
    payload = np.random.default_rng(1).standard_normal(64 * 1024).tobytes()  # 512 KiB
    insert = cassandra.prepare(f"INSERT INTO {table} (k, v) VALUES (?, ?)")
    select = cassandra.prepare(f"SELECT v FROM {table} WHERE k = ?")
    cassandra.execute(insert, ("a", payload))
    row = cassandra.execute(select, ("a",)).one()
    assert row is not None and row.v == payload
    version = cassandra.execute("SELECT release_version FROM system.local").one().release_version
    assert version.startswith("5.0"), version


def test_produce_and_consume_through_real_kafka(bootstrap: str, new_topic) -> None:
    topic = new_topic("foundation")
    sent = [f"message-{i}-{uuid.uuid4().hex}".encode() for i in range(20)]

    async def flow() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for value in sent:
                await producer.send_and_wait(topic, value, key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    group_id=f"g-{uuid.uuid4().hex[:8]}")
        await consumer.start()
        received: list[bytes] = []
        try:
            while len(received) < len(sent):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for records in batch.values():
                    received.extend(record.value for record in records)
        finally:
            await consumer.stop()
        return received

    assert asyncio.run(flow()) == sent


def test_schema_apply_is_idempotent_and_recorded(cassandra: Session, settings: Settings) -> None:
    names = schema.apply(cassandra, settings)  # the fixture applied it once already
    assert names and names == sorted(names)
    applied = cassandra.execute(f"SELECT name, checksum FROM {settings.keyspace}.schema_migrations")
    rows = {r.name: r.checksum for r in applied}
    assert set(rows) == set(names)
    ks = cassandra.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                           (settings.keyspace,)).one()
    assert ks.replication["class"].endswith("SimpleStrategy")
    assert ks.replication["replication_factor"] == str(settings.replication_factor)
    assert os.environ.get("SCORER_KEYSPACE", "scorer") != settings.keyspace
