"""Monitoring for a scoring worker: the hooks and the background task that ``create_app`` takes.

``worker_monitoring(options, metrics)`` returns ``(hooks, tasks)`` for
``scorer.stream.app.create_app(..., hooks=hooks, tasks=tasks, metrics=metrics)``:

- a :class:`~scorer.monitor.hooks.ShadowHook` (shadow versions score every event; outputs to the shadow
  topic, sent with the batch before its offsets are acknowledged);
- a :class:`~scorer.monitor.hooks.DriftHook` feeding a :class:`~scorer.monitor.observer.DriftObserver`;
- a task that, once the worker is ready, flushes the observer every ``flush_interval``: it reads training
  statistics of new versions through the worker's read-only store and publishes drift snapshots and
  alerts through the worker's own producer.

Every topic written here must exist before the worker starts (``monitoring_topics``), since the worker's
sink refuses to guess partitions for a missing topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from scorer.monitor.drift import DriftConfig
from scorer.monitor.hooks import DriftHook, ShadowHook
from scorer.monitor.observer import DriftGauges, DriftObserver, store_reference_loader
from scorer.monitor.topics import SHADOW_TOPIC, MonitorTopics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorOptions:
    shadow: bool = True
    shadow_topic: str = SHADOW_TOPIC
    drift: DriftConfig | None = field(default_factory=DriftConfig)
    """None turns drift counting off."""
    topics: MonitorTopics = field(default_factory=MonitorTopics)
    flush_interval: float = 1.0


def monitoring_topics(options: MonitorOptions) -> list[str]:
    """Topics the monitoring hooks and task write to (create them before starting the worker)."""
    out = []
    if options.shadow:
        out.append(options.shadow_topic)
    if options.drift is not None:
        out += [options.topics.drift, options.topics.alerts]
    return out


def worker_monitoring(options: MonitorOptions, metrics: Any = None
                      ) -> tuple[list[Callable[..., Any]], list[Callable[[Any], Awaitable[None]]]]:
    """(hooks, tasks) for ``create_app``; ``metrics`` is the worker's WorkerMetrics (gauges join its registry)."""
    hooks: list[Callable[..., Any]] = []
    tasks: list[Callable[[Any], Awaitable[None]]] = []
    if options.shadow:
        hooks.append(ShadowHook(options.shadow_topic))
    if options.drift is None:
        return hooks, tasks
    runtime_box: dict[str, Any] = {}

    def load(model: str, segment: str, version: int) -> Any:
        runtime = runtime_box.get("runtime")
        if runtime is None or runtime.store is None:
            raise RuntimeError("the worker's store is not connected yet")
        return store_reference_loader(runtime.store)(model, segment, version)

    async def send(messages: list[tuple[str, bytes, dict[str, Any]]]) -> None:
        runtime = runtime_box.get("runtime")
        if runtime is None or runtime.sink is None:
            raise RuntimeError("the worker's producer is not started yet")
        by_topic: dict[str, list[tuple[bytes | None, bytes, int | None]]] = {}
        for topic, key, value in messages:
            by_topic.setdefault(topic, []).append((key, orjson.dumps(value), None))
        for topic, batch in by_topic.items():
            await runtime.sink.send_and_wait(topic, batch)

    gauges = DriftGauges(metrics.registry) if metrics is not None else None
    observer = DriftObserver(load, send, config=options.drift, topics=options.topics, gauges=gauges)
    hooks.append(DriftHook(observer))

    async def drift_flush(runtime: Any) -> None:
        runtime_box["runtime"] = runtime
        await runtime.ready.wait()
        if gauges is not None:  # alert series at zero from the moment a segment is served, before its first window
            runtime.cache.add_swap_listener(lambda old, new: gauges.segment_seen(new.model, new.segment))
        while True:
            await asyncio.sleep(options.flush_interval)
            try:
                await observer.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # monitoring must never stop the worker
                log.exception("drift flush failed")

    drift_flush.observer = observer  # type: ignore[attr-defined]  # for tests and the /models page
    tasks.append(drift_flush)
    return hooks, tasks


def run_monitored_worker(settings: Any, config: Any, options: MonitorOptions | None = None, *,
                         loglevel: str = "info") -> None:
    """``scorer.stream.app.run_worker`` plus monitoring: its hooks, tasks and topics."""

    from scorer.monitor.topics import ensure_topics as ensure_monitor_topics
    from scorer.stream.app import run_worker
    from scorer.stream.metrics import WorkerMetrics

    options = options or MonitorOptions()

    async def prepare() -> None:
        if options.drift is not None:
            await ensure_monitor_topics(settings, options.topics, partitions=config.partitions)

    metrics = WorkerMetrics()
    hooks, tasks = worker_monitoring(options, metrics)
    run_worker(settings, config, loglevel=loglevel, hooks=hooks, tasks=tasks, metrics=metrics,
               extra_topics={options.shadow_topic: config.partitions} if options.shadow else None, prepare=prepare)
