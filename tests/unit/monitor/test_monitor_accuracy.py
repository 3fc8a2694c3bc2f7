"""Rolling metrics: exact over the window, same numbers as scikit-learn, bounded rings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss, mean_absolute_error, roc_auc_score

from scorer.monitor.accuracy import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    LiveMetrics,
    MetricsConfig,
    RollingWindow,
    better,
    class_index,
    outcome,
    task_of,
)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), capacity=st.integers(1, 200), seed=st.integers(0, 10_000))
def test_window_keeps_exactly_the_last_capacity_pairs(n: int, capacity: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    truth = (rng.random(n) < 0.5).astype(float)
    window = RollingWindow(BINARY, capacity, initial=4)
    for s, t in zip(scores, truth, strict=True):
        window.add(s, t)
    kept = window.pairs()
    assert kept.shape == (min(n, capacity), 2)
    assert np.array_equal(kept[:, 0], scores[-capacity:]) and np.array_equal(kept[:, 1], truth[-capacity:])
    assert window.total == n and window.nbytes <= capacity * 16


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    p = np.round(rng.random(400), 2)  # ties on purpose
    y = (rng.random(400) < p).astype(float)
    window = RollingWindow(BINARY, 1000)
    for s, t in zip(p, y, strict=True):
        window.add(s, t)
    m = window.metrics()
    assert m["n"] == 400
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, np.column_stack([1 - p, p])), abs=1e-9)
    assert m["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y == 1)))


def test_regression_and_multiclass_metrics() -> None:
    rng = np.random.default_rng(1)
    pred, value = rng.normal(size=100), rng.normal(size=100)
    window = RollingWindow(REGRESSION, 100)
    for s, t in zip(pred, value, strict=True):
        window.add(s, t)
    m = window.metrics()
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((pred - value) ** 2)))
    assert m["mae"] == pytest.approx(mean_absolute_error(value, pred))
    classes = ("a", "b", "c")
    window = RollingWindow(MULTICLASS, 10)
    for probabilities, label in (([0.7, 0.2, 0.1], "a"), ([0.2, 0.3, 0.5], "b")):
        window.add(*outcome(MULTICLASS, probabilities, label, classes))
    m = window.metrics()
    assert m["accuracy"] == 0.5 and m["log_loss"] == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    assert m["roc_auc"] is None


def test_empty_and_single_class_windows_are_undefined_not_zero() -> None:
    assert RollingWindow(BINARY, 5).metrics() == {"n": 0, "roc_auc": None, "log_loss": None, "accuracy": None}
    window = RollingWindow(BINARY, 5)
    window.add(0.9, 1.0)
    assert window.metrics()["roc_auc"] is None and window.metrics()["accuracy"] == 1.0


def test_outcome_pairs_json_labels_with_classes() -> None:
    assert task_of(None) == REGRESSION and task_of((0, 1)) == BINARY and task_of((0, 1, 2)) == MULTICLASS
    assert outcome(BINARY, 0.8, 1, (0, 1)) == (0.8, 1.0)
    assert outcome(BINARY, 0.8, "1", (0, 1)) == (0.8, 1.0)
    assert outcome(BINARY, 0.8, 0.0, (0, 1)) == (0.8, 0.0)
    assert outcome(BINARY, 0.8, "late", ("early", "late")) == (0.8, 1.0)
    assert outcome(BINARY, 0.8, True, (False, True)) == (0.8, 1.0)
    assert outcome(BINARY, 0.8, 7, (0, 1)) is None  # unknown label
    assert outcome(BINARY, "x", 1, (0, 1)) is None
    assert outcome(REGRESSION, 2.5, 3, None) == (2.5, 3.0)
    assert outcome(REGRESSION, 2.5, None, None) is None
    assert class_index(1, (True, 1)) == 1  # 1 is not True for labels


def test_registry_is_bounded_with_many_segments() -> None:
    live = LiveMetrics(MetricsConfig(window=50, max_keys=1000))
    for i in range(10_000):
        for _ in range(3):
            live.add(("m", f"s{i}", 1), BINARY, 0.5, 1.0)
    assert len(live) == 1000 and live.evicted == 9000
    assert live.nbytes <= 1000 * 50 * 16


def test_better_respects_direction_and_margin() -> None:
    assert better("log_loss", 0.30, 0.40, 0.05) and not better("log_loss", 0.38, 0.40, 0.05)
    assert better("accuracy", 0.9, 0.8, 0.05) and not better("accuracy", 0.82, 0.8, 0.05)
    with pytest.raises(ValueError, match="unknown metric"):
        better("f1", 1, 0, 0)
