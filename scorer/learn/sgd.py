"""The rules of scikit-learn's SGD (``_plain_sgd``) as vectorised numpy: losses, penalties, schedules.

Everything here works on arrays of learner *rows*: one row is one binary (or regression) problem, so a
one-vs-rest classifier with k classes is k rows that see the same inputs with different targets. The
functions are pure; :mod:`scorer.learn.bank` holds the rows' state and runs the updates.

Targets, as scikit-learn encodes them: ``log_loss`` uses {0, 1} (its half-binomial gradient), the other
classification losses {-1, +1}, regression losses the raw value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scorer.errors import ConfigError

CLASSIFICATION_LOSSES = ("log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron")
REGRESSION_LOSSES = ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive")
LOSSES = CLASSIFICATION_LOSSES + REGRESSION_LOSSES
PENALTIES = ("none", "l2", "l1", "elasticnet")
SCHEDULES = ("constant", "optimal", "invscaling", "adaptive")
BOUNDED_LOSSES = ("log_loss", "hinge", "perceptron", "modified_huber", "epsilon_insensitive")
"""Losses whose gradient never exceeds a few units (the clipping below cannot change them)."""
MAX_DLOSS = 1e12
"""scikit-learn clips gradients to this magnitude."""
WSCALE_MIN = 1e-9
"""scikit-learn folds its lazy weight scale back into the weights below this (it matters for averaging)."""


@dataclass(frozen=True)
class SGDParams:
    """The hyperparameters of SGDClassifier/SGDRegressor that shape ``partial_fit`` (same names, same defaults
    except ``loss``, which defaults to the logistic one since the learner serves probabilities)."""

    loss: str = "log_loss"
    penalty: str = "l2"
    alpha: float = 1e-4
    l1_ratio: float = 0.15
    learning_rate: str = "optimal"
    eta0: float = 0.01
    power_t: float = 0.5
    epsilon: float = 0.1
    """Huber's delta and the epsilon-insensitive margin."""
    average: int = 0
    """0: no averaging; n >= 1: average the weights from the n-th update on (True is 1)."""
    fit_intercept: bool = True

    def __post_init__(self) -> None:
        penalty = "none" if self.penalty is None else str(self.penalty).lower()
        object.__setattr__(self, "penalty", penalty)
        object.__setattr__(self, "average", int(self.average))
        if self.loss not in LOSSES:
            raise ConfigError(f"sgd loss must be one of {list(LOSSES)}; got {self.loss!r}")
        if penalty not in PENALTIES:
            raise ConfigError(f"sgd penalty must be one of {list(PENALTIES)}; got {self.penalty!r}")
        if self.learning_rate not in SCHEDULES:
            raise ConfigError(f"sgd learning_rate must be one of {list(SCHEDULES)}; got {self.learning_rate!r}")
        for name in ("alpha", "l1_ratio", "eta0", "power_t", "epsilon"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"sgd {name} must be a finite number; got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.alpha < 0 or not 0.0 <= self.l1_ratio <= 1.0 or self.eta0 < 0 or self.power_t < 0 \
                or self.epsilon < 0 or self.average < 0:
            raise ConfigError(f"sgd parameters out of range: {self.to_json()}")
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ConfigError("sgd learning_rate 'optimal' needs alpha > 0")
        if self.learning_rate != "optimal" and self.eta0 == 0:
            raise ConfigError(f"sgd learning_rate {self.learning_rate!r} needs eta0 > 0")

    @property
    def classifier(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    @property
    def l1_share(self) -> float:
        """scikit-learn's effective l1_ratio: 0 for l2, 1 for l1, the parameter for elasticnet."""
        return {"l2": 0.0, "l1": 1.0, "none": 0.0}.get(self.penalty, self.l1_ratio)

    def optimal_init(self) -> float:
        """t0 of the 'optimal' schedule, chosen (as scikit-learn does) so that the first eta is typw."""
        if self.learning_rate != "optimal":
            return 0.0
        typw = float(np.sqrt(1.0 / np.sqrt(self.alpha)))
        grad = float(gradient(self.loss, np.array([1.0]), np.array([-typw]), self.epsilon)[0])
        initial_eta0 = typw / max(1.0, grad)
        return 1.0 / (initial_eta0 * self.alpha)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)  # flat scalars: asdict's deep copy costs more than a checkpoint's arrays

    def estimator_params(self) -> dict[str, Any]:
        """Keyword arguments for SGDClassifier/SGDRegressor giving the same updates (in arrival order)."""
        return {**asdict(self), "penalty": None if self.penalty == "none" else self.penalty,
                "average": self.average if self.average > 1 else bool(self.average), "shuffle": False}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SGDParams:
        if not isinstance(data, Mapping):
            raise ConfigError(f"sgd parameters must be an object; got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown sgd parameter(s) {sorted(unknown)}")
        return cls(**dict(data))

    @classmethod
    def from_estimator(cls, est: Any) -> SGDParams:
        """The parameters of a scikit-learn SGDClassifier/SGDRegressor (class weights are not supported)."""
        if getattr(est, "class_weight", None) is not None:
            raise ConfigError("sgd learner: class_weight is not supported")
        return cls(**{name: est.get_params()[name] for name in cls.__dataclass_fields__})


def encode_targets(loss: str, y: np.ndarray, n_rows: int | None) -> np.ndarray:
    """(n, rows) targets per learner row. ``n_rows`` None: a regressor, ``y`` its raw values. Otherwise ``y``
    holds class indices: row r is class r against the rest, and a binary model's single row is class 1."""
    if n_rows is None:
        return np.asarray(y, dtype=np.float64).reshape(-1, 1)
    idx = np.asarray(y, dtype=np.int64)
    hits = idx[:, None] == (np.arange(n_rows) if n_rows > 1 else np.array([1]))
    negative = 0.0 if loss == "log_loss" else -1.0
    return np.where(hits, 1.0, negative)


def gradient(loss: str, y: np.ndarray, p: np.ndarray, epsilon: np.ndarray | float) -> np.ndarray:
    """d loss / d p per row, branch for branch as scikit-learn's loss classes (not yet clipped)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if loss == "log_loss":
            e = np.exp(-p)
            g = 1 - y
            g -= y * e
            e += 1
            g /= e  # ((1 - y) - y * e) / (1 + e), as scikit-learn's half-binomial gradient
            far = p <= -37
            if far.any():
                g[far] = np.exp(p[far]) - y[far]
            return g
        if loss in ("hinge", "perceptron"):
            return np.where(p * y <= (1.0 if loss == "hinge" else 0.0), -y, 0.0)
        if loss == "squared_hinge":
            z = 1.0 - p * y
            return np.where(z > 0, -2 * y * z, 0.0)
        if loss == "modified_huber":
            z = p * y
            return np.where(z >= 1.0, 0.0, np.where(z >= -1.0, 2.0 * (1.0 - z) * -y, -4.0 * y))
        if loss == "squared_error":
            return p - y
        if loss == "huber":
            r = p - y
            return np.where(np.abs(r) <= epsilon, r, np.where(r >= 0, epsilon, -epsilon))
        if loss == "epsilon_insensitive":
            return np.where(y - p > epsilon, -1.0, np.where(p - y > epsilon, 1.0, 0.0))
        if loss == "squared_epsilon_insensitive":
            z = y - p
            return np.where(z > epsilon, -2 * (z - epsilon), np.where(z < -epsilon, 2 * (-z - epsilon), 0.0))
    raise ConfigError(f"sgd loss must be one of {list(LOSSES)}; got {loss!r}")


def learning_rate(schedule: str, t: np.ndarray, alpha: np.ndarray, eta0: np.ndarray, power_t: np.ndarray,
                  optimal_init: np.ndarray) -> np.ndarray:
    """eta for rows at step ``t`` (1-based, scikit-learn's ``t_``). In ``partial_fit`` the adaptive
    schedule never lowers eta (that needs several epochs), so it equals constant."""
    if schedule == "optimal":
        return 1.0 / (alpha * (optimal_init + t - 1))
    if schedule == "invscaling":
        return eta0 / np.power(t, power_t)
    return eta0
