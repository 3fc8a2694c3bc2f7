"""The scoring worker's runtime: configuration, startup, the batch loop, watchers and delivery rules.

At-least-once: a batch's outputs (predictions, dead letters, hook messages) are sent and every delivery
future is awaited before its input is confirmed, batches strictly in order: the direct reader
(:mod:`scorer.stream.direct`, the default) then marks its offsets for the next commit; a faust agent
(``consumer="faust"``) acks its events, and faust commits only acknowledged, contiguous offsets. A batch is
never skipped: store outages and failing models are retried in place with
backoff (a model still failing after ``predict_attempts`` dead-letters its events, with the error), and
a send that keeps failing ends the process (``fatal``) so that it restarts from the last commit instead of
leaving an unacknowledged gap that faust's commit logic could step over. Exactly-once: a batch's outputs go into
its reader's transaction (``Batch.sink``) and a failed send fails the batch; the reader aborts and rewinds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from scorer.backoff import backoff
from scorer.config import Settings
from scorer.kafka.notices import Notice, follow_notices
from scorer.stream.batch import Batch
from scorer.stream.cache import ModelCache, is_transient
from scorer.stream.config import WorkerConfig
from scorer.stream.metrics import WorkerMetrics
from scorer.stream.scoring import BatchHook, BatchScorer
from scorer.stream.sink import KafkaSink
from scorer.stream.swaps import prompt_handoffs

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 50_000
"""Net allocations of tracked objects between young-generation collections (Python's default: 700)."""


def _failed(exc: BaseException) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _exit_process(exc: BaseException) -> None:
    logging.getLogger(__name__).critical("giving up: %s; exiting so that the worker restarts from the last commit",
                                         exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(70)


class ScoringWorker:
    """Everything one worker process owns besides faust itself: store, cache, scorer, output producer."""

    def __init__(self, settings: Settings, config: WorkerConfig, *,
                 store_factory: Callable[[], Any] | None = None,
                 metrics: WorkerMetrics | None = None,
                 hooks: Sequence[BatchHook] = (),
                 fatal: Callable[[BaseException], None] = _exit_process) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.limits = config.limits()
        self.store_factory = store_factory or self._default_store
        self.store: Any = None
        self.cache = ModelCache(None, models=config.models or None, max_models=config.max_models,
                                fallback_segment=config.fallback_segment, poll_interval=config.poll_interval,
                                metrics=self.metrics)
        self.scorer = BatchScorer(self.cache, self.limits, self.metrics, hooks)
        self.fatal = fatal
        self.ready = asyncio.Event()
        self.draining = False
        self.sink: KafkaSink | None = None
        self._producer: Any = None
        self._copartitioned = False
        self._stopped = asyncio.Event()
        self._notices_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._current: asyncio.Future | None = None
        self._pending: asyncio.Queue[tuple[Batch, list[Awaitable[Any]] | None]] | None = None
        self.batches = 0
        self.events_in = 0
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle

    def _default_store(self) -> Any:
        from scorer.store import CassandraModelStore

        return CassandraModelStore(self.settings)

    async def start(self) -> None:
        """Connect to the store (retrying while it is down), preload models, open the output producer."""
        from scorer.kafka import new_producer

        attempt = 0
        while self.store is None:
            attempt += 1
            try:
                self.store = await asyncio.to_thread(self.store_factory)
            except Exception as exc:  # noqa: BLE001 - retried; nothing can be scored before this
                self.metrics.store_errors.labels("connect").inc()
                self.metrics.store_up.set(0)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("cannot connect to the model store (attempt %d, retrying): %s", attempt, exc)
                await asyncio.sleep(backoff(attempt, 0.5, 10.0))
        self.cache.store = self.store
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.cache.start()
                break
            except Exception as exc:  # retried
                if not is_transient(exc):
                    raise
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("cannot preload models (attempt %d, retrying): %s", attempt, exc)
                await asyncio.sleep(backoff(attempt, 0.5, 10.0))
        if self.config.exactly_once:  # nothing is written outside a transaction, drift snapshots included
            from scorer.stream.transactional import TransactionalSink, monitor_transactional_id, producer_options

            self._producer = new_producer(self.settings, transactional_id=monitor_transactional_id(
                self.settings, self.config), **producer_options(self.config))
            await self._producer.start()
            self.sink = TransactionalSink(self._producer)
        else:
            self._producer = new_producer(
                self.settings, linger_ms=self.config.producer_linger_ms,
                max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024, request_timeout_ms=30_000,
            )
            await self._producer.start()
            self.sink = KafkaSink(self._producer)
        n_in = await self.sink.partitions(self.config.input_topic)
        n_out = await self.sink.partitions(self.config.output_topic)
        await self.sink.partitions(self.config.dlq_topic)
        self._copartitioned = n_in == n_out
        # The start-up heap (faust, numpy, sklearn, the driver, preloaded models) is hundreds of thousands of
        # long-lived objects; out of the collector's generations, full collections no longer walk them on
        # every pass, which was a source of 100+ ms pauses in the batch loop.
        gc.collect()
        gc.freeze()
        # Batches make and free tens of thousands of tracked objects a second (dicts of features, records,
        # tuples); at Python's default threshold of 700 net allocations the young generation was collected about
        # 36 times per 10,000 events (3-5% of the worker's CPU), while refcounting frees almost all of it anyway.
        # Cyclic garbage now waits for at most 50,000 net allocations (a few MB).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        prompt_handoffs()
        self.ready.set()
        log.info("worker ready: %s -> %s (dead letters: %s), %d model version(s) loaded",
                 self.config.input_topic, self.config.output_topic, self.config.dlq_topic, self.cache.n_versions())

    async def stop(self) -> None:
        """Finish the batch in hand (bounded by drain_timeout), then close the producer and the store."""
        self._stopped.set()
        current = self._current
        if (current is not None and not current.done()) or (self._pending is not None and self._pending.qsize()):
            self.draining = True
            await self._drain(current)
        await self.cache.wait_swaps()
        if self._producer is not None:
            try:
                await self._producer.stop()
            except Exception:
                log.exception("stopping the output producer failed")
            self._producer = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    # ------------------------------------------------------------------ watchers

    async def poll_loop(self) -> None:
        """Re-read served models' pointers every poll interval (backed off while the store is down)."""
        await self.ready.wait()
        at = time.monotonic()
        while not self._stopped.is_set():
            try:  # at a fixed rate (from the previous poll's start): a change waits at most one interval
                await asyncio.wait_for(self._wake.wait(), max(0, at + self.cache.next_poll_delay() - time.monotonic()))
            except TimeoutError:
                pass
            self._wake.clear()
            at = time.monotonic()
            try:
                await self.cache.refresh_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # a poll must never crash the worker
                log.exception("model poll failed")

    async def notices_loop(self) -> None:
        """Follow ``model-changes`` (no consumer group) and refresh a model as soon as a notice names it."""
        if not self.config.follow_changes:
            return
        await self.ready.wait()

        async def on_notice(notice: Notice) -> None:
            self.metrics.notices.inc()
            if notice.model in self.cache._served:
                await self.cache.refresh(notice.model, "notice", notice.sent_at(), notice.names())

        await follow_notices(self.settings, self.settings.changes_topic, on_notice, stopped=self._stopped,
                             ready=self._notices_ready)

    # ------------------------------------------------------------------ the batch loop

    def start_pipeline(self) -> asyncio.Future | None:
        """With ``pipeline_depth`` > 0: the queue of sent batches and the task confirming them in order."""
        if self.config.pipeline_depth <= 0:
            return None
        self._pending = asyncio.Queue(self.config.pipeline_depth)
        return asyncio.ensure_future(self._confirm_loop())

    async def submit(self, batch: Batch) -> None:
        """Take one batch: score it and queue its outputs (or, without a pipeline, deliver them).

        ``batch.delivered`` resolves once every output is on the broker, batches strictly in order; the reader
        confirms its input then. When cancelled (SIGTERM, rebalance) the batch in hand is finished first.
        """
        batch.delivered = asyncio.get_running_loop().create_future()
        task = self._current = asyncio.ensure_future(self.handle(batch))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.draining = True
            await self._drain(task)
            raise

    async def settle(self) -> None:
        """Wait (bounded by drain_timeout) until every batch taken so far is delivered and confirmed."""
        current = self._current
        await self._drain(current if current is not None and not current.done() else None)

    async def _drain(self, task: asyncio.Future | None) -> None:
        """Wait (bounded by drain_timeout) for the batch in hand and every batch awaiting confirmation."""
        async def finish() -> None:
            if task is not None:
                await asyncio.shield(task)
            if self._pending is not None:
                await self._pending.join()

        try:
            await asyncio.wait_for(finish(), self.config.drain_timeout)
        except BaseException:  # noqa: BLE001, S110 - unconfirmed events are redelivered: nothing is lost
            pass

    async def handle(self, batch: Batch) -> None:
        """Score one batch and send its outputs; ``batch.delivered`` resolves once every output is confirmed."""
        await self.process(batch)
        if self._pending is None and batch.sink is None:
            await self.deliver(batch)
            self._confirmed(batch)
            return
        try:
            futures: list[Awaitable[Any]] | None = await self.send_outputs(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - could not even queue: resent by the confirmer (a batch sent in
            futures = None if batch.sink is None else [_failed(exc)]  # its reader's transaction fails instead)
        if self._pending is None:
            await self._settle_transactional(batch, futures or [])
        else:
            await self._pending.put((batch, futures))

    async def _confirm_loop(self) -> None:
        assert self._pending is not None
        while True:
            batch, futures = await self._pending.get()
            try:
                if batch.sink is not None:
                    await self._settle_transactional(batch, futures or [])
                    continue
                delivered = False
                if futures is not None:
                    outcomes = await asyncio.gather(*futures, return_exceptions=True)
                    delivered = not any(isinstance(o, BaseException) for o in outcomes)
                if not delivered:
                    await self.deliver(batch)  # resend with retries (fatal when they run out)
                self._confirmed(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never confirm past a batch that was not delivered
                if batch.delivered is not None and not batch.delivered.done():
                    batch.delivered.set_exception(exc)
                self.fatal(exc)
                raise
            finally:
                self._pending.task_done()

    async def _settle_transactional(self, batch: Batch, futures: list[Awaitable[Any]]) -> None:
        """Confirm a batch sent in its reader's transaction, or fail it with the first send error."""
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if not errors:
            self._confirmed(batch)
        elif batch.delivered is not None and not batch.delivered.done():
            self.metrics.batch_retries.labels("transaction").inc()
            batch.delivered.set_exception(errors[0])

    def _confirmed(self, batch: Batch) -> None:
        if batch.delivered is not None and not batch.delivered.done():
            batch.delivered.set_result(None)
        self.scorer.record_metrics(batch.result)
        if batch.sent_at is not None:
            self.metrics.e2e.observe_many(time.time() - batch.sent_at)
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batches.inc()
        self.batches += 1
        self.events_in += len(batch)

    async def process(self, batch: Batch) -> None:
        """Decode, resolve and score, retrying in place while the store is down or a model raises."""
        self.scorer.decode(batch)
        attempt = 0
        model_attempts = 0
        while True:
            attempt += 1
            if self.draining and attempt > 1:
                raise asyncio.CancelledError("stopping: the batch is left unacknowledged")
            try:
                await self.scorer.resolve(batch)
            except Exception as exc:  # noqa: BLE001 - the store is needed for a model not loaded yet
                self.metrics.batch_retries.labels("store").inc()
                if attempt == 1 or attempt % 20 == 0:
                    log.warning("batch waits for the model store (attempt %d): %s", attempt, exc)
                await asyncio.sleep(backoff(attempt, 0.2, 5.0))
                continue
            model_attempts += 1
            last = model_attempts >= self.config.predict_attempts
            result = self.scorer.score(batch, final_attempt=last)
            if not result.failures:
                return
            self.metrics.batch_retries.labels("model").inc()
            failure = result.failures[0]
            log.warning("model %s raised on %d event(s) (attempt %d of %d, batch retried): %s: %s",
                        failure.scored_by.what, len(failure.indices), model_attempts, self.config.predict_attempts,
                        type(failure.error).__name__, failure.error)
            await asyncio.sleep(backoff(model_attempts, 0.1, 2.0))

    async def send_outputs(self, batch: Batch) -> list[Awaitable[Any]]:
        """Queue every output of a batch (predictions, dead letters, hook messages); the delivery futures."""
        sink = batch.sink or self.sink
        assert sink is not None
        futures: list[Awaitable[Any]] = []
        for topic, messages in batch.outgoing(self.config.output_topic, self.config.dlq_topic, self._copartitioned):
            futures += await sink.send_many(topic, messages)
        return futures

    async def deliver(self, batch: Batch) -> None:
        """Send every output of a batch and wait for the broker's acknowledgement of each (or give up)."""
        cfg = self.config
        attempt = 0
        while True:
            attempt += 1
            try:
                futures = await self.send_outputs(batch)
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
                errors = [o for o in outcomes if isinstance(o, BaseException)]
                if not errors:
                    return
                raise errors[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried, then fatal
                self.metrics.batch_retries.labels("send").inc()
                if attempt >= cfg.send_attempts:
                    self.fatal(exc)
                    raise
                log.warning("sending a batch's outputs failed (attempt %d of %d, resent): %s: %s", attempt,
                            cfg.send_attempts, type(exc).__name__, exc)
                await asyncio.sleep(backoff(attempt, 0.5, 10.0))

    # ------------------------------------------------------------------ reporting

    def describe(self, partitions: Sequence[int] = ()) -> dict[str, Any]:
        """The /models page: the cache's entries, and this worker's state (``partitions``: the reader's)."""
        out = self.cache.describe()
        out["worker"] = {
            "ready": self.ready.is_set(), "batches": self.batches, "events": self.events_in,
            "notices_ready": self._notices_ready.is_set() or not self.config.follow_changes,
            "partitions": list(partitions),
            "input_topic": self.config.input_topic, "output_topic": self.config.output_topic,
            "dlq_topic": self.config.dlq_topic, "uptime_s": round(time.time() - self.started_at, 1),
        }
        return out
