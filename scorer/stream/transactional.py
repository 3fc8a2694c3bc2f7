"""Exactly-once reading: each input partition's outputs and offsets committed in one Kafka transaction.

:class:`TransactionalConsumer` is the direct reader (:mod:`scorer.stream.direct`) with the offset commit
replaced by transactions (``WorkerConfig.guarantee = "exactly-once"``):

- every input partition the worker is assigned gets its own transactional producer
  (:class:`scorer.kafka.transactions.PartitionTransaction`; why one per partition is explained there).
  Starting it fences the partition's previous owner; only then is the committed offset read and the
  partition sought to it;
- a batch holds the records of one input partition and its outputs (predictions, dead letters, hook
  messages) go to that partition's open transaction (``Batch.sink``);
- every ``commit_interval`` (and before partitions are given up, and at shutdown) intake stops, the batches
  taken are settled, and each partition's transaction is committed together with the offset after its last
  delivered batch (``send_offsets_to_transaction``): outputs and offsets become visible together or not at all;
- a failed send or commit aborts the partition's transaction and seeks it back to its committed offset,
  so the batches are scored again and their outputs appear once. A fenced producer (another worker took
  the partition, or the broker timed the transaction out) is closed and the partition paused; the group
  rebalance that follows gives it to its new owner, and if it stays here after ``session_timeout`` a new
  producer is started (fencing whatever is left of the old one) and the partition sought again;
- nothing is written outside a transaction: drift snapshots go through the worker's own transactional
  producer (:class:`TransactionalSink`).

Readers of the output topics must use ``isolation_level="read_committed"``; a read_uncommitted reader also
sees the outputs of aborted transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

from scorer.kafka.transactions import PartitionTransaction, is_fenced
from scorer.stream.batch import Batch, input_seconds
from scorer.stream.direct import DirectConsumer
from scorer.stream.sink import KafkaSink

if TYPE_CHECKING:
    from scorer.config import Settings
    from scorer.stream.worker import ScoringWorker

log = logging.getLogger(__name__)

SWAP_COMMIT_GAP = 0.01
"""Seconds since the previous commit before a swap's first outputs are committed early (bounds a swap storm)."""


def producer_options(config: Any) -> dict[str, Any]:
    """Options of every transactional producer of a worker (the same batching as its plain producer)."""
    return {"linger_ms": config.producer_linger_ms, "max_batch_size": 1024 * 1024,
            "max_request_size": 4 * 1024 * 1024, "request_timeout_ms": 30_000,
            "transaction_timeout_ms": int(config.transaction_timeout * 1000)}


class TransactionalSink(KafkaSink):
    """A sink whose ``send_and_wait`` commits each call in a transaction of its own (drift snapshots, alerts)."""

    def __init__(self, producer: Any) -> None:
        super().__init__(producer)
        self._lock = asyncio.Lock()

    async def send_and_wait(self, topic: str, messages: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        async with self._lock:
            await self.producer.begin_transaction()
            try:
                await super().send_and_wait(topic, messages)
                await self.producer.commit_transaction()
            except BaseException:
                await self.producer.abort_transaction()
                raise


def monitor_transactional_id(settings: Settings, config: Any) -> str:
    """A worker's own transactional id (fresh per process: what it sends does not depend on its input)."""
    return f"{settings.app_id}.{config.input_topic}.monitor.{uuid.uuid4().hex[:12]}"


class TransactionalConsumer(DirectConsumer):
    """The direct reader committing through one Kafka transaction per input partition (exactly-once)."""

    commit_when_idle = True  # a light stream's outputs become visible at once, not after commit_interval
    collect_each_fetch = False  # each batch's outcome is settled into its partition's transaction at the commit

    def __init__(self, settings: Settings, worker: ScoringWorker, group_id: str) -> None:
        super().__init__(settings, worker, group_id)
        self._txns: dict[TopicPartition, PartitionTransaction] = {}
        self._sinks: dict[TopicPartition, KafkaSink] = {}
        self._partition_counts: dict[str, int] = {}
        """Shared by the partitions' sinks: one metadata lookup per output topic."""
        self._offsets: dict[TopicPartition, int] = {}
        """Offset after the last delivered batch, per partition, not committed yet."""
        self._broken: dict[TopicPartition, BaseException] = {}
        """Partitions whose transaction failed: aborted and sought back at the next commit."""
        self._fenced: dict[TopicPartition, float] = {}
        """Partitions whose producer was fenced: paused, with the time it happened."""
        self._seek_at: dict[TopicPartition, int] = {}
        self._failures: dict[TopicPartition, int] = {}
        """Transactions aborted in a row per partition (reset by a commit): the retry backs off."""
        self._held: dict[TopicPartition, float] = {}
        """Partitions paused after repeated failures, with when to seek them back and resume."""
        self._swap_commit = False
        """A batch scored by a newly swapped-in model is in a transaction: commit now, not at the interval."""

    # ------------------------------------------------------------------ intake

    async def _take(self, fetched: dict[TopicPartition, list[Any]], seen: int) -> None:
        """One batch per input partition, each sent into that partition's transaction."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        for tp, records in fetched.items():
            # Records fetched before the partition's last seek belong to a position given up: the seek re-reads.
            if not records or tp not in owned or self._seek_at.get(tp, 0) > seen or tp in self._broken:
                continue
            txn = self._txns.get(tp)
            if txn is None:
                continue  # fenced: paused, and sought again when its producer is replaced
            try:
                await txn.begin()
            except Exception as exc:  # noqa: BLE001 - aborted and retried from the last commit
                self._fail(tp, exc)
                continue
            batch = Batch(records, sent_at=input_seconds(records, 0.001), source={tp: records[-1].offset + 1},
                          sink=self._sinks[tp])
            self._inflight.append(batch)
            self._taken.update(batch.source)
            await self.worker.submit(batch)
            if self.worker.cache.swap_log.used_by(batch.resolved):
                self._swap_commit = True

    def _fail(self, tp: TopicPartition, exc: BaseException) -> None:
        if tp not in self._broken:
            log.warning("input partition %d: transaction failed (%s: %s); aborting it and scoring again from the "
                        "last commit", tp.partition, type(exc).__name__, exc)
            self._broken[tp] = exc

    def _due(self) -> bool:
        """At the commit interval; at once for a failed transaction, or for a new model's first outputs (a swap
        shows as soon as it scores, instead of up to a commit interval later; at most one extra commit per swap,
        and never within ``SWAP_COMMIT_GAP`` of the previous commit)."""
        if self._swap_commit and time.monotonic() - self._last_commit >= SWAP_COMMIT_GAP:
            return True
        return bool(self._broken) or super()._due()

    # ------------------------------------------------------------------ commits

    async def commit(self) -> None:
        """Commit every partition's transaction with its delivered offset (intake stopped meanwhile)."""
        self._last_commit = time.monotonic()
        if self.consumer is None:
            return
        async with self._taking:
            await self._commit_all(rewind=True)

    async def _commit_all(self, rewind: bool) -> None:
        self._last_commit = time.monotonic()
        self._swap_commit = False
        await self.worker.settle()
        # Oldest first: a partition's offset advances over its delivered batches up to its first failed one. A
        # batch still unconfirmed after the drain timeout (or left by a stop) may have part of its outputs in
        # its partition's transaction, so that transaction is thrown away rather than committed.
        while self._inflight:
            batch = self._inflight.popleft()
            ((tp, offset),) = batch.source.items()
            delivered = batch.delivered
            if delivered is None or not delivered.done():
                self._fail(tp, TimeoutError("a batch was still unconfirmed after the drain timeout"))
            elif delivered.cancelled() or delivered.exception() is not None:
                self._fail(tp, delivered.exception() if not delivered.cancelled() else RuntimeError("cancelled"))
            elif tp not in self._broken:
                self._offsets[tp] = offset
        metrics = self.worker.metrics.transactions
        ready = [(tp, txn) for tp, txn in self._txns.items() if txn.open and tp not in self._broken]
        offsets = [self._offsets.pop(tp, None) for tp, _ in ready]
        outcomes = await asyncio.gather(*(txn.commit(offset) for (_, txn), offset in zip(ready, offsets, strict=True)),
                                        return_exceptions=True)
        for (tp, _), offset, outcome in zip(ready, offsets, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self.worker.metrics.commit_failures.inc()
                self._fail(tp, outcome)
            else:
                metrics.labels("committed").inc()
                self._failures.pop(tp, None)
                if offset is not None:
                    self._committed[tp] = offset
        for tp in list(self._broken):
            await self._recover(tp, rewind)
        if rewind:
            await self._retry_fenced()
            due = [tp for tp, at in self._held.items() if time.monotonic() >= at]
            for tp in due:
                del self._held[tp]
            await self._seek_committed(due)

    async def _recover(self, tp: TopicPartition, rewind: bool) -> None:
        """Abort a broken transaction and seek back to the committed offset (fenced: close and pause)."""
        error = self._broken.pop(tp)
        self._offsets.pop(tp, None)
        txn = self._txns.get(tp)
        if txn is None:
            return
        if not is_fenced(error) and await txn.abort():
            self.worker.metrics.transactions.labels("aborted").inc()
            failures = self._failures[tp] = self._failures.get(tp, 0) + 1
            if not rewind:
                return
            if failures == 1:
                await self._seek_committed([tp])
            else:  # failing again: wait a little (up to 5 s) before the next try
                assert self.consumer is not None
                self.consumer.pause(tp)
                self._seeks += 1  # what was fetched before is stale: the seek at resume reads it again
                self._seek_at[tp] = self._seeks
                self._held[tp] = time.monotonic() + min(5.0, 0.1 * 2 ** failures)
            return
        self.worker.metrics.transactions.labels("fenced" if is_fenced(error) else "aborted").inc()
        await self._drop(tp)
        if not rewind:
            return
        if is_fenced(error):
            log.warning("input partition %d: fenced (another worker took it, or the broker timed the transaction "
                        "out); its uncommitted outputs are discarded", tp.partition)
            self._fenced[tp] = time.monotonic()
            assert self.consumer is not None
            self.consumer.pause(tp)
        else:
            await self._open([tp])  # a failed producer: replace it at once

    async def _retry_fenced(self) -> None:
        """Partitions fenced long enough ago that the group would have moved them: still ours, so take them back."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        grace = self.config.session_timeout
        due = [tp for tp, at in self._fenced.items() if tp in owned and time.monotonic() - at >= grace]
        for tp in [tp for tp in self._fenced if tp not in owned]:
            del self._fenced[tp]
        if due:
            await self._open(due)

    # ------------------------------------------------------------------ partitions

    async def _open(self, tps: list[TopicPartition]) -> None:
        """Start a producer per partition (fencing the previous owner), then seek each to its committed offset."""
        options = producer_options(self.config)
        started = {tp: PartitionTransaction(self.settings, self.group_id, tp, **options) for tp in tps}
        outcomes = await asyncio.gather(*(txn.start() for txn in started.values()), return_exceptions=True)
        ready = []
        for (tp, txn), outcome in zip(started.items(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("input partition %d: cannot start its transactional producer (%s: %s); retried",
                            tp.partition, type(outcome).__name__, outcome)
                await txn.close()
                self._fenced[tp] = time.monotonic() - self.config.session_timeout + 2.0  # retry in ~2 s
                assert self.consumer is not None
                self.consumer.pause(tp)
                continue
            self._fenced.pop(tp, None)
            self._txns[tp] = txn
            sink = self._sinks[tp] = KafkaSink(txn.producer)
            sink._partitions = self._partition_counts
            ready.append(tp)
        await self._seek_committed(ready)

    async def _seek_committed(self, tps: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        tps = [tp for tp in tps if tp in consumer.assignment()]
        if not tps:
            return
        committed = dict(zip(tps, await asyncio.gather(*(consumer.committed(tp) for tp in tps)), strict=True))
        fresh = [tp for tp, offset in committed.items() if offset is None]
        if fresh:  # never committed: from the beginning (auto_offset_reset="earliest")
            committed.update(await consumer.beginning_offsets(fresh))
        # No await from here on: a fetch returned before these seeks is recognised by ``seen`` and dropped.
        self._seeks += 1
        for tp, offset in committed.items():
            consumer.seek(tp, offset)
            self._seek_at[tp] = self._seeks
            self._committed[tp] = self._taken[tp] = offset
        consumer.resume(*tps)
        log.info("input partitions %s at their committed offsets", sorted(tp.partition for tp in tps))

    async def _drop(self, tp: TopicPartition) -> None:
        txn = self._txns.pop(tp, None)
        self._sinks.pop(tp, None)
        self._offsets.pop(tp, None)
        if txn is not None:
            await txn.close()

    async def _final_commit(self) -> None:
        """Before leaving the group: commit every open transaction and close the producers."""
        async with self._taking:
            await self._commit_all(rewind=False)
            for tp in list(self._txns):
                await self._drop(tp)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before giving partitions up: settle and commit (or abort) their transactions, close their producers."""
        async with self._taking:
            await self._commit_all(rewind=False)
            for tp in revoked:
                await self._drop(tp)
                for state in (self._fenced, self._held, self._failures, self._committed, self._taken):
                    state.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("input partitions assigned: %s", sorted(tp.partition for tp in assigned))
        async with self._taking:
            await self._open(sorted(tp for tp in assigned if tp not in self._txns))
