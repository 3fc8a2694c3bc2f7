"""Holdout metrics, JSON-able: floats, ints, or None where a metric is undefined (an AUC with one class
present, an R2 with constant targets). The AUC is scikit-learn's (``scorer.monitor.accuracy.auc``); the log
loss is scikit-learn's formula, extended to holdout labels the model never saw (scikit-learn refuses those).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scorer.monitor.accuracy import auc


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of ``score`` for the boolean ``positive``; None when only one class is present."""
    return auc(positive, score)


def roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> float | None:
    """Binary AUC of the second class, or the macro one-vs-rest AUC over the classes present in ``y_true``.

    None when fewer than two classes are present (the AUC is undefined, not 0.5).
    """
    classes = list(classes)
    if len(classes) == 2:
        return binary_auc(y_true == classes[1], proba[:, 1])
    aucs = [binary_auc(y_true == cls, proba[:, j]) for j, cls in enumerate(classes)]
    defined = [auc for auc in aucs if auc is not None]
    return float(np.mean(defined)) if len(defined) >= 2 else None


def log_loss(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> float | None:
    """Mean negative log-likelihood, probabilities clipped to [eps, 1-eps] like scikit-learn.

    Rows whose label is not among ``classes`` get the clipped floor probability (the model cannot name them).
    """
    if y_true.size == 0:
        return None
    eps = np.finfo(np.float64).eps
    column = _class_columns(y_true, classes)
    picked = np.where(column >= 0, proba[np.arange(y_true.size), np.maximum(column, 0)], 0.0)
    return float(-np.mean(np.log(np.clip(picked, eps, 1 - eps))))


def accuracy(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> float | None:
    """Share of rows whose most probable class (first on ties, as ``argmax``) is the label."""
    if y_true.size == 0:
        return None
    predicted = np.argmax(proba, axis=1)
    return float(np.mean(predicted == _class_columns(y_true, classes)))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """``roc_auc``, ``log_loss``, ``accuracy`` and ``n`` for class probabilities shaped (n, len(classes))."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (y_true.size, len(classes)):
        raise ValueError(f"proba must be shaped ({y_true.size}, {len(classes)}); got {proba.shape}")
    return {
        "roc_auc": roc_auc(y_true, proba, classes),
        "log_loss": log_loss(y_true, proba, classes),
        "accuracy": accuracy(y_true, proba, classes),
        "n": int(y_true.size),
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``rmse``, ``mae``, ``r2`` (None when the targets are constant or there are none) and ``n``."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    if predicted.shape != y_true.shape:
        raise ValueError(f"predictions must be shaped ({y_true.size},); got {predicted.shape}")
    if y_true.size == 0:
        return {"rmse": None, "mae": None, "r2": None, "n": 0}
    error = predicted - y_true
    ss_res = float(np.sum(error**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(ss_res / y_true.size)),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else None,
        "n": int(y_true.size),
    }


def _class_columns(y_true: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Column index of each label in ``classes``, -1 for a label the model does not know."""
    index = {cls: j for j, cls in enumerate(classes)}
    return np.fromiter((index.get(label, -1) for label in y_true.tolist()), dtype=np.int64, count=y_true.size)
