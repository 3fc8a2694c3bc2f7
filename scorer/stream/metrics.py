"""Prometheus metrics of one worker, in a private registry (so apps and tests never share counters).

Per-event counting is done per group (one ``inc(n)`` per model/segment/version in a batch), and the
end-to-end latency histogram takes a whole batch of latencies at once (:class:`BulkHistogram`), so the
hot path pays per batch, not per event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from scorer.stream.events import REASON_KINDS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
SWAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4"

# Label values known in advance. Every labelled counter is created at zero for them (and per model, per served
# version, when first served): a series born with its first increment is invisible to rate() and increase(),
# so an alert on the first dead letter or the first failed swap would never fire.
RETRY_CAUSES = ("store", "model", "send", "transaction")
STORE_OPERATIONS = ("connect", "list models", "active", "load")
SWAP_RESULTS = ("ok", "failed")
SWAP_ERRORS = ("ChecksumMismatch", "NotFound", "InvalidWeights", "UnsupportedModel", "StoreError",
               "StoreUnavailable", "ConfigError")
OUTCOMES = ("scored", "dead_letter")
TRANSACTION_OUTCOMES = ("committed", "aborted", "fenced")


class BulkHistogram(Collector):
    """A histogram fed with numpy arrays: one ``np.searchsorted`` per batch instead of one call per value."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        idx = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(idx, minlength=len(self.bounds) + 1)
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def snapshot(self) -> tuple[np.ndarray, float]:
        with self._lock:
            return self._counts.copy(), self._sum

    def quantile(self, q: float) -> float | None:
        """Upper bucket bound holding quantile ``q`` (coarse; for logs and benchmarks, not for alerts)."""
        counts, _ = self.snapshot()
        total = int(counts.sum())
        if total == 0:
            return None
        rank = np.searchsorted(np.cumsum(counts), q * total, side="left")
        return float(self.bounds[rank]) if rank < len(self.bounds) else float("inf")

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total_sum = self.snapshot()
        cumulative = np.cumsum(counts)
        buckets = [(repr(float(b)), int(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
        buckets.append(("+Inf", int(cumulative[-1])))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total_sum)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


class WorkerMetrics:
    """Every metric a worker exports; one instance per app, each with its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "scorer_events", "Input events by model, segment, version and outcome (scored, canary, dead_letter).",
            ["model", "segment", "version", "outcome"], registry=r)
        self.dead_letters = Counter(
            "scorer_dead_letters", "Dead letters by reason class.", ["reason"], registry=r)
        self.batches = Counter("scorer_batches", "Batches processed (sent and acknowledged).", registry=r)
        self.batch_seconds = Histogram(
            "scorer_batch_seconds", "Time to decode, score, send and acknowledge one batch.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "scorer_batch_size", "Events per batch.", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r)
        self.e2e = BulkHistogram(
            "scorer_e2e_latency_seconds",
            "End to end latency: output acknowledged by Kafka minus the input message's Kafka timestamp.",
            LATENCY_BUCKETS, r)
        self.batch_retries = Counter(
            "scorer_batch_retries", "Batches retried in place, by cause.", ["cause"], registry=r)
        self.models_loaded = Gauge(
            "scorer_models_loaded", "Model versions held in memory (primary, canary and shadow).", registry=r)
        self.segments_loaded = Gauge(
            "scorer_segments_loaded", "(model, segment) entries in the model cache.", registry=r)
        self.swaps = Counter("scorer_swaps", "Model swaps, by model and result (ok, failed).",
                             ["model", "result"], registry=r)
        self.swap_seconds = Histogram(
            "scorer_swap_seconds", "From seeing a pointer change to serving it (load, verify, build, warm).",
            buckets=SWAP_BUCKETS, registry=r)
        self.swap_failures = Counter(
            "scorer_swap_failures", "Failed loads of a version, by model and error kind (the old model keeps serving).",
            ["model", "error"], registry=r)
        self.swaps_blocked = Gauge(
            "scorer_swaps_blocked", "Segments whose active_models row names a version that cannot be served.",
            registry=r)
        self.evictions = Counter("scorer_evictions", "Cache entries evicted (least recently used).", registry=r)
        self.store_errors = Counter("scorer_store_errors", "Failed model store calls, by operation.",
                                    ["operation"], registry=r)
        self.store_up = Gauge("scorer_store_up", "1 when the last model store call succeeded.", registry=r)
        self.commit_failures = Counter(
            "scorer_commit_failures", "Input offset commits that failed (their events may be scored again).",
            registry=r)
        self.notices = Counter("scorer_notices", "model-changes notices received.", registry=r)
        self.lag = Gauge("scorer_consumer_lag", "Input messages not yet read, per assigned partition "
                         "(high watermark minus position).", ["partition"], registry=r)
        self.lag_sum = Gauge("scorer_consumer_lag_sum", "Input messages not yet read, over the assigned partitions.",
                             registry=r)
        self.transactions = Counter(
            "scorer_transactions", "Exactly-once transactions of input partitions, by outcome (committed, aborted, "
            "fenced: another worker took the partition or the broker timed the transaction out).",
            ["outcome"], registry=r)
        self.store_up.set(1)
        self._models_seen: set[str] = set()
        self._lag_partitions: set[int] = set()
        for kind in REASON_KINDS:
            self.dead_letters.labels(kind)
        for cause in RETRY_CAUSES:
            self.batch_retries.labels(cause)
        for operation in STORE_OPERATIONS:
            self.store_errors.labels(operation)
        for outcome in TRANSACTION_OUTCOMES:
            self.transactions.labels(outcome)

    def model_seen(self, model: str) -> None:
        """Create a model's swap series at zero (at start for the models asked for, else when first served)."""
        if model in self._models_seen:
            return
        self._models_seen.add(model)
        for result in SWAP_RESULTS:
            self.swaps.labels(model, result)
        for error in SWAP_ERRORS:
            self.swap_failures.labels(model, error)

    def version_served(self, model: str, segment: str, version: int, canary: bool) -> None:
        """Create the event series of a version at zero when it goes live (before its first batch is counted)."""
        self.model_seen(model)
        for outcome in ("canary", "dead_letter") if canary else OUTCOMES:
            self.events.labels(model, segment, str(version), outcome)

    def set_lag(self, lags: dict[int, int]) -> None:
        """Per-partition lag of the partitions assigned now (series of partitions given up are removed)."""
        for partition in self._lag_partitions - lags.keys():
            self.lag.remove(str(partition))
        self._lag_partitions = set(lags)
        for partition, lag in lags.items():
            self.lag.labels(str(partition)).set(lag)
        self.lag_sum.set(sum(lags.values()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
