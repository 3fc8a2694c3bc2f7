"""Input drift: live feature histograms over the training bin edges, PSI and KS per feature, bounded state.

The reference is the ``stats`` stored with a version (``trainers/stats.py``): per feature the training
quantile ``edges``, the share of training values per bin (``hist``), the shares ``below``/``above`` the
edges and the ``missing_rate``. Live values are counted into the same buckets with the same rule (bins are
``[e_i, e_(i+1))``, the last one closed), plus a bucket for missing values, so a feature that starts
arriving empty or out of range moves its PSI instead of being dropped.

Bucket layout, per feature, padded to the widest feature so a whole model is one ``(n_features, B)``
array: ``[bin_0 .. bin_(K-1), below, above, missing]`` with ``K`` the largest bin count of the model.
Padding bins are zero in both distributions and contribute nothing.

No I/O here: the worker feeds matrices in, snapshots come out, publishing is someone else's job.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.monitor.statistics import KS_ALPHA, PSI_EPSILON, homogeneity, ks, psi  # noqa: F401 - re-exported

DEFAULT_PSI_THRESHOLD = 0.2
"""The usual reading of PSI: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift."""
DEFAULT_KS_THRESHOLD = 0.2
Key = tuple[str, str, int]
_ROW_CHUNK = 2048
"""Rows binned per step: bounds the (rows, features, edges) comparison array to a few MB."""


@dataclass(frozen=True)
class DriftReference:
    """A version's training distributions, as padded arrays ready for vectorised binning.

    ``edges`` (F, K+1) are padded with +inf, ``n_bins`` (F,) is each feature's own bin count,
    ``expected`` (F, K+3) are training shares over the bucket layout of the module docstring (each row
    sums to 1), ``valid`` (F,) is False for a feature with no training values (never evaluated).
    """

    feature_names: tuple[str, ...]
    edges: np.ndarray
    n_bins: np.ndarray
    expected: np.ndarray
    valid: np.ndarray
    n_train: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(F,) training rows behind each feature's histogram (0 when unknown): the reference's own sampling noise."""
    categorical: frozenset[str] = frozenset()  # binned by code; "above" counts categories unseen in training

    @property
    def n_buckets(self) -> int:
        return int(self.expected.shape[1])

    @property
    def k(self) -> int:
        """Bin columns before the below/above/missing buckets."""
        return int(self.expected.shape[1]) - 3

    @classmethod
    def from_stats(cls, feature_names: Sequence[str], stats: Mapping[str, Any], *, where: str = "version"
                   ) -> DriftReference:
        """Build from a version's ``stats`` dict; features absent from it are marked invalid, not guessed.

        ``where`` names the model/segment/version in error messages.
        """
        names = tuple(feature_names)
        features = stats.get("features") if isinstance(stats, Mapping) else None
        if not isinstance(features, Mapping):
            raise ValueError(f"{where}: stats have no 'features' mapping (got keys {sorted(stats)[:8]!r})")
        parsed: list[tuple[np.ndarray, np.ndarray, float, float, float] | None] = []
        for name in names:
            entry = features.get(name)
            parsed.append(_parse_feature(entry, f"{where} feature {name!r}") if entry is not None else None)
        k = max([max(p[0].size - 1, 1) for p in parsed if p is not None], default=1)
        n_features = len(names)
        edges = np.full((n_features, k + 1), np.inf)
        n_bins = np.ones(n_features, dtype=np.int64)
        expected = np.zeros((n_features, k + 3))
        valid = np.zeros(n_features, dtype=bool)
        n_train = np.zeros(n_features, dtype=np.int64)
        full_edges = int(stats.get("n_bins") or 0) + 1
        categorical = frozenset(n for n in names if isinstance(features.get(n), Mapping)
                                and features[n].get("kind") == "categorical")
        for j, name in enumerate(names):
            count = features.get(name, {}).get("count") if isinstance(features.get(name), Mapping) else None
            if isinstance(count, int | float) and math.isfinite(count) and count > 0:
                n_train[j] = int(count)
        for j, item in enumerate(parsed):
            if item is None:
                continue
            feature_edges, hist, below, above, missing_rate = item
            if n_train[j] > 0 and feature_edges.size == full_edges and names[j] not in categorical:
                # Training data never falls outside its own min and max, but a new value from a continuous
                # distribution does with probability 1/(m+1) on each side (order statistics): expecting 0
                # there would turn every such value into a large PSI term. Only for features whose edges
                # did not collapse (a discrete or constant feature has ties and no such tail).
                below = max(below, 1.0 / (n_train[j] + 1))
                above = max(above, 1.0 / (n_train[j] + 1))
            edges[j, :feature_edges.size] = feature_edges
            n_bins[j] = max(feature_edges.size - 1, 1)
            present = 1.0 - missing_rate
            expected[j, :hist.size] = hist * present
            expected[j, k] = below * present
            expected[j, k + 1] = above * present
            expected[j, k + 2] = missing_rate
            total = expected[j].sum()
            if total > 0:
                expected[j] /= total
            valid[j] = True
        return cls(feature_names=names, edges=edges, n_bins=n_bins, expected=expected, valid=valid, n_train=n_train,
                   categorical=categorical)


def _parse_feature(entry: object, where: str) -> tuple[np.ndarray, np.ndarray, float, float, float] | None:
    """(edges, hist, below, above, missing_rate) of one feature's stats; None when it had no training values."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: stats entry must be a mapping; got {type(entry).__name__}")
    if entry.get("kind") == "categorical":
        # category frequencies: code i is the bin [i - 0.5, i + 0.5); categories never seen in training come as
        # one code beyond the last (the "above" bucket), missing ones as NaN; PSI and chi-square then as usual
        shares = np.asarray(entry.get("shares") or [], dtype=np.float64)
        if not entry.get("count") or shares.size == 0:
            return None
        entry = {**entry, "edges": (np.arange(shares.size + 1) - 0.5).tolist(), "hist": shares.tolist(),
                 "below": 0.0, "above": 0.0}
    edges = np.asarray(entry.get("edges") or [], dtype=np.float64)
    hist = np.asarray(entry.get("hist") or [], dtype=np.float64)
    if edges.size == 0:
        return None
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) < 0):
        raise ValueError(f"{where}: edges must be >= 2 finite ascending numbers; got {edges.tolist()[:12]}")
    if hist.shape != (edges.size - 1,) or not np.all(np.isfinite(hist)) or np.any(hist < 0):
        raise ValueError(f"{where}: hist must hold {edges.size - 1} shares >= 0; got {hist.tolist()[:12]}")
    below, above, missing = (float(entry.get(key) or 0.0) for key in ("below", "above", "missing_rate"))
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (below, above, missing)):
        raise ValueError(f"{where}: below/above/missing_rate must be shares in [0, 1]; got {below}, {above}, {missing}")
    return edges, hist, below, above, missing


def bucket_counts(X: np.ndarray, reference: DriftReference) -> np.ndarray:
    """Counts (F, K+3) of the rows of ``X`` (n, F), feature order of the reference, per bucket.

    Same rule as the training histogram: ``[e_i, e_(i+1))``, the last bin closed, values beyond the edges
    in below/above, NaN in missing. Each row of the result sums to ``n``.
    """
    X = np.asarray(X, dtype=np.float64)
    n_features = len(reference.feature_names)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X must be shaped (n, {n_features}); got {X.shape}")
    k = reference.k
    width = k + 3
    out = np.zeros(n_features * width, dtype=np.int64)
    offsets = np.arange(n_features) * width
    first = reference.edges[:, 0]
    last = reference.edges[np.arange(n_features), reference.n_bins]
    top = reference.n_bins - 1
    for start in range(0, X.shape[0], _ROW_CHUNK):
        block = X[start:start + _ROW_CHUNK]
        # Edges <= value, counted by broadcasting: one comparison per (row, feature, edge), no Python loop.
        # Padding edges are +inf, so they never count for a finite value.
        at_or_above = (block[:, :, None] >= reference.edges[None, :, :]).sum(axis=2)
        index = np.minimum(at_or_above - 1, top[None, :])
        bucket = np.where(block < first, k, np.where(block > last, k + 1, index))
        bucket = np.where(np.isnan(block), k + 2, bucket)
        out += np.bincount((bucket + offsets[None, :]).ravel(), minlength=n_features * width)
    return out.reshape(n_features, width)


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float | None
    ks: float | None
    missing_rate: float | None
    expected_missing_rate: float
    p_value: float | None = None
    """Chi-square test of live versus training counts: small means the gap is more than sampling noise."""
    ks_critical: float | None = None
    unseen_rate: float | None = None
    """Categorical features: share of live values that are categories never seen in training."""


@dataclass(frozen=True)
class DriftSnapshot:
    """One evaluated window of one (model, segment, version); what goes on the ``model-drift`` topic."""

    model: str
    segment: str
    version: int
    window_start: float
    window_end: float
    n: int
    features: tuple[FeatureDrift, ...]

    @property
    def max_psi(self) -> float | None:
        values = [f.psi for f in self.features if f.psi is not None]
        return max(values) if values else None

    @property
    def max_ks(self) -> float | None:
        values = [f.ks for f in self.features if f.ks is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "segment": self.segment, "version": self.version,
            "window": {"start": self.window_start, "end": self.window_end, "n": self.n},
            "max_psi": self.max_psi, "max_ks": self.max_ks,
            "features": {f.name: {"psi": f.psi, "ks": f.ks, "missing_rate": f.missing_rate,
                                  "expected_missing_rate": f.expected_missing_rate, "p_value": f.p_value,
                                  "ks_critical": f.ks_critical,
                                  **({"unseen_rate": f.unseen_rate} if f.unseen_rate is not None else {})}
                         for f in self.features},
        }


@dataclass(frozen=True)
class DriftAlert:
    """A statistic of one feature crossing its threshold (upwards) in one window: the ``model-alerts`` payload."""

    model: str
    segment: str
    version: int
    feature: str
    statistic: str
    value: float
    threshold: float
    window: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "drift", "model": self.model, "segment": self.segment, "version": self.version,
                "feature": self.feature, "statistic": self.statistic, "value": self.value,
                "threshold": self.threshold, "window": self.window}


@dataclass
class DriftWindow:
    """Live bucket counts of one (model, segment, version) since the last evaluation: fixed-size arrays."""

    reference: DriftReference
    started_at: float
    counts: np.ndarray = field(init=False)
    n: int = 0
    alerting: set[tuple[str, str]] = field(default_factory=set)
    """(feature, statistic) pairs above threshold at the last evaluation: an alert fires on the way up only."""

    def __post_init__(self) -> None:
        self.counts = np.zeros((len(self.reference.feature_names), self.reference.n_buckets), dtype=np.int64)

    def add(self, X: np.ndarray) -> None:
        if X.shape[0]:
            self.counts += bucket_counts(X, self.reference)
            self.n += int(X.shape[0])

    def evaluate(self, now: float) -> tuple[tuple[FeatureDrift, ...], float, int]:
        """Per-feature drift of the window so far, then a fresh window starting at ``now``."""
        ref = self.reference
        psi_values = psi(ref.expected, self.counts)
        ks_values = ks(ref.expected, self.counts)
        n_train = ref.n_train if ref.n_train.shape == (len(ref.feature_names),) else np.zeros(
            len(ref.feature_names), dtype=np.int64)
        p_values, ks_critical = homogeneity(ref.expected, self.counts, n_train)
        live_missing = self.counts[:, ref.k + 2] / max(self.n, 1)
        features = tuple(
            FeatureDrift(
                name=name,
                psi=_finite(psi_values[j]) if ref.valid[j] else None,
                ks=_finite(ks_values[j]) if ref.valid[j] else None,
                missing_rate=float(live_missing[j]) if self.n else None,
                expected_missing_rate=float(ref.expected[j, ref.k + 2]),
                p_value=_finite(p_values[j]) if ref.valid[j] else None,
                ks_critical=_finite(ks_critical[j]) if ref.valid[j] else None,
                unseen_rate=float(self.counts[j, ref.k + 1] / self.n) if name in ref.categorical and self.n else None,
            )
            for j, name in enumerate(ref.feature_names)
        )
        started, n = self.started_at, self.n
        self.counts[:] = 0
        self.n = 0
        self.started_at = now
        return features, started, n


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


@dataclass(frozen=True)
class DriftConfig:
    every_events: int = 1000
    """Evaluate a window once it holds this many events..."""
    every_seconds: float = 60.0
    """...or once it is this old and holds at least ``min_events``."""
    min_events: int = 200
    """Fewer events make PSI noise, not signal: a young window keeps accumulating past ``every_seconds``."""
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    ks_threshold: float = DEFAULT_KS_THRESHOLD
    significance: float | None = 0.001
    """A PSI alert also needs the chi-square p-value of live versus training counts below this, and a KS alert
    the KS above its critical value at level ``KS_ALPHA`` (see ``homogeneity``), so that small windows and small
    training sets do not cry wolf; None: thresholds only."""
    max_keys: int = 20_000
    """Windows kept at once; the least recently fed one is dropped beyond this (memory stays bounded)."""

    def __post_init__(self) -> None:
        if self.significance is not None and not 0.0 < self.significance < 1.0:
            raise ValueError(f"significance must be strictly between 0 and 1 (or None); got {self.significance}")
        if self.every_events < 1 or self.min_events < 1 or self.every_seconds <= 0 or self.max_keys < 1:
            raise ValueError(f"drift config needs every_events, min_events, max_keys >= 1 and every_seconds > 0; "
                             f"got {self}")


class DriftMonitor:
    """Windows for every served (model, segment, version), evaluated every N events or T seconds.

    Memory: at most ``max_keys`` windows, each an (F, K+3) int64 array, e.g. 20 features x 13 buckets =
    2 KB, so 20,000 segments cost about 40 MB whatever the traffic. References are given by the caller
    (the worker looks them up in the store once per version); rows for a key without one are counted in
    ``unreferenced`` and skipped.
    """

    def __init__(self, config: DriftConfig | None = None, *, clock: Any = time.time) -> None:
        self.config = config or DriftConfig()
        self._clock = clock
        self._windows: OrderedDict[Key, DriftWindow] = OrderedDict()
        self.unreferenced = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._windows)

    def has(self, key: Key) -> bool:
        return key in self._windows

    def set_reference(self, key: Key, reference: DriftReference) -> None:
        """Start (or restart) the window of ``key`` against ``reference``."""
        self._windows[key] = DriftWindow(reference, started_at=self._clock())
        self._windows.move_to_end(key)
        while len(self._windows) > self.config.max_keys:
            self._windows.popitem(last=False)
            self.evicted += 1

    def forget(self, key: Key) -> None:
        self._windows.pop(key, None)

    def observe(self, key: Key, X: np.ndarray) -> tuple[DriftSnapshot | None, list[DriftAlert]]:
        """Count a batch of rows; evaluate the window when it is due. Returns (snapshot or None, alerts)."""
        window = self._windows.get(key)
        if window is None:
            self.unreferenced += int(X.shape[0])
            return None, []
        self._windows.move_to_end(key)
        window.add(X)
        now = self._clock()
        if self._due(window, now):
            return self._evaluate(key, window, now)
        return None, []

    def due(self) -> Iterable[tuple[DriftSnapshot, list[DriftAlert]]]:
        """Evaluate every window that is old enough (for a periodic timer: quiet segments still report)."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if self._due(window, now):
                snapshot, alerts = self._evaluate(key, window, now)
                yield snapshot, alerts

    def _due(self, window: DriftWindow, now: float) -> bool:
        cfg = self.config
        old_enough = now - window.started_at >= cfg.every_seconds
        return window.n >= cfg.every_events or (window.n >= cfg.min_events and old_enough)

    def _evaluate(self, key: Key, window: DriftWindow, now: float) -> tuple[DriftSnapshot, list[DriftAlert]]:
        features, started, n = window.evaluate(now)
        model, segment, version = key
        snapshot = DriftSnapshot(model, segment, version, started, now, n, features)
        alerts: list[DriftAlert] = []
        above: set[tuple[str, str]] = set()
        for feature in features:
            significant = (self.config.significance is None or feature.p_value is None
                           or feature.p_value < self.config.significance)
            ks_threshold = self.config.ks_threshold
            if self.config.significance is not None and feature.ks_critical is not None:
                ks_threshold = max(ks_threshold, feature.ks_critical)
            psi_value = feature.psi if significant else None
            for statistic, value, threshold in (("psi", psi_value, self.config.psi_threshold),
                                                ("ks", feature.ks, ks_threshold)):
                if value is None or value < threshold:
                    continue
                above.add((feature.name, statistic))
                if (feature.name, statistic) not in window.alerting:
                    alerts.append(DriftAlert(model, segment, version, feature.name, statistic, value, threshold,
                                             {"start": started, "end": now, "n": n}))
        window.alerting = above
        return snapshot, alerts
