"""``scorer retrain-worker``: the closed loop, from labelled traffic to a promoted (or retired) version.

One process consumes the events, predictions, shadow predictions, labels and alerts topics; joins them by
id (``scorer.monitor.join``, bounded); keeps rolling live metrics per version (published to
``model-metrics``, accuracy drops to ``model-alerts``); keeps recent labelled rows per segment; and drives
``RetrainPolicy``. Its actions run one at a time in a background task so consuming never stops: refit with
``trainers.segment.fit_segment`` (in a thread), publish the version with its holdout metrics and training
statistics, start it as canary (or shadow), and later promote or retire it. Every pointer change goes
through the store with ``actor`` = the worker and a compact JSON ``reason`` holding the evidence, so the
activation log tells the whole story, and ``scorer rollback`` stays the human veto.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from scorer.config import Settings
from scorer.errors import ConfigError
from scorer.monitor.accuracy import LiveMetrics, MetricsConfig, outcome, task_of
from scorer.monitor.join import LabelJoin
from scorer.monitor.topics import (
    ALERTS_TOPIC,
    LABELS_TOPIC,
    METRICS_TOPIC,
    SHADOW_TOPIC,
    Publisher,
    segment_key,
    version_key,
)
from scorer.retrain.policy import Decision, Fit, RetrainConfig, RetrainPolicy
from scorer.retrain.refit import RefitFn, RefitRequest, RefitSkipped
from scorer.retrain.window import TrainingWindows
from scorer.store.base import ModelStore

log = logging.getLogger(__name__)

_MAX_WAITING = 2000
"""Joined items held per (model, segment, version) while its description is being read from the store."""


@dataclass(frozen=True)
class RetrainTopics:
    events: str = "events"
    predictions: str = "predictions"
    shadow: str = SHADOW_TOPIC
    labels: str = LABELS_TOPIC
    alerts: str = ALERTS_TOPIC
    metrics: str = METRICS_TOPIC


@dataclass(frozen=True)
class WorkerConfig:
    models: tuple[str, ...] = ()
    """Models to look after; empty means every model with an active_models row at start."""
    topics: RetrainTopics = field(default_factory=RetrainTopics)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    join_ttl: float = 3600.0
    """Seconds an event waits for its label."""
    join_max: int = 200_000
    """Events waiting for labels at once (oldest dropped beyond this)."""
    window_rows: int = 2000
    """Labelled rows kept per segment for refits."""
    max_segments: int = 2000
    """Segments with training rows kept at once."""
    metrics_interval: float = 5.0
    poll_interval: float = 2.0
    group_id: str | None = None
    """Kafka consumer group; default ``<app_id>-retrain``."""
    from_beginning: bool = False
    """Read the topics from their start when the group has no committed offsets (default: from now on)."""
    monitor_only: bool = False
    """Join and publish live metrics, never retrain."""
    web_port: int | None = None
    """Serve Prometheus metrics (live metric per version, actions, join state) on this port."""


class RetrainGauges:
    """Prometheus series of the retrain worker, in its own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.live = Gauge("scorer_live_metric", "Rolling metric of a version over its last labelled outcomes",
                          ["model", "segment", "version", "metric"], registry=r)
        self.outcomes = Gauge("scorer_live_outcomes", "Labelled outcomes seen per version",
                              ["model", "segment", "version"], registry=r)
        self.actions = Counter("scorer_retrain_actions", "Retrain steps taken, by kind", ["action"], registry=r)
        self.triggers = Counter("scorer_retrain_triggers", "Retrain triggers, by reason", ["reason"], registry=r)
        self.pending = Gauge("scorer_label_join_pending", "Events waiting for their label", registry=r)
        self.dropped = Gauge("scorer_label_join_dropped", "Events whose label never came, by cause",
                             ["cause"], registry=r)


class RetrainWorker:
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
            max_poll_records=2000)
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
        except Exception:  # noqa: BLE001 - the store is down: keep the items, retry on the next arrival
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
            except Exception:  # noqa: BLE001 - keep going on the pointers we know; retried next poll
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
                evidence = self.policy.check_live(model, segment, version, window, _baseline(info, metric), now,
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
            except Exception:  # noqa: BLE001 - metrics are soft state: the next interval publishes again
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
            except Exception as exc:  # noqa: BLE001 - one segment's failure must not stop the others
                log.exception("retrain action %s failed", action)
                self.policy.fit_failed(action.model, action.segment, self._clock())
                self._record(action.model, action.segment, "failed", {"error": str(exc)[:300]})

    def _record(self, model: str, segment: str, what: str, evidence: dict[str, Any]) -> None:
        self.gauges.actions.labels(what).inc()
        self.decisions.append({"model": model, "segment": segment, "what": what, "at": self._clock(), **evidence})

    async def _fit(self, fit: Fit) -> None:
        cfg = self.config.retrain
        info = self._infos.get((fit.model, fit.segment, fit.live_version))
        window = self.windows.get(fit.model, fit.segment)
        if info is None or window is None:
            raise RuntimeError(f"{fit.model}/{fit.segment}: no description or rows for live version {fit.live_version}")
        X, y = window.latest(fit.rows)
        task = "regression" if info.classes is None else "classification"
        arch = cfg.arch or (info.metrics or {}).get("arch")
        request = RefitRequest(X=X, y=y, task=task, arch=arch, segment=fit.segment,
                               feature_names=tuple(info.feature_names),
                               min_rows=min(cfg.min_train_rows, max(len(y), 2)), test_size=cfg.test_size,
                               seed=window.total, params=dict(cfg.params))
        if self._fit_fn is None:
            raise ConfigError(f"{fit.model}/{fit.segment}: this retrain worker has no fit function")
        try:
            result = await asyncio.to_thread(self._fit_fn, request)
        except RefitSkipped as exc:
            self.policy.fit_failed(fit.model, fit.segment, self._clock())
            self._record(fit.model, fit.segment, "fit_skipped", {"reason": str(exc)})
            return
        metric = cfg.metric_for(task_of(info.classes))
        evidence = {"trigger": fit.reason, **fit.evidence, "rows": int(len(y)), "from": fit.live_version,
                    "holdout": {metric: _round(result.metrics.get(metric))}}
        version = await asyncio.to_thread(self._store.publish, fit.model, fit.segment, result.weights,
                                          metrics=result.metrics, stats=result.stats, author=cfg.actor)
        evidence["version"] = version
        reason = _reason(f"retrained on {fit.reason}", evidence)
        if cfg.mode == "canary":
            await asyncio.to_thread(self._store.canary, fit.model, fit.segment, version, cfg.canary_fraction,
                                    actor=cfg.actor, reason=reason)
        else:
            await asyncio.to_thread(self._store.shadow, fit.model, fit.segment, version, actor=cfg.actor,
                                    reason=reason)
        self._last_write[(fit.model, fit.segment)] = self._clock()
        await self._notify(fit.model, fit.segment, cfg.mode, version)
        self.policy.trial_started(fit.model, fit.segment, version, task_of(info.classes), self._clock())
        self._record(fit.model, fit.segment, f"trial_{cfg.mode}", evidence)
        log.info("%s/%s: version %s on %s trial (%s)", fit.model, fit.segment, version, cfg.mode, evidence)

    async def _decide(self, decision: Decision) -> None:
        cfg = self.config.retrain
        evidence = {**decision.evidence, "candidate_version": decision.candidate, "live_version": decision.live_version}
        model, segment = decision.model, decision.segment
        if decision.promote:
            reason = _reason("candidate beat live", evidence)
            if cfg.mode == "canary":
                await asyncio.to_thread(self._store.promote, model, segment, actor=cfg.actor, reason=reason)
            else:
                await asyncio.to_thread(self._store.activate, model, segment, decision.candidate, actor=cfg.actor,
                                        reason=reason)
                await asyncio.to_thread(self._store.shadow, model, segment, None, actor=cfg.actor, reason=reason)
        else:
            reason = _reason("candidate retired: not better than live", evidence)
            if cfg.mode == "canary":
                await asyncio.to_thread(self._store.retire_canary, model, segment, actor=cfg.actor, reason=reason)
            else:
                await asyncio.to_thread(self._store.shadow, model, segment, None, actor=cfg.actor, reason=reason)
        self._last_write[(model, segment)] = self._clock()
        await self._notify(model, segment, "promote" if decision.promote else "retire",
                           decision.candidate if decision.promote else decision.live_version)
        self.policy.finished(model, segment, decision.promote, self._clock())
        self._record(model, segment, "promoted" if decision.promote else "retired", evidence)
        log.info("%s/%s: candidate %s %s (%s)", model, segment, decision.candidate,
                 "promoted" if decision.promote else "retired", evidence)


    async def _notify(self, model: str, segment: str, action: str, version: int) -> None:
        """A model-changes notice so scoring workers follow now rather than at their next poll (best effort)."""
        from scorer.kafka.notices import notice_fields, notice_key

        topic = self.settings.changes_topic
        if not topic:
            return
        try:
            await self._publisher.send(topic, notice_key(model), notice_fields(model, segment, action, version))
        except Exception:  # noqa: BLE001 - the scoring workers' poll catches the change anyway
            log.warning("could not publish a model-changes notice for %s/%s", model, segment, exc_info=True)


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 5)


def _baseline(info: Any, metric: str) -> float | None:
    value = (info.metrics or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _reason(summary: str, evidence: dict[str, Any]) -> str:
    """The activation log's reason: a short phrase and the evidence as compact JSON, within the store's limit."""
    text = f"{summary} {orjson.dumps(evidence, default=str).decode()}"
    return text if len(text) <= 1900 else text[:1897] + "..."
