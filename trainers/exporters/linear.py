"""Exporters for linear estimators -> arch ``linear`` / ``logistic`` (see scorer/models/linear.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)

from scorer.errors import UnsupportedModel
from trainers.export import Exported, register_exporter


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


@register_exporter(LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor)
def export_linear(est: Any) -> Exported:
    """Single-target linear regression: ``X @ coef_ + intercept_``."""
    coef = _f64(est.coef_)
    if coef.ndim != 1:
        raise UnsupportedModel(
            f"cannot export {type(est).__name__} fitted on a 2-D target (coef_ shape {coef.shape}); "
            "only single-target regression is supported (fit on a 1-D y)"
        )
    intercept = _f64(est.intercept_).reshape(-1)
    if intercept.shape != (1,):
        raise UnsupportedModel(f"cannot export {type(est).__name__}: intercept_ has shape {intercept.shape}")
    return Exported(arch="linear", arrays={"coef": coef, "intercept": intercept})


def _logistic_mode(est: Any, n_classes: int) -> str:
    """How this estimator's ``predict_proba`` turns decisions into probabilities (per sklearn version)."""
    if isinstance(est, SGDClassifier):
        return "binary" if n_classes == 2 else "ovr"
    multi_class = getattr(est, "multi_class", None)  # removed in scikit-learn 1.8
    if multi_class is None:
        ovr = n_classes <= 2
    else:
        ovr = multi_class in ("ovr", "warn") or (
            multi_class in ("auto", "deprecated") and (n_classes <= 2 or est.solver == "liblinear")
        )
    if n_classes == 2:
        return "binary" if ovr else "binary-softmax"
    return "ovr" if ovr else "softmax"


@register_exporter(LogisticRegression, LogisticRegressionCV, SGDClassifier)
def export_logistic(est: Any) -> Exported:
    """Logistic probabilities; SGDClassifier only with ``loss="log_loss"`` (the others have no sigmoid)."""
    name = type(est).__name__
    if isinstance(est, SGDClassifier) and est.loss != "log_loss":
        raise UnsupportedModel(f"cannot export SGDClassifier(loss={est.loss!r}); only loss='log_loss' is supported")
    classes = tuple(est.classes_)
    if len(classes) < 2:
        raise UnsupportedModel(f"cannot export {name} fitted on a single class {list(classes)}")
    coef = _f64(est.coef_)
    intercept = _f64(est.intercept_).reshape(-1)
    mode = _logistic_mode(est, len(classes))
    return Exported(
        arch="logistic",
        arrays={"coef": coef, "intercept": intercept},
        classes=classes,
        metadata={"proba": mode},
    )
