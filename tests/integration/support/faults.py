"""Helpers for fault tests: throw-away servers, a producer that keeps its rate through outages, accounting.

The shared dev stack (127.0.0.1:9042 / :9092) is never stopped: a test that kills a server starts its own
node with ``devstack.stack`` on another address or port, with its state under the test's tmp dir.
:class:`SteadyProducer` sends at a fixed rate in a thread and re-sends what the broker did not acknowledge
(an outage delays events, never drops them). :func:`account` compares the ids really on the input topic
with the outputs: lost events, duplicates, and when outputs stopped and resumed around a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scorer.config import load_settings
from scorer.kafka import ensure_topics
from support.net import free_port  # noqa: F401 - part of this module's helpers

ROOT = Path(__file__).resolve().parents[3]
REPORT = ROOT / "reports" / "faults.json"


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    await ensure_topics(load_settings().model_copy(update={"kafka": f"kafka://{bootstrap}"}), topics)


async def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:  # no group: every partition, soon
            await asyncio.sleep(0.1)
        partitions = sorted(consumer.assignment())
        assert partitions, f"topic {topic!r} has no partitions"
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[tuple[bytes | None, bytes | None]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) on ``topic`` now, from the beginning (the ground truth of what was sent)."""
    return asyncio.run(_read_topic(bootstrap, topic))


class SteadyProducer:
    """Sends ``make(i)`` for i = 0, 1, ... at ``rate`` per second in a thread until :meth:`stop` (or ``limit``).

    The schedule never waits for acknowledgements: during a broker outage messages queue in the client and
    the ones that time out are sent again, so every event reaches the topic. A re-send of a message that the
    broker did store after all shows up as an input duplicate (counted by :func:`account`).
    """

    def __init__(self, bootstrap: str, topic: str, make: Callable[[int], tuple[bytes, bytes]], rate: float,
                 limit: int | None = None, request_timeout_ms: int = 10_000) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.make = make
        self.rate = rate
        self.limit = limit
        self.request_timeout_ms = request_timeout_ms
        self.scheduled = 0
        self.acked: set[int] = set()
        self.resends = 0
        self.first_sent: dict[int, float] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="steady-producer")

    def start(self) -> SteadyProducer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 120.0) -> None:
        """Stop scheduling new events, then wait until every scheduled one is acknowledged."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"producer still has {self.scheduled - len(self.acked)} unacknowledged events "
                                 f"after {timeout} s")
        if self.error is not None:
            raise AssertionError(f"producer failed: {self.error!r}")

    def sent_before(self, moment: float) -> set[int]:
        return {i for i, at in self.first_sent.items() if at < moment}

    def _run(self) -> None:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # outages are expected here
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                    request_timeout_ms=self.request_timeout_ms, retry_backoff_ms=200)
        await producer.start()
        pending: dict[asyncio.Future, int] = {}
        retry: list[int] = []

        async def send(i: int) -> None:
            key, value = self.make(i)
            try:
                pending[await producer.send(self.topic, value, key=key)] = i
            except Exception:  # noqa: BLE001 - the client's queue is full or has no metadata: later
                retry.append(i)

        def settle() -> None:
            for fut in [f for f in pending if f.done()]:
                i = pending.pop(fut)
                if fut.cancelled() or fut.exception() is not None:
                    retry.append(i)
                else:
                    self.acked.add(i)

        try:
            started = time.monotonic()
            while not self._stop.is_set() and (self.limit is None or self.scheduled < self.limit):
                due = int((time.monotonic() - started) * self.rate)
                if self.limit is not None:
                    due = min(due, self.limit)
                while self.scheduled < due:
                    i = self.scheduled
                    self.scheduled += 1
                    self.first_sent[i] = time.time()
                    await send(i)
                settle()
                again, retry[:] = list(retry), []
                self.resends += len(again)
                for i in again:
                    await send(i)
                await asyncio.sleep(0.02)
            while pending or retry:  # drain: everything scheduled must be acknowledged
                settle()
                again, retry[:] = list(retry), []
                self.resends += len(again)
                for i in again:
                    await send(i)
                await asyncio.sleep(0.05)
        finally:
            await producer.stop()


@dataclass
class Accounting:
    """What happened to every input event, and the output timeline around a fault."""

    inputs: int
    """Distinct event ids on the input topic."""
    input_duplicates: int
    """Extra copies on the input topic (a producer re-send of a message the broker had stored after all)."""
    outputs: int
    lost: list[str]
    duplicates: int
    """Outputs beyond one per id (re-scored after a crash or rebalance, or an input duplicate)."""
    dead_letters: int
    max_gap_s: float
    """Longest wait between two consecutive outputs arriving (the output stream's worst pause)."""
    extra: dict[str, Any] = field(default_factory=dict)


def account(input_ids: Iterable[str], outputs: list[Any], window: tuple[float, float] | None = None) -> Accounting:
    """Compare the ids on the input topic with outputs (support.stream.Out records of predictions and dead letters).

    ``window`` (start, end): only gaps between outputs received inside it count for ``max_gap_s``.
    """
    inputs = Counter(input_ids)
    ids = Counter(o.value["id"] if "id" in o.value else _dead_letter_id(o.value) for o in outputs)
    lost = sorted(set(inputs) - set(ids))
    received = sorted(o.received for o in outputs)
    if window is not None:
        received = [t for t in received if window[0] <= t <= window[1]]
        received = [window[0], *received, window[1]]
    gaps = [b - a for a, b in zip(received, received[1:], strict=False)]
    return Accounting(
        inputs=len(inputs), input_duplicates=sum(inputs.values()) - len(inputs), outputs=len(outputs), lost=lost,
        duplicates=sum(ids.values()) - len(ids), dead_letters=sum(1 for o in outputs if "error" in o.value),
        max_gap_s=round(max(gaps, default=0.0), 3),
    )


def _dead_letter_id(letter: dict[str, Any]) -> str:
    try:
        return str(json.loads(letter["raw"])["id"])
    except Exception:  # noqa: BLE001 - not an event: identify it by its input position
        return f"{letter['topic']}:{letter['partition']}:{letter['offset']}"


def first_after(outputs: list[Any], moment: float, accept: Callable[[Any], bool] = lambda o: True) -> float | None:
    """Seconds from ``moment`` to the first accepted output received after it (None: there is none)."""
    times = [o.received for o in outputs if o.received > moment and accept(o)]
    return round(min(times) - moment, 3) if times else None


def record_fault(name: str, row: dict[str, Any]) -> None:
    """Merge one fault's row into reports/faults.json (read by the closing note) and print it."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    table: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        table = json.loads(REPORT.read_text())
    table[name] = {**row, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    REPORT.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    print(f"\nfault {name}: " + ", ".join(f"{k}={v}" for k, v in row.items()))


def accounting_row(acc: Accounting, **extra: Any) -> dict[str, Any]:
    row = asdict(acc)
    row["lost"] = len(acc.lost)
    row.update(row.pop("extra"))
    row.update(extra)
    return row
