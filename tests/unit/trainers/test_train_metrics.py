"""Holdout metrics agree with scikit-learn's and say None where a metric is undefined."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from trainers.metrics import binary_auc, classification_metrics, regression_metrics


def _proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    raw = rng.random((n, k)) + 1e-3
    return raw / raw.sum(axis=1, keepdims=True)


def test_binary_metrics_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.choice(np.array(["no", "yes"]), size=200)
    proba = _proba(rng, 200, 2)
    proba[:20] = [0.5, 0.5]  # ties in the score
    got = classification_metrics(y, proba, ["no", "yes"])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", proba[:, 1]), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["no", "yes"]), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, np.array(["no", "yes"])[proba.argmax(1)]))
    assert got["n"] == 200


def test_multiclass_auc_is_macro_one_vs_rest(rng: np.random.Generator) -> None:
    y = rng.integers(0, 4, size=300)
    proba = _proba(rng, 300, 4)
    got = classification_metrics(y, proba, [0, 1, 2, 3])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]), abs=1e-12)


def test_auc_is_none_with_one_class_in_holdout(rng: np.random.Generator) -> None:
    proba = _proba(rng, 10, 2)
    got = classification_metrics(np.ones(10, dtype=int), proba, [0, 1])
    assert got["roc_auc"] is None
    assert got["log_loss"] == pytest.approx(-np.mean(np.log(proba[:, 1])))
    assert binary_auc(np.array([True, True]), np.array([0.1, 0.2])) is None
    # Multiclass with a single class present: also undefined.
    assert classification_metrics(np.zeros(5, dtype=int), _proba(rng, 5, 3), [0, 1, 2])["roc_auc"] is None


def test_perfect_and_inverted_rankings() -> None:
    y = np.array([0, 0, 1, 1])
    assert binary_auc(y == 1, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert binary_auc(y == 1, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert binary_auc(y == 1, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5


def test_log_loss_clips_zero_probabilities_like_sklearn() -> None:
    y = np.array([0, 1])
    proba = np.array([[0.0, 1.0], [1.0, 0.0]])
    got = classification_metrics(y, proba, [0, 1])
    assert np.isfinite(got["log_loss"])
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1]))
    assert got["accuracy"] == 0.0


def test_regression_metrics_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.normal(size=100)
    pred = y + rng.normal(scale=0.3, size=100)
    got = regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), abs=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), abs=1e-12)
    assert regression_metrics(np.ones(4), np.zeros(4))["r2"] is None
    assert regression_metrics(np.empty(0), np.empty(0)) == {"rmse": None, "mae": None, "r2": None, "n": 0}


def test_shape_mismatch_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        classification_metrics(np.zeros(3), _proba(rng, 3, 3), [0, 1])
    with pytest.raises(ValueError, match="shaped"):
        regression_metrics(np.zeros(3), np.zeros(4))
