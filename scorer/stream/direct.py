"""The input topic read by one aiokafka consumer in the worker's group: whole fetches, offsets committed after delivery.

faust hands every message to an agent through its conductor, a channel queue, a stream and an Event, then
tracks each ack for its commit logic: about 80 us of Python per message, which caps a faust agent near
12,000 events per CPU-second before any work is done (benchmarks/bench_worker.py). The worker scores whole
batches and only needs, per partition, the offset up to which every output is on the broker. So this reader
takes ``getmany`` batches straight from aiokafka (about 5 us per message in all) and commits those offsets
itself. A batch is what has arrived when the worker asks, up to ``batch_size`` (waiting at most
``batch_window_ms`` for a first event): under load batches grow by themselves, and a light stream never
waits for a batch to fill; the faust app around it still runs the web pages, the watcher tasks, signals and shutdown
(``WorkerConfig.consumer = "direct"``, the default; ``"faust"`` keeps the ``noack_take`` agent).

Delivery rules, the same as the agent's: a batch's offsets are marked only after every output of the batch has
been acknowledged by Kafka (batches are confirmed strictly in order, so a mark is always a prefix), and only
marked offsets are committed: every ``commit_interval``, before partitions are given up in a rebalance, and at
shutdown. A crash re-scores at most what was delivered since the last commit (duplicates, never loss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from scorer.kafka import aiokafka_options
from scorer.stream.batch import Batch, input_seconds

if TYPE_CHECKING:
    from scorer.config import Settings
    from scorer.stream.worker import ScoringWorker

log = logging.getLogger(__name__)


class DirectConsumer(ConsumerRebalanceListener):
    """Feeds a :class:`ScoringWorker` from ``getmany`` batches of its input topic and commits what it delivered."""

    commit_when_idle = False
    """Also commit as soon as a fetch comes back empty with batches taken since the last commit (not waiting for
    ``commit_interval``): for readers whose outputs are invisible until a commit (exactly-once)."""

    collect_each_fetch = True
    """Move delivered batches' offsets out of ``_inflight`` after every fetch rather than at each commit, so a
    batch is freed soon after its outputs are confirmed, not a commit interval later with all the others (at
    10,000 events/s a second of batches is some 250,000 objects: freeing them at once stalls intake, and keeping
    them alive lengthens every cyclic GC pass; with ``--commit-interval 10`` the p99 latency was 88-114 ms
    before, 14-18 ms after). The exactly-once reader settles its batches into their transactions at commits."""

    def __init__(self, settings: Settings, worker: ScoringWorker, group_id: str) -> None:
        self.settings = settings
        self.worker = worker
        self.config = worker.config
        self.group_id = group_id
        self.consumer: AIOKafkaConsumer | None = None
        self._inflight: deque[Batch] = deque()
        """Batches handed to the worker, oldest first, until their outputs are confirmed."""
        self._delivered: dict[TopicPartition, int] = {}
        """Next offset to commit per partition: everything before it has its outputs on the broker."""
        self._committed: dict[TopicPartition, int] = {}
        self._taken: dict[TopicPartition, int] = {}
        """Next offset to take per partition (for the lag gauge)."""
        self._last_commit = time.monotonic()
        self._task: asyncio.Task | None = None
        self._taking = asyncio.Lock()
        """Held from the moment a fetch returns until its batch is queued; a rebalance takes it to stop intake."""
        self._seeks = 0
        """Seeks made so far (the exactly-once reader seeks after a rewind; fetches older than a seek are stale)."""

    def assignment(self) -> list[int]:
        if self.consumer is None:
            return []
        return sorted(tp.partition for tp in self.consumer.assignment())

    async def lag(self) -> dict[int, int]:
        """Messages not yet taken per assigned partition: the last stable offset (the high watermark before
        the first fetch answers) minus the next offset to take; partitions not fetched yet are left out."""
        consumer = self.consumer
        if consumer is None:
            return {}
        out = {}
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:
                continue
            position = self._taken.get(tp)
            if position is None:
                try:
                    position = await consumer.position(tp)
                except Exception:  # noqa: BLE001, S112 - partition given up meanwhile: no lag to report for it
                    continue
            out[tp.partition] = max(0, end - position)
        return out

    async def run(self) -> None:
        """Read, score and commit until cancelled; on cancellation finish the batch in hand and commit it."""
        worker, cfg = self.worker, self.config
        self._task = asyncio.current_task()
        await worker.ready.wait()
        self.consumer = AIOKafkaConsumer(
            **aiokafka_options(self.settings), group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            session_timeout_ms=int(cfg.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, cfg.session_timeout / 3) * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024,
        )
        self.consumer.subscribe([cfg.input_topic], listener=self)
        await self.consumer.start()
        confirmer = worker.start_pipeline()
        window_ms = max(1, int(cfg.batch_window_ms))
        try:
            while True:
                fetched = await self.consumer.getmany(timeout_ms=window_ms, max_records=cfg.batch_size)
                seen = self._seeks
                if fetched:
                    async with self._taking:
                        await self._take(fetched, seen)
                if self.collect_each_fetch:
                    self._collect()
                if self._due() or (not fetched and self._inflight and self.commit_when_idle):
                    await self.commit()
        except asyncio.CancelledError:
            worker.draining = True
            await worker.settle()
            raise
        finally:
            if confirmer is not None:
                confirmer.cancel()
            await self.close()

    async def _take(self, fetched: dict[TopicPartition, list[Any]], seen: int) -> None:
        """Queue one batch of what was fetched (``seen``: the seek count when the fetch returned)."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        # A fetch that returned while partitions were being given up: those records go to their next owner.
        batches = {tp: records for tp, records in fetched.items() if tp in owned and records}
        if not batches:
            return
        records = [record for part in batches.values() for record in part]
        batch = Batch(records, sent_at=input_seconds(records, 0.001),
                      source={tp: part[-1].offset + 1 for tp, part in batches.items()})
        self._inflight.append(batch)
        self._taken.update(batch.source)
        await self.worker.submit(batch)

    def _collect(self) -> None:
        """Mark the offsets of the batches whose outputs are confirmed, oldest first, stopping at the first not."""
        inflight = self._inflight
        while inflight:
            delivered = inflight[0].delivered
            if delivered is None or not delivered.done() or delivered.cancelled() or delivered.exception():
                return
            self._delivered.update(inflight.popleft().source)

    def _due(self) -> bool:
        return time.monotonic() - self._last_commit >= self.config.commit_interval

    async def commit(self) -> None:
        """Commit every delivered offset not committed yet (a failure is logged: those events may be re-scored)."""
        self._last_commit = time.monotonic()
        self._collect()
        if self.consumer is None:
            return
        owned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in self._delivered.items()
                   if tp in owned and self._committed.get(tp) != offset}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - at-least-once: uncommitted events are delivered again
            self.worker.metrics.commit_failures.inc()
            log.warning("committing input offsets failed (those events may be scored again): %s: %s",
                        type(exc).__name__, exc)
            return
        self._committed.update(offsets)

    async def stop(self) -> None:
        """Stop taking batches and wait until the ones taken are delivered and committed (SIGTERM)."""
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])

    async def close(self) -> None:
        """Commit what was delivered and leave the group (its partitions go to the other workers at once)."""
        if self.consumer is None:
            return
        await self._final_commit()
        consumer, self.consumer = self.consumer, None
        try:
            await consumer.stop()
        except Exception:
            log.exception("stopping the input consumer failed")

    async def _final_commit(self) -> None:
        """What ``close`` commits before leaving the group: every delivered offset."""
        await self.commit()

    # ------------------------------------------------------------------ ConsumerRebalanceListener

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before giving partitions up: let every batch taken so far be delivered, then commit it."""
        async with self._taking:
            await self.worker.settle()
            await self.commit()
        for tp in revoked:
            self._taken.pop(tp, None)
            self._delivered.pop(tp, None)
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("input partitions assigned: %s", sorted(tp.partition for tp in assigned))
