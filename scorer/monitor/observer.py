"""The scoring worker's drift hook: per-batch feature counts in, snapshots, alerts and gauges out.

The worker calls ``observe(model, segment, version, X, predictions, ids)`` once per scored group and runs
``flush()`` from a timer. ``observe`` only keeps a reference to the matrix (a micro-batch holds a few rows per
segment, and binning each group alone would cost more in numpy call overhead than in work); ``flush`` bins
each key's rows in one call, about 1 us of CPU per event with 20 features. A key whose held rows reach a
window's worth, or all keys together ``_MAX_HELD_ROWS``, are binned at once, so held memory stays bounded.
``flush`` also reads the training statistics of versions seen for the first time (``reference_loader``, a
read-only store call, in a thread), evaluates windows that are due by age, and publishes what is pending to
``model-drift`` and ``model-alerts``. Publishing failures keep the messages for the next flush (bounded),
and never reach the scoring path.
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
_MAX_HELD_ROWS = 100_000
"""Scored rows held for binning at the next flush, over all keys; beyond this they are binned at once."""


STATISTICS = ("psi", "ks")
"""Statistics a drift alert can be about (the label values of ``scorer_drift_alerts``)."""


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
        self._segments_seen: set[tuple[str, str]] = set()

    def update(self, snapshot: DriftSnapshot, alerts: list[DriftAlert]) -> None:
        labels = (snapshot.model, snapshot.segment, str(snapshot.version))
        self.segment_seen(snapshot.model, snapshot.segment)
        if snapshot.max_psi is not None:
            self.psi.labels(*labels).set(snapshot.max_psi)
        if snapshot.max_ks is not None:
            self.ks.labels(*labels).set(snapshot.max_ks)
        for alert in alerts:
            self.alerts.labels(alert.model, alert.segment, alert.statistic).inc()

    def segment_seen(self, model: str, segment: str) -> None:
        """Create the segment's alert series at zero (once), so that its first alert shows in increase()."""
        if (model, segment) not in self._segments_seen:
            self._segments_seen.add((model, segment))
            for statistic in STATISTICS:
                self.alerts.labels(model, segment, statistic)

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
        self._held: dict[tuple[str, str, int], list[np.ndarray]] = {}
        self._held_rows: dict[tuple[str, str, int], int] = {}
        self._held_total = 0

    def observe(self, model: str, segment: str, version: int, X: np.ndarray) -> None:
        """Count one scored group's rows (X in the served model's feature order). Never raises into the caller."""
        try:
            rows = int(X.shape[0])
        except Exception:  # monitoring must never fail a scoring batch
            log.exception("drift observe failed for %s/%s version %s", model, segment, version)
            return
        self.observe_many([(model, segment, version)], [rows], X)

    def observe_many(self, keys: list[tuple[str, str, int]], sizes: list[int], X: np.ndarray) -> None:
        """Count several scored groups at once: group ``i`` is ``keys[i]`` (model, segment, version) and holds the
        next ``sizes[i]`` rows of X. Never raises into the caller."""
        try:
            has = self.monitor.has
            unreferenced = 0
            start = 0
            for key, size in zip(keys, sizes, strict=True):
                stop = start + size
                if has(key):
                    self._hold(key, X[start:stop], size)
                else:
                    if key not in self._no_stats:
                        self._wanted.add(key)
                    unreferenced += size
                start = stop
            if unreferenced:
                self.monitor.unreferenced += unreferenced
                if self.gauges is not None:
                    self.gauges.unreferenced.inc(unreferenced)
        except Exception:  # monitoring must never fail a scoring batch
            log.exception("drift observe failed for %d groups (first %s)", len(keys), keys[:1])

    def _hold(self, key: tuple[str, str, int], X: np.ndarray, rows: int) -> None:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = []
        held.append(X)
        total = self._held_rows[key] = self._held_rows.get(key, 0) + rows
        self._held_total += rows
        if total >= self.monitor.config.every_events:
            self._bin(key)
        elif self._held_total >= _MAX_HELD_ROWS:
            self._bin_all()

    def _bin(self, key: tuple[str, str, int]) -> None:
        held = self._held.pop(key, None)
        self._held_total -= self._held_rows.pop(key, 0)
        if not held:
            return
        X = held[0] if len(held) == 1 else np.concatenate(held)
        try:
            snapshot, alerts = self.monitor.observe(key, np.asarray(X, dtype=np.float64))
        except Exception:  # a bad matrix (e.g. wrong width) loses its rows, nothing else
            log.exception("drift binning failed for %s/%s version %s", *key)
            return
        if snapshot is not None:
            self._queue(snapshot, alerts)

    def _bin_all(self) -> None:
        for key in list(self._held):
            self._bin(key)

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
            except Exception:  # store unavailable: ask again at the next flush
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
        self._bin_all()
        for snapshot, alerts in self.monitor.due():
            self._queue(snapshot, alerts)
        if not self._pending:
            return 0
        batch = list(self._pending)
        self._pending.clear()
        try:
            await self._send(batch)
        except Exception:  # Kafka hiccup: keep them for the next flush
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
