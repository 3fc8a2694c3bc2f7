"""``scorer retrain-worker``: the closed loop, from labelled traffic to a promoted (or retired) version.

One process consumes the events, predictions, shadow predictions, labels and alerts topics; joins them by
id (``scorer.monitor.join``, bounded); keeps rolling live metrics per version (published to
``model-metrics``, accuracy drops to ``model-alerts``); keeps recent labelled rows per segment; and drives
``RetrainPolicy``. Its actions (:mod:`scorer.retrain.actions`) run one at a time in a background task so
consuming never stops: refit with the fit function it was handed (in a thread), publish the version with its
holdout metrics and training statistics, start it as canary (or shadow), and later promote or retire it.
Every pointer change goes through the store with ``actor`` = the worker and a compact JSON ``reason`` holding
the evidence, so the activation log tells the whole story, and ``scorer rollback`` stays the human veto.

This worker holds writer credentials (it publishes versions); the scoring workers stay read-only.
Run one per model set: two retrain workers on the same segments would race each other's trials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from scorer.config import Settings
from scorer.errors import ConfigError
from scorer.monitor.accuracy import LiveMetrics, outcome, task_of
from scorer.monitor.join import LabelJoin
from scorer.monitor.topics import (
    Publisher,
    segment_key,
    version_key,
)
from scorer.retrain.actions import Actions, baseline
from scorer.retrain.config import RetrainGauges, WorkerConfig
from scorer.retrain.policy import Decision, Fit, RetrainPolicy
from scorer.retrain.refit import RefitFn
from scorer.retrain.window import TrainingWindows
from scorer.store.base import ModelStore

log = logging.getLogger(__name__)

_MAX_WAITING = 2000
"""Joined items held per (model, segment, version) while its description is being read from the store."""


class RetrainWorker(Actions):
    """The service; ``await run(stop)`` until ``stop`` is set. ``ready`` is set once partitions are assigned."""

    def __init__(self, settings: Settings, config: WorkerConfig, *, store: ModelStore | None = None,
                 fit: RefitFn | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.config = config
        self._fit_fn = fit
        self.policy = RetrainPolicy(config.retrain)
        self.join = LabelJoin(ttl=config.join_ttl, max_entries=config.join_max, clock=clock)
        self.live = LiveMetrics(config.metrics)
        self.windows = TrainingWindows(capacity=config.window_rows, max_segments=config.max_segments)
        self.ready = asyncio.Event()
        self.counters: dict[str, int] = {}
        self.decisions: list[dict[str, Any]] = []
        """Every action taken (trial started, promoted, retired, fit failed), newest last, for tests and logs."""
        self._store = store
        self._own_store = store is None
        self._clock = clock
        self._models: set[str] = set(config.models)
        self._infos: dict[tuple[str, str, int], Any] = {}
        self._fetching: set[tuple[str, str, int]] = set()
        self._waiting: dict[tuple[str, str, int], deque[Callable[[Any], None]]] = {}
        self._active: dict[tuple[str, str], Any] = {}
        self._last_write: dict[tuple[str, str], float] = {}
        self._dirty: set[tuple[str, str, int]] = set()
        self._actions: asyncio.Queue[Fit | Decision] = asyncio.Queue()
        self._publisher = Publisher(settings)
        self._tasks: list[asyncio.Task[Any]] = []
        self.gauges = RetrainGauges()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event | None = None) -> None:
        from aiokafka import AIOKafkaConsumer

        from scorer.kafka import aiokafka_options

        stop = stop or asyncio.Event()
        if self._store is None:
            from scorer.store import CassandraModelStore

            self._store = await asyncio.to_thread(CassandraModelStore, self.settings)
        if not self._models:
            self._models = set(await asyncio.to_thread(self._store.models))
        if not self.config.monitor_only and self._fit_fn is None:
            raise ConfigError("a retrain worker that retrains needs a fit function (or monitor_only)")
        await self._poll_pointers()
        if self.config.web_port is not None:
            from prometheus_client import start_http_server

            start_http_server(self.config.web_port, registry=self.gauges.registry)
        topics = self.config.topics
        consumer = AIOKafkaConsumer(
            topics.events, topics.predictions, topics.shadow, topics.labels, topics.alerts,
            **aiokafka_options(self.settings), group_id=self.config.group_id or f"{self.settings.app_id}-retrain",
            auto_offset_reset="earliest" if self.config.from_beginning else "latest", enable_auto_commit=True,
            max_poll_records=2000, isolation_level="read_committed")  # never an aborted (re-scored) prediction
        await self._publisher.start()
        await consumer.start()
        try:
            self._tasks = [asyncio.create_task(self._act_loop(), name="retrain-actions"),
                           asyncio.create_task(self._tick_loop(stop), name="retrain-tick")]
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                if consumer.assignment() and not self.ready.is_set():
                    self.ready.set()
                for tp, records in batches.items():
                    for record in records:
                        self._dispatch(tp.topic, record.value)
                for task in self._tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await consumer.stop()
            await self._publisher.stop()
            if self._own_store and self._store is not None:
                self._store.close()

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        if name.startswith("triggers."):
            self.gauges.triggers.labels(name.removeprefix("triggers.")).inc(n)

    # ------------------------------------------------------------------ input

    def _dispatch(self, topic: str, raw: bytes | None) -> None:
        try:
            message = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            message = None
        topics = self.config.topics
        if isinstance(message, dict) and topic == topics.alerts:
            self._on_alert(message)
            return
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            self._count("ignored")
            return
        event_id = message["id"]
        if topic == topics.labels:
            truth = message["label"] if "label" in message else message.get("value")
            self._joined(self.join.add_label(event_id, truth))
        elif topic in (topics.predictions, topics.shadow):
            if message.get("model") not in self._models or not isinstance(message.get("version"), int):
                return
            part = (message["model"], str(message.get("segment")), message["version"], message.get("prediction"),
                    topic == topics.shadow)
            self._joined(self.join.add_prediction(event_id, (message["version"], topic == topics.shadow), part))
        elif topic == topics.events:
            if message.get("model") not in self._models or self.config.monitor_only:
                return
            self._joined(self.join.add_event(event_id, raw))

    def _on_alert(self, alert: dict[str, Any]) -> None:
        if alert.get("kind") != "drift" or alert.get("model") not in self._models or self.config.monitor_only:
            return
        model, segment, version = alert["model"], str(alert.get("segment")), alert.get("version")
        if not isinstance(version, int):
            return
        window = self.windows.get(model, segment)
        evidence = {key: alert.get(key) for key in ("feature", "statistic", "value", "threshold")}
        evidence["window_n"] = (alert.get("window") or {}).get("n")
        if self.policy.trigger(model, segment, version, "drift", evidence, self._clock(),
                               window.total if window else 0):
            log.info("drift trigger for %s/%s v%s: %s", model, segment, version, evidence)
            self._count("triggers.drift")

    def _joined(self, items: list[Any]) -> None:
        for item in items:
            if item.kind == "prediction":
                model, segment, version, prediction, shadow = item.part
                self._with_info((model, segment, version),
                                lambda info, p=prediction, t=item.label, s=shadow, k=(model, segment, version):
                                self._on_outcome(k, info, p, t, s))
            else:
                self._on_example(item.part, item.label)

    def _with_info(self, key: tuple[str, str, int], then: Callable[[Any], None]) -> None:
        """Run ``then(info)`` now if the version's description is cached, else once it has been read."""
        info = self._infos.get(key)
        if info is not None:
            then(info)
            return
        waiting = self._waiting.setdefault(key, deque(maxlen=_MAX_WAITING))
        waiting.append(then)
        if key not in self._fetching:
            self._fetching.add(key)
            asyncio.get_running_loop().create_task(self._fetch_info(key))

    async def _fetch_info(self, key: tuple[str, str, int]) -> None:
        try:
            info = await asyncio.to_thread(self._store.version_info, *key)
        except Exception:  # the store is down: keep the items, retry on the next arrival
            log.exception("reading %s/%s version %s failed", *key)
            self._fetching.discard(key)
            return
        self._fetching.discard(key)
        if info is None:
            self._waiting.pop(key, None)
            self._count("unknown_version")
            return
        self._infos[key] = info
        for then in self._waiting.pop(key, ()):
            then(info)

    def _on_outcome(self, key: tuple[str, str, int], info: Any, prediction: Any, truth: Any, shadow: bool) -> None:
        task = task_of(info.classes)
        pair = outcome(task, prediction, truth, info.classes)
        if pair is None:
            self._count("unpaired_outcomes")
            return
        self.live.add(key, task, *pair)
        self._dirty.add(key)
        self.policy.on_outcome(key[0], key[1], key[2], *pair)

    def _on_example(self, raw: bytes, label: Any) -> None:
        event = orjson.loads(raw)
        model, segment = event.get("model"), str(event.get("segment"))
        pointer = self._active.get((model, segment))
        if pointer is None or pointer.version is None or label is None:
            self._count("examples_without_pointer")
            return
        self._with_info((model, segment, pointer.version),
                        lambda info: self._add_example(model, segment, info, event.get("features") or {}, label))

    def _add_example(self, model: str, segment: str, info: Any, features: dict[str, Any], label: Any) -> None:
        row = np.fromiter((_number(features.get(name)) for name in info.feature_names), dtype=np.float64,
                          count=len(info.feature_names))
        window = self.windows.add(model, segment, row, label)
        self._count("examples")
        fit = self.policy.on_example(model, segment, window.total, len(window), self._clock())
        if fit is not None:
            self._actions.put_nowait(fit)

    # ------------------------------------------------------------------ periodic work

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        last_poll = last_metrics = self._clock()
        while not stop.is_set():
            await asyncio.sleep(0.25)
            now = self._clock()
            self.join.expire()
            if now - last_poll >= self.config.poll_interval:
                last_poll = now
                await self._poll_pointers()
            if now - last_metrics >= self.config.metrics_interval:
                last_metrics = now
                await self._publish_metrics(now)
            for decision in self.policy.decisions(now):
                self._actions.put_nowait(decision)
            self.policy.forget_idle(self.config.max_segments)

    async def _poll_pointers(self) -> None:
        started = self._clock()
        for model in sorted(self._models):
            try:
                rows = await asyncio.to_thread(self._store.active, model)
            except Exception:  # keep going on the pointers we know; retried next poll
                log.exception("reading active_models of %s failed", model)
                self._count("store_errors")
                continue
            for segment, row in rows.items():
                key = (model, segment)
                if self._last_write.get(key, 0.0) >= started:
                    continue  # we changed it while this read was in flight: the read may be stale
                self._active[key] = row
                self.policy.pointer(model, segment, row.version, row.canary_version, row.shadow_version,
                                    self._clock())

    def _role(self, model: str, segment: str, version: int) -> str:
        row = self._active.get((model, segment))
        if row is None:
            return "unknown"
        if version == row.version:
            return "live"
        if version == row.canary_version:
            return "canary"
        if version == getattr(row, "shadow_version", None):
            return "shadow"
        return "retired"

    async def _publish_metrics(self, now: float) -> None:
        dirty, self._dirty = self._dirty, set()
        messages = []
        for key in sorted(dirty):
            window = self.live.get(key)
            if window is None:
                continue
            model, segment, version = key
            metrics = window.metrics()
            role = self._role(model, segment, version)
            for name, value in metrics.items():
                if name != "n" and value is not None:
                    self.gauges.live.labels(model, segment, str(version), name).set(value)
            self.gauges.outcomes.labels(model, segment, str(version)).set(window.total)
            messages.append((self.config.topics.metrics, version_key(*key), {
                "model": model, "segment": segment, "version": version, "role": role, "task": window.task,
                "metrics": metrics, "window": window.capacity, "total": window.total, "at": now}))
            info = self._infos.get(key)
            if role == "live" and info is not None and not self.config.monitor_only:
                metric = self.config.retrain.metric_for(window.task)
                example_window = self.windows.get(model, segment)
                evidence = self.policy.check_live(model, segment, version, window, baseline(info, metric), now,
                                                  example_window.total if example_window else 0)
                if evidence is not None:
                    self._count("triggers.accuracy")
                    messages.append((self.config.topics.alerts, segment_key(model, segment), {
                        "kind": "accuracy", "model": model, "segment": segment, "version": version,
                        "feature": None, "statistic": metric, "value": evidence["live"],
                        "threshold": evidence["limit"], "window": {"n": evidence["n"]}, "at": now}))
        stats = self.join.stats
        self.gauges.pending.set(len(self.join))
        self.gauges.dropped.labels("ttl").set(stats.expired)
        self.gauges.dropped.labels("cap").set(stats.evicted)
        if messages:
            try:
                await self._publisher.send_many(messages)
            except Exception:  # metrics are soft state: the next interval publishes again
                log.exception("publishing live metrics failed")
                self._dirty |= dirty

    # ------------------------------------------------------------------ actions

    async def _act_loop(self) -> None:
        while True:
            action = await self._actions.get()
            try:
                if isinstance(action, Fit):
                    await self._fit(action)
                else:
                    await self._decide(action)
            except Exception as exc:  # one segment's failure must not stop the others
                log.exception("retrain action %s failed", action)
                self.policy.fit_failed(action.model, action.segment, self._clock())
                self._record(action.model, action.segment, "failed", {"error": str(exc)[:300]})

    def _record(self, model: str, segment: str, what: str, evidence: dict[str, Any]) -> None:
        self.gauges.actions.labels(what).inc()
        self.decisions.append({"model": model, "segment": segment, "what": what, "at": self._clock(), **evidence})

def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
