"""``scorer send``: rows of a CSV or Parquet file become events on a real Kafka topic, keyed by id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer
from support.stream import run_cli

from scorer.config import Settings


async def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out: list[tuple[bytes, dict]] = []
    try:
        for _ in range(50):
            got = await consumer.getmany(timeout_ms=300)
            out += [(r.key, orjson.loads(r.value)) for records in got.values() for r in records]
            if len(out) >= expected:
                break
    finally:
        await consumer.stop()
    return out


def test_send_csv_with_generated_ids_nulls_and_a_limit(settings: Settings, bootstrap: str,
                                                       new_topic: Callable[..., str], tmp_path: Path) -> None:
    data = tmp_path / "flights.csv"
    data.write_text("airport,dep_delay,distance,hour,note\nORD,12.5,733,5,a\n007,,1200,23,b\nJFK,3,,7,c\nSFO,1,2,3,d\n")
    topic = new_topic("send", 2)
    done = run_cli(settings, "send", "--data", str(data), "--model", "delay", "--segment-col", "airport",
                   "--topic", topic, "--limit", "3")
    assert done.returncode == 0, done.stderr
    assert "sent 3 events for model delay (3 segments)" in done.stdout
    events = {key: value for key, value in asyncio.run(read_all(bootstrap, topic, 3))}
    assert set(events) == {b"e-0", b"e-1", b"e-2"}
    assert events[b"e-0"] == {"id": "e-0", "model": "delay", "segment": "ORD",
                              "features": {"dep_delay": 12.5, "distance": 733.0, "hour": 5.0}}
    assert events[b"e-1"]["segment"] == "007"  # segment text kept as written
    assert events[b"e-1"]["features"]["dep_delay"] is None  # an empty cell is sent as null
    assert events[b"e-2"]["features"]["distance"] is None


def test_send_parquet_with_id_column_and_chosen_features(settings: Settings, bootstrap: str,
                                                         new_topic: Callable[..., str], tmp_path: Path) -> None:
    data = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"sid": ["x1", "x2"], "seg": ["A", "B"], "f0": [1.0, float("nan")], "f1": [2, 3],
                             "f2": [9.0, 9.0]}), data)
    topic = new_topic("send", 1)
    done = run_cli(settings, "send", "--data", str(data), "--model", "m", "--segment-col", "seg", "--id-col", "sid",
                   "--features", "f1,f0", "--topic", topic, "--rate", "100")
    assert done.returncode == 0, done.stderr
    events = dict(asyncio.run(read_all(bootstrap, topic, 2)))
    assert events[b"x1"] == {"id": "x1", "model": "m", "segment": "A", "features": {"f1": 2.0, "f0": 1.0}}
    assert events[b"x2"]["features"] == {"f1": 3.0, "f0": None}

    missing = run_cli(settings, "send", "--data", str(data), "--model", "m", "--segment-col", "nope",
                      "--topic", topic)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: column 'nope' not in rows.parquet")
