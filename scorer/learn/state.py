"""A learning model's version: ordinary ``linear``/``logistic`` weights plus the learner's state beside them.

Scoring workers read ``coef``/``intercept`` (the weights scikit-learn would serve, the averages once
averaging has begun) and nothing else; the learner also reads

- arrays ``learn.coef`` (rows, n_inputs), ``learn.intercept`` (rows,) — the running weights;
  ``learn.avg_coef``, ``learn.avg_intercept`` — the averages; ``learn.t`` (1,) — scikit-learn's ``t_``;
- ``metadata["learner"]``: ``{"kind": "sgd", "params": {...SGDParams}, "labels": n, "offsets":
  {"<topic>/<partition>": next offset}}``, the label-topic position this version includes.

Rows: one for a binary classifier (class 1 against 0) or a regressor, one per class (one-vs-rest) for
more classes. The stored preprocessing (imputer, scaler, encoders) is kept as is: learning happens behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.errors import ConfigError, InvalidWeights
from scorer.learn.bank import LearnerState
from scorer.learn.sgd import REGRESSION_LOSSES, SGDParams
from scorer.models import ModelWeights

STATE_ARRAYS = ("learn.coef", "learn.intercept", "learn.avg_coef", "learn.avg_intercept", "learn.t")


@dataclass(frozen=True)
class Learnable:
    """What the learner needs of a version: how to learn, where it stands, and which labels it holds."""

    params: SGDParams
    state: LearnerState
    offsets: Mapping[str, int] = field(default_factory=dict)
    labels: int = 0
    warm: bool = False
    """True when the version had no learner state (its weights are the warm start, t = 1)."""
    paused: bool = False
    """Cut while a human had paused the segment: a restart keeps it paused until resumed."""


def learnable(weights: ModelWeights, default: SGDParams | None = None) -> Learnable:
    """Read a version's learner state, or start one from its weights (``default`` params). Raises
    InvalidWeights/ConfigError for a version that cannot learn (another arch, a softmax model, bad state)."""
    coef, intercept = _served(weights)
    rows, width = coef.shape
    meta = weights.metadata.get("learner")
    if meta is None:
        params = default or _default_params(weights)
        _check_fit(weights, params)
        state = LearnerState(coef.copy(), intercept.copy(), np.zeros_like(coef), np.zeros_like(intercept))
        return Learnable(params, state, warm=True)
    if not isinstance(meta, Mapping) or meta.get("kind") != "sgd":
        raise InvalidWeights(f"learner metadata must be an object with kind 'sgd'; got {meta!r}")
    params = SGDParams.from_json(meta.get("params") or {})
    _check_fit(weights, params)
    arrays = {}
    for name in STATE_ARRAYS:
        if name not in weights.arrays:
            raise InvalidWeights(f"learner state lacks array {name!r}")
        arr = np.asarray(weights.arrays[name], dtype=np.float64)
        if not np.isfinite(arr).all():
            raise InvalidWeights(f"learner array {name!r} has non-finite values")
        arrays[name] = arr
    for name, shape in (("learn.coef", (rows, width)), ("learn.avg_coef", (rows, width)),
                        ("learn.intercept", (rows,)), ("learn.avg_intercept", (rows,)), ("learn.t", (1,))):
        if arrays[name].shape != shape:
            got = list(arrays[name].shape)
            raise InvalidWeights(f"learner array {name!r} must have shape {list(shape)}; got {got}")
    offsets = meta.get("offsets") or {}
    if not isinstance(offsets, Mapping) or not all(isinstance(v, int) and v >= 0 for v in offsets.values()):
        raise InvalidWeights(f"learner offsets must map 'topic/partition' to offsets; got {offsets!r}")
    t = float(arrays["learn.t"][0])
    if t < 1:
        raise InvalidWeights(f"learner step count t must be >= 1; got {t}")
    state = LearnerState(arrays["learn.coef"].copy(), arrays["learn.intercept"].copy(),
                         arrays["learn.avg_coef"].copy(), arrays["learn.avg_intercept"].copy(), t)
    return Learnable(params, state, dict(offsets), int(meta.get("labels", 0)), paused=bool(meta.get("paused")))


def checkpoint(base: ModelWeights, learned: Learnable) -> ModelWeights:
    """New weights: ``base`` (features, classes, preprocessing) with the learned weights served and the
    learner state stored beside them."""
    coef, intercept = learned.state.served(learned.params)
    arrays = {name: arr for name, arr in base.arrays.items() if not name.startswith("learn.")}
    if base.arch == "linear":
        arrays["coef"], arrays["intercept"] = coef[0].copy(), intercept.copy()
    else:
        arrays["coef"], arrays["intercept"] = coef.copy(), intercept.copy()
    state = learned.state
    arrays.update({"learn.coef": state.coef, "learn.intercept": state.intercept, "learn.avg_coef": state.avg_coef,
                   "learn.avg_intercept": state.avg_intercept, "learn.t": np.array([state.t])})
    metadata: dict[str, Any] = dict(base.metadata)
    metadata["learner"] = {"kind": "sgd", "params": learned.params.to_json(), "labels": int(learned.labels),
                           "offsets": dict(sorted(learned.offsets.items()))}
    if learned.paused:
        metadata["learner"]["paused"] = True
    if base.arch == "logistic":
        metadata["proba"] = "binary" if coef.shape[0] == 1 else "ovr"
    metadata["estimator"] = "SGDClassifier" if base.arch == "logistic" else "SGDRegressor"
    return ModelWeights(arch=base.arch, feature_names=base.feature_names, arrays=arrays, classes=base.classes,
                        metadata=metadata)


def _served(weights: ModelWeights) -> tuple[np.ndarray, np.ndarray]:
    if weights.arch not in ("linear", "logistic"):
        raise UnsupportedArch(f"only linear and logistic versions can learn online; this one is {weights.arch!r}")
    if weights.arch == "logistic" and weights.metadata.get("proba") not in ("binary", "ovr"):
        raise UnsupportedArch(f"a logistic version with proba {weights.metadata.get('proba')!r} cannot learn "
                              "one-vs-rest SGD (binary and ovr can)")
    coef = np.asarray(weights.arrays["coef"], dtype=np.float64)
    intercept = np.asarray(weights.arrays["intercept"], dtype=np.float64).reshape(-1)
    return (coef.reshape(1, -1) if coef.ndim == 1 else coef), intercept


def _default_params(weights: ModelWeights) -> SGDParams:
    if weights.arch == "logistic":
        return SGDParams()
    return SGDParams(loss="squared_error", learning_rate="invscaling", power_t=0.25)


def _check_fit(weights: ModelWeights, params: SGDParams) -> None:
    if weights.arch == "logistic" and params.loss != "log_loss":
        raise ConfigError(f"a logistic version learns with loss 'log_loss'; got {params.loss!r}")
    if weights.arch == "linear" and params.loss not in REGRESSION_LOSSES:
        raise ConfigError(f"a linear version learns with a regression loss {list(REGRESSION_LOSSES)}; "
                          f"got {params.loss!r}")


class UnsupportedArch(ConfigError):
    """This version's architecture cannot learn online."""
