"""The scoring worker's drift hook: per-batch feature counts in, snapshots, alerts and gauges out.

The worker calls ``observe(model, segment, version, X, predictions, ids)`` once per scored group (cheap: one
vectorised binning of the matrix, no I/O) and runs ``flush()`` from a timer. ``flush`` reads the training
statistics of versions seen for the first time (``reference_loader``, a read-only store call, in a
thread), evaluates windows that are due by age, and publishes what is pending to ``model-drift`` and
``model-alerts``. Publishing failures keep the messages for the next flush (bounded), and never reach
the scoring path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np

from scorer.monitor.drift import DriftAlert, DriftConfig, DriftMonitor, DriftReference, DriftSnapshot
from scorer.monitor.topics import MonitorTopics, segment_key, version_key

log = logging.getLogger(__name__)

ReferenceLoader = Callable[[str, str, int], "tuple[Sequence[str], Mapping[str, Any]] | None"]
"""(model, segment, version) -> (feature names, stats) of that version, or None when it has no stats."""
Send = Callable[[list[tuple[str, bytes, dict[str, Any]]]], Awaitable[None]]
"""Publishes (topic, key, JSON value) messages and waits for the broker's acknowledgement."""

_MAX_PENDING = 10_000
"""Messages kept for the next flush when publishing fails (the oldest are dropped beyond this)."""


class DriftGauges:
    """Prometheus series: max PSI/KS per (model, segment, version) and alert counts.

    Per feature would be 20x the series for 10,000 segments; the per-feature detail is on the topic.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge

        registry = registry if registry is not None else REGISTRY
        labels = ("model", "segment", "version")
        self.psi = Gauge("scorer_drift_max_psi", "Largest feature PSI of the last drift window", labels,
                         registry=registry)
        self.ks = Gauge("scorer_drift_max_ks", "Largest feature KS statistic of the last drift window", labels,
                        registry=registry)
        self.alerts = Counter("scorer_drift_alerts", "Drift threshold crossings", ("model", "segment", "statistic"),
                              registry=registry)
        self.unreferenced = Counter("scorer_drift_unreferenced_rows",
                                    "Scored rows not counted for drift (version without training statistics yet)",
                                    registry=registry)

    def update(self, snapshot: DriftSnapshot, alerts: list[DriftAlert]) -> None:
        labels = (snapshot.model, snapshot.segment, str(snapshot.version))
        if snapshot.max_psi is not None:
            self.psi.labels(*labels).set(snapshot.max_psi)
        if snapshot.max_ks is not None:
            self.ks.labels(*labels).set(snapshot.max_ks)
        for alert in alerts:
            self.alerts.labels(alert.model, alert.segment, alert.statistic).inc()

    def forget(self, model: str, segment: str, version: int) -> None:
        for gauge in (self.psi, self.ks):
            try:
                gauge.remove(model, segment, str(version))
            except KeyError:
                pass


class DriftObserver:
    """Drift windows of everything a worker scores. ``observe`` from the batch loop, ``flush`` from a timer."""

    def __init__(self, reference_loader: ReferenceLoader, send: Send, *, config: DriftConfig | None = None,
                 topics: MonitorTopics | None = None, gauges: DriftGauges | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.monitor = DriftMonitor(config, clock=clock)
        self.topics = topics or MonitorTopics()
        self.gauges = gauges
        self._load = reference_loader
        self._send = send
        self._clock = clock
        self._wanted: set[tuple[str, str, int]] = set()
        self._no_stats: set[tuple[str, str, int]] = set()
        self._pending: deque[tuple[str, bytes, dict[str, Any]]] = deque(maxlen=_MAX_PENDING)

    def observe(self, model: str, segment: str, version: int, X: np.ndarray, predictions: Any = None,
                ids: Sequence[str] | None = None) -> None:
        """Count one scored group's rows (X in the served model's feature order). Never raises into the caller."""
        key = (model, segment, version)
        try:
            if not self.monitor.has(key):
                if key not in self._no_stats:
                    self._wanted.add(key)
                self.monitor.unreferenced += int(X.shape[0])
                if self.gauges is not None:
                    self.gauges.unreferenced.inc(int(X.shape[0]))
                return
            snapshot, alerts = self.monitor.observe(key, np.asarray(X, dtype=np.float64))
            if snapshot is not None:
                self._queue(snapshot, alerts)
        except Exception:  # noqa: BLE001 - monitoring must never fail a scoring batch
            log.exception("drift observe failed for %s/%s version %s", model, segment, version)

    def _queue(self, snapshot: DriftSnapshot, alerts: list[DriftAlert]) -> None:
        at = self._clock()
        key = version_key(snapshot.model, snapshot.segment, snapshot.version)
        self._pending.append((self.topics.drift, key, {**snapshot.to_json(), "at": at}))
        for alert in alerts:
            self._pending.append((self.topics.alerts, segment_key(alert.model, alert.segment),
                                  {**alert.to_json(), "at": at}))
        if self.gauges is not None:
            self.gauges.update(snapshot, alerts)

    async def flush(self) -> int:
        """Load new references, evaluate windows due by age, publish pending messages; returns how many went out."""
        wanted, self._wanted = self._wanted, set()
        for key in wanted:
            try:
                found = await asyncio.to_thread(self._load, *key)
            except Exception:  # noqa: BLE001 - store unavailable: ask again at the next flush
                log.warning("no drift reference yet for %s/%s version %s (store error)", *key, exc_info=True)
                self._wanted.add(key)
                continue
            if found is None:
                self._no_stats.add(key)
                continue
            names, stats = found
            try:
                reference = DriftReference.from_stats(names, stats, where=f"{key[0]}/{key[1]} version {key[2]}")
            except ValueError as exc:
                log.warning("drift disabled for %s/%s version %s: %s", *key, exc)
                self._no_stats.add(key)
                continue
            self.monitor.set_reference(key, reference)
        for snapshot, alerts in self.monitor.due():
            self._queue(snapshot, alerts)
        if not self._pending:
            return 0
        batch = list(self._pending)
        self._pending.clear()
        try:
            await self._send(batch)
        except Exception:  # noqa: BLE001 - Kafka hiccup: keep them for the next flush
            log.warning("publishing %d drift messages failed; retrying at the next flush", len(batch), exc_info=True)
            self._pending.extendleft(reversed(batch))
            return 0
        return len(batch)


def store_reference_loader(store: Any) -> ReferenceLoader:
    """A loader reading ``version_info`` (feature names and stats) from a ModelStore (read-only)."""

    def load(model: str, segment: str, version: int) -> tuple[Sequence[str], Mapping[str, Any]] | None:
        info = store.version_info(model, segment, version)
        if info is None or not info.stats or "features" not in info.stats:
            return None
        return info.feature_names, info.stats

    return load
