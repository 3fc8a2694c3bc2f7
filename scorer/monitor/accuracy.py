"""Live accuracy: rolling metrics per (model, segment, version) over the last W labelled outcomes.

Each tracked key owns a ring buffer of (score, truth) pairs; the metrics are exact over the ring (AUC and
binary log loss from scikit-learn). A ring starts small and doubles up to its capacity, so a
segment that sees ten labels holds ten rows, and the registry keeps at most ``max_keys`` rings (least
recently fed dropped), so memory is bounded by ``max_keys * capacity * 16`` bytes whatever the traffic.

What a pair holds depends on the task:

- binary classifier: (P(positive class), 1.0 if the label is the positive class else 0.0);
- multiclass: (P(true class), 1.0 if the most probable class is the label else 0.0);
- regressor: (prediction, observed value).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LOG_EPSILON = float(np.finfo(np.float64).eps)
"""Probabilities are clipped to [eps, 1 - eps] in the log loss, as scikit-learn does."""
BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy"})


def task_of(classes: Sequence[Any] | None) -> str:
    if classes is None:
        return REGRESSION
    return BINARY if len(classes) == 2 else MULTICLASS


def auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC (scikit-learn's); None with a single class present, where it is undefined (not 0.5).

    The one AUC of the project: live accuracy, training holdout metrics and the demo report all use it.
    """
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == positive.size:
        return None
    return float(roc_auc_score(positive, np.asarray(score, dtype=np.float64)))


def metrics_of(task: str, score: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Metrics of (score, truth) pairs laid out as in the module docstring; ``n`` always, others None if empty."""
    n = int(score.size)
    if task == REGRESSION:
        if n == 0:
            return {"n": 0, "rmse": None, "mae": None}
        error = score - truth
        return {"n": n, "rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
    if n == 0:
        return {"n": 0, "roc_auc": None, "log_loss": None, "accuracy": None}
    if task == BINARY:
        from sklearn.metrics import log_loss

        p = np.clip(score, LOG_EPSILON, 1 - LOG_EPSILON)
        positive = truth > 0.5
        return {
            "n": n,
            "roc_auc": auc(positive, score),
            "log_loss": float(log_loss(positive, np.column_stack([1.0 - p, p]), labels=[False, True])),
            # argmax of [1 - p, p] picks the negative class on a tie, as predict() does
            "accuracy": float(np.mean((score > 0.5) == positive)),
        }
    p_true = np.clip(score, LOG_EPSILON, 1 - LOG_EPSILON)
    return {"n": n, "roc_auc": None, "log_loss": float(-np.mean(np.log(p_true))), "accuracy": float(np.mean(truth))}


def outcome(task: str, prediction: Any, truth: Any, classes: Sequence[Any] | None) -> tuple[float, float] | None:
    """The (score, truth) pair of one prediction and its observed label/value; None if they cannot be paired.

    ``prediction`` is the prediction message's field: P(classes[1]) for a binary classifier, the list of
    class probabilities for a multiclass one, the value for a regressor. ``truth`` is the label (classifiers)
    or value (regressors); a label the model does not know yields None (counted by the caller).
    """
    try:
        if task == REGRESSION:
            value, predicted = float(truth), float(prediction)
            return (predicted, value) if math.isfinite(value) and math.isfinite(predicted) else None
        assert classes is not None
        column = class_index(truth, classes)
        if column is None:
            return None
        if task == BINARY:
            p = float(prediction)
            return (p, 1.0 if column == 1 else 0.0) if 0.0 <= p <= 1.0 else None
        probabilities = [float(v) for v in prediction]
        if len(probabilities) != len(classes):
            return None
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return probabilities[column], 1.0 if best == column else 0.0
    except (TypeError, ValueError):
        return None


def class_index(label: Any, classes: Sequence[Any]) -> int | None:
    """Column of ``label`` among ``classes``, tolerant of JSON's types (1 vs 1.0 vs "1", true vs 1)."""
    for j, cls in enumerate(classes):
        if label == cls and type(label) is not bool and type(cls) is not bool:
            return j
    for j, cls in enumerate(classes):
        if str(label).lower() == str(cls).lower():
            return j
        try:
            if float(label) == float(cls):
                return j
        except (TypeError, ValueError):
            continue
    return None


class RollingWindow:
    """The last ``capacity`` (score, truth) pairs of one key, in a ring that grows by doubling."""

    __slots__ = ("task", "capacity", "_data", "_next", "_size", "total")

    def __init__(self, task: str, capacity: int, initial: int = 64) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.task = task
        self.capacity = capacity
        self._data = np.empty((min(initial, capacity), 2), dtype=np.float64)
        self._next = 0
        self._size = 0
        self.total = 0
        """Outcomes ever added (the ring keeps the last ``capacity``)."""

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    def add(self, score: float, truth: float) -> None:
        if self._size == self._data.shape[0] and self._size < self.capacity:
            # Not yet wrapped (a ring only wraps at full capacity), so the rows are in insertion order.
            grown = np.empty((min(self._size * 2, self.capacity), 2), dtype=np.float64)
            grown[:self._size] = self._data
            self._data = grown
            self._next = self._size
        self._data[self._next] = (score, truth)
        self._next = (self._next + 1) % self._data.shape[0]
        self._size = min(self._size + 1, self.capacity)
        self.total += 1

    def pairs(self) -> np.ndarray:
        """The pairs held, oldest first, shaped (n, 2)."""
        if self._size < self._data.shape[0]:
            return self._data[:self._size].copy()
        return np.roll(self._data, -self._next, axis=0)

    def metrics(self) -> dict[str, Any]:
        data = self.pairs()
        return metrics_of(self.task, data[:, 0], data[:, 1])


@dataclass(frozen=True)
class MetricsConfig:
    window: int = 500
    """Outcomes per (model, segment, version) that the rolling metrics cover."""
    max_keys: int = 20_000
    """Keys kept at once (least recently fed dropped): bounds memory at max_keys * window * 16 bytes."""


class LiveMetrics:
    """Rolling windows for every (model, segment, version) with labelled outcomes."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self._windows: OrderedDict[tuple[str, str, int], RollingWindow] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._windows)

    def add(self, key: tuple[str, str, int], task: str, score: float, truth: float) -> RollingWindow:
        window = self._windows.get(key)
        if window is None or window.task != task:
            window = self._windows[key] = RollingWindow(task, self.config.window)
            while len(self._windows) > self.config.max_keys:
                self._windows.popitem(last=False)
                self.evicted += 1
        self._windows.move_to_end(key)
        window.add(score, truth)
        return window

    def get(self, key: tuple[str, str, int]) -> RollingWindow | None:
        return self._windows.get(key)

    def keys(self) -> list[tuple[str, str, int]]:
        return list(self._windows)

    @property
    def nbytes(self) -> int:
        return sum(window.nbytes for window in self._windows.values())


def better(metric: str, candidate: float, live: float, margin: float) -> bool:
    """Does ``candidate`` beat ``live`` on ``metric`` by at least ``margin`` (absolute)?"""
    if metric in LOWER_IS_BETTER:
        return candidate <= live - margin
    if metric in HIGHER_IS_BETTER:
        return candidate >= live + margin
    raise ValueError(f"unknown metric {metric!r}; known: {sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)}")
