"""Exporter for MLPClassifier/MLPRegressor -> arch ``mlp`` (see scorer/models/mlp.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor

from scorer.errors import UnsupportedModel
from trainers.export import Exported, register_exporter


@register_exporter(MLPClassifier, MLPRegressor)
def export_mlp(est: Any) -> Exported:
    """Layers as coef{i}/intercept{i}; the activations by scikit-learn's names."""
    name = type(est).__name__
    arrays: dict[str, np.ndarray] = {}
    for i, (coef, intercept) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        arrays[f"coef{i}"] = np.ascontiguousarray(coef, dtype=np.float64)
        arrays[f"intercept{i}"] = np.ascontiguousarray(intercept, dtype=np.float64)
    classes = None
    if isinstance(est, MLPClassifier):
        classes = tuple(est.classes_)
        if len(classes) < 2:
            raise UnsupportedModel(f"cannot export {name} fitted on a single class {list(classes)}")
    elif est.n_outputs_ != 1:
        raise UnsupportedModel(f"cannot export {name} with {est.n_outputs_} outputs; only single-target regression")
    return Exported(
        arch="mlp",
        arrays=arrays,
        classes=classes,
        metadata={"activation": est.activation, "out_activation": est.out_activation_},
    )
