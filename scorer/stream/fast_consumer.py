"""A faust consumer whose fetch loop hands a message to the streams without four asyncio tasks per message.

faust's ``Consumer._drain_messages`` delivers every fetched message with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: four tasks and an ``asyncio.wait``
per message, so that a delivery blocked on a full stream buffer is abandoned when a rebalance suspends
the flow. Profiling the worker showed this to be about half of its CPU per event (benchmarks/
bench_worker.py: ~170 -> ~80 us per event for a no-op forwarder on the dev box).

Delivery can only block when flow control is suspended, the conductor's callback lock is held (a
resubscription), faust's own producer buffer is over its limit, or a stream buffer of the partition is
full. :class:`FastConsumer` checks exactly those conditions and, when none holds, awaits the callback
directly: it then completes without ever suspending, so the rebalance guard has nothing to guard.
Otherwise it takes faust's original path. The loop is otherwise faust 0.15's, line for line; with
another faust version the stock consumer is used (``fast_consumer_supported``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

log = logging.getLogger(__name__)

TESTED_FAUST = "0.15."
"""The faust-streaming minor version whose ``_drain_messages`` this consumer reproduces."""


def fast_consumer_supported() -> bool:
    return faust.__version__.startswith(TESTED_FAUST)


class FastConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with a direct delivery path when delivery cannot block."""

    def _can_deliver_now(self) -> Any:
        """A predicate on a TP: True when handing one of its messages to the streams cannot suspend."""
        app = self.app
        conductor = app.topics
        lock = conductor._tp_to_callback_lock  # noqa: SLF001 - see the module docstring
        tp_index = conductor._tp_index  # noqa: SLF001
        flow_active = app.flow_control.is_active
        suspended = self.suspend_flow.is_set
        buffer = app.producer.buffer
        max_messages = buffer.max_messages
        if app.conf.producer_threaded:
            def producer_busy() -> bool:
                return buffer.size > max_messages
        else:  # ProducerBuffer.size reads a setting on every call; its unthreaded value is the pending queue's size
            pending_size = buffer.pending.qsize

            def producer_busy() -> bool:
                return pending_size() > max_messages

        def can(tp: Any) -> bool:
            if suspended() or not flow_active() or lock.locked() or producer_busy():
                return False
            channels = tp_index.get(tp)
            if not channels:
                return False
            for channel in channels:
                if channel.queue.full():
                    return False
            return True

        return can

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
        # faust 0.15 Consumer._drain_messages, with the delivery line changed (see the module docstring).
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        can_deliver_now = self._can_deliver_now()

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(Any, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if can_deliver_now(tp):
                                await callback(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class FastTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`FastConsumer`."""

    Consumer = FastConsumer


class ScorerApp(faust.App):
    """A faust App using :class:`FastTransport` (when this faust version is the one it reproduces)."""

    fast_consumer = True

    def _new_transport(self) -> Any:
        if self.fast_consumer and fast_consumer_supported():
            return FastTransport(self.conf.broker_consumer, self)
        if self.fast_consumer:
            log.info("faust %s is not %sx: using its stock consumer", faust.__version__, TESTED_FAUST)
        return super()._new_transport()
