"""Exporters for scikit-learn's VotingClassifier/VotingRegressor and StackingClassifier/StackingRegressor
-> arch ``ensemble`` with embedded members (see scorer/models/ensemble.py).

Each fitted member (``estimators_``) is exported with ``trainers.export`` (so any supported estimator or
Pipeline can be a member) and stored under ``m{i}/``; the stacking final estimator under ``meta/``.
scikit-learn fits members on label-encoded targets, whose classes 0..k-1 are the ensemble's sorted
``classes_`` in the same order, so members are stored with the ensemble's labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor

from scorer.errors import UnsupportedModel
from scorer.models.ensemble import META_ARCHS, stack_feature_names
from trainers.export import Exported, export, register_exporter


def _members(est: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    name = type(est).__name__
    specs: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for i, member in enumerate(est.estimators_):
        try:
            weights = export(member)
        except UnsupportedModel as exc:
            raise UnsupportedModel(f"cannot export {name}: member {i}: {exc}") from None
        if weights.arch == "ensemble":
            raise UnsupportedModel(f"cannot export {name}: member {i} is itself an ensemble (no nesting)")
        specs.append({"kind": "embedded", "arch": weights.arch, "metadata": dict(weights.metadata)})
        arrays.update({f"m{i}/{k}": v for k, v in weights.arrays.items()})
    return specs, arrays


def _weights(est: Any, n: int) -> np.ndarray:
    weights = est._weights_not_none  # the weights of the members not dropped, as scikit-learn averages them
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


@register_exporter(VotingClassifier)
def export_voting_classifier(est: Any) -> Exported:
    """Soft voting averages probabilities; hard voting outputs each class's share of the weighted votes."""
    specs, arrays = _members(est)
    arrays["weights"] = _weights(est, len(specs))
    combine = "soft-vote" if est.voting == "soft" else "vote"
    return Exported("ensemble", arrays, tuple(est.classes_), {"combine": combine, "members": specs})


@register_exporter(VotingRegressor)
def export_voting_regressor(est: Any) -> Exported:
    """The weighted mean of the members' predictions."""
    specs, arrays = _members(est)
    arrays["weights"] = _weights(est, len(specs))
    return Exported("ensemble", arrays, None, {"combine": "mean", "members": specs})


def _stacking(est: Any, classes: tuple | None) -> Exported:
    name = type(est).__name__
    wanted = "predict_proba" if classes is not None else "predict"
    bad = [m for m in est.stack_method_ if m != wanted]
    if bad:
        raise UnsupportedModel(f"cannot export {name} with stack_method {bad[0]!r}; only {wanted!r} is supported "
                               "(the default 'auto' picks it for every supported member)")
    specs, arrays = _members(est)
    n_features = int(est.n_features_in_)
    inputs = tuple(f"x{i}" for i in range(n_features)) if est.passthrough else ()
    names = stack_feature_names(len(specs), classes, inputs)
    try:
        meta = export(est.final_estimator_, feature_names=names)
    except UnsupportedModel as exc:
        raise UnsupportedModel(f"cannot export {name}: final estimator: {exc}") from None
    if meta.arch not in META_ARCHS:
        raise UnsupportedModel(f"cannot export {name}: final estimator exports as {meta.arch!r}; the meta-model "
                               f"must be one of {', '.join(META_ARCHS)}")
    arrays.update({f"meta/{k}": v for k, v in meta.arrays.items()})
    stack = {"arch": meta.arch, "metadata": dict(meta.metadata), "passthrough": bool(est.passthrough)}
    return Exported("ensemble", arrays, classes, {"combine": "stack", "members": specs, "stack": stack})


@register_exporter(StackingClassifier)
def export_stacking_classifier(est: Any) -> Exported:
    """Members' probabilities (binary: without the first column), optionally the inputs, into the meta-model."""
    return _stacking(est, tuple(est.classes_))


@register_exporter(StackingRegressor)
def export_stacking_regressor(est: Any) -> Exported:
    """Members' predictions, optionally the inputs, into the meta-model."""
    return _stacking(est, None)
