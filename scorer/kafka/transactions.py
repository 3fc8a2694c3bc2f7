"""Kafka transactions for exactly-once scoring: one transactional producer per input partition.

A batch's outputs and its input offsets are committed in one transaction, so a read_committed reader sees
each input's outputs exactly once whatever happens to the worker. What makes that hold across workers is
fencing: a worker that lost a partition (paused, partitioned away, presumed dead) must not commit for it
any more. Kafka can fence by the consumer group's generation (KIP-447), but aiokafka (0.14) sends offsets
to a transaction with the group id only (TxnOffsetCommit v0), so the broker cannot tell an old member from
the current one. Fencing is therefore done the older way: the transactional id names the input partition
(:func:`transactional_id`). Whoever is assigned a partition starts a producer with that id; starting it
bumps the id's epoch and aborts (or waits for) the previous owner's open transaction, and every later
request of the previous owner fails with ``ProducerFenced``. Only after that does the new owner read the
partition's committed offset, which then includes everything the previous owner ever committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from scorer.config import Settings
from scorer.kafka.producer import new_producer

log = logging.getLogger(__name__)

FENCED = (ProducerFenced, InvalidProducerEpoch)
"""Errors meaning another producer now holds the transactional id (or the broker timed the transaction out)."""


def transactional_id(group_id: str, tp: TopicPartition) -> str:
    """The transactional id of one input partition of one consumer group: stable across restarts and workers."""
    return f"{group_id}.{tp.topic}.{tp.partition}"


def is_fenced(exc: BaseException | None) -> bool:
    """True when ``exc`` (or its cause) says that another producer took over the transactional id."""
    while exc is not None:
        if isinstance(exc, FENCED):
            return True
        exc = exc.__cause__
    return False


class PartitionTransaction:
    """The transactional producer of one input partition: begin, commit with offsets, abort, close.

    Not safe for concurrent use: the owner (the exactly-once reader) serialises begin/commit/abort with its
    own lock. A failure leaves the producer in a state where only :meth:`abort` (or :meth:`close`) makes sense.
    """

    def __init__(self, settings: Settings, group_id: str, tp: TopicPartition, *,
                 transaction_timeout_ms: int = 60_000, **producer_options: Any) -> None:
        self.tp = tp
        self.group_id = group_id
        self.id = transactional_id(group_id, tp)
        self.producer = new_producer(settings, transactional_id=self.id,
                                     transaction_timeout_ms=transaction_timeout_ms, **producer_options)
        self.open = False
        """A transaction is begun (outputs may be in it) and neither committed nor aborted yet."""
        self._started = False

    async def start(self, timeout: float = 30.0) -> None:
        """Connect and initialise the producer id: fences every earlier producer of this partition."""
        self._started = True  # even half started, close() must stop it
        try:
            await asyncio.wait_for(self.producer.start(), timeout)
        except TimeoutError:
            # aiokafka retries a missing transaction coordinator forever; say what usually causes it.
            raise TimeoutError(f"no transaction coordinator answered for {self.id} within {timeout:.0f} s (does "
                               "the cluster allow transactions? transaction.state.log.replication.factor and "
                               "min.isr must not exceed the live brokers)") from None

    async def begin(self) -> None:
        if not self.open:
            await self.producer.begin_transaction()
            self.open = True

    async def commit(self, offset: int | None) -> None:
        """Commit the open transaction, with the input offset to resume from when one is given."""
        if not self.open:
            return
        if offset is not None:
            await self.producer.send_offsets_to_transaction({self.tp: OffsetAndMetadata(offset, "")},
                                                            self.group_id)
        await self.producer.commit_transaction()
        self.open = False

    async def abort(self) -> bool:
        """Abort the open transaction; False when the producer cannot (fenced or failed: close it instead)."""
        if not self.open:
            return True
        try:
            await asyncio.wait_for(self.producer.abort_transaction(), 30)
        except Exception as exc:  # noqa: BLE001 - the caller replaces the producer
            log.info("aborting the transaction of %s failed: %s: %s", self.id, type(exc).__name__, exc)
            return False
        self.open = False
        return True

    async def close(self) -> None:
        """Stop the producer (an open transaction is aborted first when possible, else by the next owner)."""
        if self.open:
            await self.abort()
        if not self._started:
            return
        self._started = False
        try:
            await asyncio.wait_for(self.producer.stop(), 30)
        except Exception as exc:  # noqa: BLE001 - a fenced producer may fail its last flush; nothing to keep
            log.info("stopping the producer of %s: %s: %s", self.id, type(exc).__name__, exc)
