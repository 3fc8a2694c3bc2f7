"""The faust agent reader (``scorer worker --consumer faust``): faust's stock consumer feeds ``noack_take`` batches.

Each batch's events are acked only once the batch's outputs are confirmed, oldest batch first, so faust
commits only offsets whose outputs are on the broker (faust commits acked, contiguous offsets). Slower than the
direct reader (faust's per-message path), kept as the agent-shaped alternative.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from scorer.stream.batch import Batch, input_seconds

if TYPE_CHECKING:
    import faust

    from scorer.stream.worker import ScoringWorker


class AgentReader:
    """Feeds a :class:`ScoringWorker` from a faust agent's stream and acks what it delivered."""

    def __init__(self, app: faust.App, worker: ScoringWorker) -> None:
        self.app = app
        self.worker = worker
        self._taken: asyncio.Queue[Batch] = asyncio.Queue()
        """Batches handed to the worker, oldest first, until their events are acked."""

    def assignment(self) -> list[int]:
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - not assigned yet, or the consumer is restarting
            return []
        return sorted(tp.partition for tp in assigned if tp.topic == self.worker.config.input_topic)

    async def lag(self) -> dict[int, int]:
        """Per assigned input partition, the high watermark minus the consumer's position (faust's view)."""
        try:
            consumer = self.app.consumer
            assigned = [tp for tp in consumer.assignment() if tp.topic == self.worker.config.input_topic]
            out = {}
            for tp in assigned:
                end = consumer.highwater(tp)
                position = await consumer.position(tp)
                if end is not None and position is not None:
                    out[tp.partition] = max(0, end - position)
            return out
        except Exception:  # noqa: BLE001 - not assigned yet, or the consumer is restarting
            return {}

    async def run(self, stream: Any) -> None:
        """The agent body: noack_take batches, each handled to the end even when the worker is stopping."""
        worker = self.worker
        await worker.ready.wait()
        window = worker.config.batch_window_ms / 1000.0
        confirmer = worker.start_pipeline()
        acker = asyncio.ensure_future(self._ack_loop(stream))
        try:
            async for events in stream.noack_take(worker.config.batch_size, within=window):
                records = [event.message for event in events]
                batch = Batch(records, sent_at=input_seconds(records, 1.0), source=events)
                self._taken.put_nowait(batch)
                await worker.submit(batch)
        finally:
            acker.cancel()
            if confirmer is not None:
                confirmer.cancel()

    async def stop(self) -> None:
        """Before shutdown: let every batch taken be delivered, and its events acked (bounded by drain_timeout)."""
        await self.worker.settle()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._taken.join(), self.worker.config.drain_timeout)

    async def _ack_loop(self, stream: Any) -> None:
        while True:
            batch = await self._taken.get()
            assert batch.delivered is not None
            try:
                await asyncio.shield(batch.delivered)
            except Exception:  # noqa: BLE001 - never ack past a batch that was not delivered: it is read again
                return
            for event in batch.source:
                await stream.ack(event)
            self._taken.task_done()
