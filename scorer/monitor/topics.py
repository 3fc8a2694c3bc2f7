"""Monitoring topics: where drift snapshots, alerts and live metrics go, and how the CLI reads them back.

Workers hold read-only Cassandra credentials, so what they learn about live traffic is published to Kafka:

- ``model-drift`` (compacted), key ``model/segment/version``: the last evaluated drift window
  (``DriftSnapshot.to_json()`` plus ``at``);
- ``model-metrics`` (compacted), key ``model/segment/version``: rolling accuracy of that version
  (``{"model", "segment", "version", "role", "task", "metrics": {...}, "window", "total", "at"}``);
- ``model-alerts``, key ``model/segment``: threshold crossings
  (``{"kind", "model", "segment", "version", "feature", "statistic", "value", "threshold", "window", "at"}``,
  ``feature`` null for accuracy alerts).

Readers take the latest message per key: with compaction the topic holds about one message per key, and
without it (auto-created topics) reading still works, only slower.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from scorer.config import Settings

DRIFT_TOPIC = "model-drift"
METRICS_TOPIC = "model-metrics"
ALERTS_TOPIC = "model-alerts"
LABELS_TOPIC = "labels"
SHADOW_TOPIC = "predictions-shadow"

COMPACTED = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True)
class MonitorTopics:
    drift: str = DRIFT_TOPIC
    metrics: str = METRICS_TOPIC
    alerts: str = ALERTS_TOPIC


def version_key(model: str, segment: str, version: int) -> bytes:
    return f"{model}/{segment}/{version}".encode()


def segment_key(model: str, segment: str) -> bytes:
    return f"{model}/{segment}".encode()


def dumps(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


async def ensure_topics(settings: Settings, topics: MonitorTopics, partitions: int = 4) -> list[str]:
    """Create the monitoring topics that do not exist yet (snapshots compacted); returns the ones created.

    A broker that refuses (no permission, unreachable) is not fatal here: the topics may be auto-created on
    first write, and the publisher reports failed sends itself.
    """
    from scorer.errors import BrokerUnavailable
    from scorer.kafka import TopicSpec
    from scorer.kafka import ensure_topics as ensure

    wanted = {topics.drift: TopicSpec(partitions, COMPACTED), topics.metrics: TopicSpec(partitions, COMPACTED),
              topics.alerts: TopicSpec(partitions)}
    try:
        return await ensure(settings, wanted)
    except BrokerUnavailable:
        return []


async def read_latest(settings: Settings, topic: str, *, prefix: str = "", timeout: float = 15.0
                      ) -> dict[str, dict[str, Any]]:
    """The newest JSON message of every key starting with ``prefix``, reading ``topic`` up to its current end.

    A topic that does not exist yields an empty dict (nothing was ever published). Messages that are not
    JSON objects are skipped. Raises BrokerUnavailable when the brokers cannot be reached.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from scorer.errors import BrokerUnavailable
    from scorer.kafka import aiokafka_options, describe_failure

    wanted = prefix.encode()
    consumer = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", request_timeout_ms=int(timeout * 1000),
                                isolation_level="read_committed")
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        if topic not in await consumer.topics():
            return {}
        # Without a group, subscribing assigns every partition once the metadata of the topic is known.
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"no partitions of {topic!r} were assigned within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        partitions = sorted(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        while remaining:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"reading {topic!r} did not reach its end within {timeout:.0f} s")
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.key is None or not record.key.startswith(wanted):
                        continue
                    try:
                        value = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(value, dict):
                        latest[record.key.decode()] = (record.timestamp, value)
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnavailable(describe_failure(settings, exc)) from None
    finally:
        await consumer.stop()
    return {key: value for key, (_, value) in latest.items()}


def read_latest_sync(settings: Settings, topic: str, *, prefix: str = "", timeout: float = 15.0
                     ) -> dict[str, dict[str, Any]]:
    return asyncio.run(read_latest(settings, topic, prefix=prefix, timeout=timeout))


def model_prefix(model: str, segment: str | None = None) -> str:
    """Key prefix selecting one model (and one segment): keys are model/segment/version."""
    return f"{model}/{segment}/" if segment is not None else f"{model}/"


class Publisher:
    """One aiokafka producer for the monitoring topics (JSON values, ``model/segment[/version]`` keys).

    ``send`` waits for the broker's acknowledgement, so a snapshot that could not be delivered raises
    instead of vanishing; callers on a hot path batch their sends (``send_many``).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Any = None

    async def start(self) -> None:
        from scorer.kafka import new_producer

        self._producer = new_producer(self._settings, linger_ms=5)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: str, key: bytes, value: dict[str, Any]) -> None:
        await self.send_many([(topic, key, value)])

    async def send_many(self, messages: Iterable[tuple[str, bytes, dict[str, Any]]]) -> None:
        if self._producer is None:
            raise RuntimeError("Publisher.send before start()")
        futures = [await self._producer.send(topic, key=key, value=dumps(value)) for topic, key, value in messages]
        if futures:
            await asyncio.gather(*futures)
