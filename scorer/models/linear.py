"""Linear architectures: ``linear`` (regression) and ``logistic`` (classification probabilities).

Arrays: ``coef`` and ``intercept``. ``linear``: coef (n_inputs,), intercept (1,), predict ``X @ coef + b``.
``logistic``: coef (r, n_inputs), intercept (r,) like scikit-learn's ``coef_``/``intercept_``, with
``metadata["proba"]`` choosing how decisions become probabilities, as scikit-learn does:

- ``binary`` (r=1): p = expit(z), rows [1 - p, p] (LogisticRegression, SGDClassifier log_loss);
- ``binary-softmax`` (r=1): softmax of [-z, z] (multinomial LogisticRegression on two classes, sklearn < 1.8);
- ``softmax`` (r=k): softmax of z (multinomial LogisticRegression);
- ``ovr`` (r=k): expit(z) normalised to sum to 1 per row (SGDClassifier, one-vs-rest LogisticRegression).

Behind a one-hot ``columns`` step (a ColumnTransformer with OneHotEncoder) the one-hot matrix is never
built: the weights of each one-hot part become a per-category table, and a decision is the numeric inputs
times their weights plus one table lookup per categorical input (:mod:`scorer.models.onehot`); a float batch
with integer categories is scored without encoding it first.

Non-finite inputs are detected from the decision values (a NaN/inf input with a non-zero weight makes
the decision non-finite), which is far cheaper than scanning the inputs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models._numeric import ovr_proba_, softmax_
from scorer.models.base import Model
from scorer.models.categorical import SMALL_BATCH as _SMALL
from scorer.models.onehot import Direct, DirectObjects, Folded
from scorer.models.registry import register

PROBA_MODES = ("binary", "binary-softmax", "softmax", "ovr")
_exp = math.exp
_isfinite = math.isfinite
_F64 = np.dtype(np.float64)


def _rowwise_decision(X: np.ndarray, owner: np.ndarray, weights: list[np.ndarray], intercepts: list[float]
                      ) -> np.ndarray:
    """z[i] = X[i] @ weights[owner[i]] + intercepts[owner[i]]: the decisions of many models in one pass."""
    z = np.einsum("ij,ij->i", X, np.array(weights)[owner])  # np.array: a third of np.stack's time for 1,000 rows
    z += np.asarray(intercepts)[owner]
    return z


def _binary_proba(z: np.ndarray) -> np.ndarray:
    """Rows [1 - expit(z), expit(z)]; ``z`` is overwritten.

    expit is written straight into the output's second column (one pass fewer than copying it there).
    """
    out = np.empty((z.shape[0], 2))
    p = out[:, 1]
    np.negative(z, out=z)
    np.minimum(z, 709.0, out=z)
    np.exp(z, out=z)
    z += 1.0
    np.divide(1.0, z, out=p)
    np.subtract(1.0, p, out=out[:, 0])
    return out


def _fold(model: Model, coef: np.ndarray) -> Folded | None:
    """Take over the last preprocessing step when it is a one-hot layout (no dense one-hot matrix)."""
    layout = model._layout
    if layout is None or not model._steps or model._steps[-1] != layout.expand:
        return None
    model._steps.pop()
    return Folded(model, coef)


def _direct(model: Model, X: Any) -> np.ndarray | None:
    """Decisions of a folded model straight from a raw batch (floats with integer categories, or objects with
    string categories), or None: the general path (encode, then the fold) decides."""
    if type(X) is not np.ndarray or X.ndim != 2 or X.shape[0] <= _SMALL or X.shape[1] != model.n_features:
        return None
    if X.dtype is _F64:
        direct = model._direct  # type: ignore[attr-defined]
        return direct(X) if direct is not None and X.flags.c_contiguous else None
    objects = model._direct_objects  # type: ignore[attr-defined]
    return objects(X) if objects is not None and X.dtype == object else None


def _raw_paths(model: Model) -> bool:
    """Set up the direct paths of a folded model; whether it has any."""
    model._direct = Direct.build(model)  # type: ignore[attr-defined]
    model._direct_objects = DirectObjects.build(model)  # type: ignore[attr-defined]
    return model._direct is not None or model._direct_objects is not None  # type: ignore[attr-defined]


def _unfusable(model: Model) -> bool:
    """Fused kernels take raw feature rows: preprocessing must be absent or folded (with no dropped column)."""
    front = model._front
    return bool(model.categorical or model._folded or (model._steps and (front is None or front.keep is not None)))  # type: ignore[attr-defined]


def _fused_decisions(models: list[Model], X: np.ndarray, owner: np.ndarray, weights: list[np.ndarray],
                     intercepts: list[float]) -> np.ndarray:
    """``_rowwise_decision``, with rows that came out non-finite computed again by their own model's front
    (which imputes); rows of models without an imputer stay non-finite (the scorer dead-letters them)."""
    z = _rowwise_decision(X, owner, weights, intercepts)
    if _isfinite(z.sum()):
        return z
    for i in np.flatnonzero(~np.isfinite(z)).tolist():
        k = owner[i]
        front = models[k]._front
        if front is not None and front.fill is not None:
            z[i] = front.decide(X[i:i + 1], weights[k], np.asarray([intercepts[k]]), None)[0]
    return z


@register
class LinearModel(Model):
    """``X @ coef + intercept`` (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor)."""

    arch: ClassVar[str] = "linear"
    checks_own_input: ClassVar[bool] = True

    def _validate(self) -> None:
        if self.classes is not None:
            raise InvalidWeights(f"{self._what()}: a linear regressor has no classes; got {list(self.classes)}")
        self._coef = self._array("coef", shape=(self.n_inputs,))
        self._intercept = self._array("intercept", shape=(1,))
        self._b = float(self._intercept[0])
        self._folded = _fold(self, self._coef[:, np.newaxis])
        self._raw = _raw_paths(self)
        front = self._fold_front(self._coef, self._intercept) if self._folded is None else None
        if front is not None:
            self._coef, self._intercept = front
            self._b = float(self._intercept[0])

    def predict(self, X: Any) -> np.ndarray:
        if self._raw:
            z = _direct(self, X)
            if z is not None:
                y = z[:, 0]
                y += self._b
                return y
        return super().predict(X)

    def _predict_front(self, X: np.ndarray) -> np.ndarray:
        assert self._front is not None
        return self._front.decide(X, self._coef, self._intercept, self._reject_nonfinite)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        y = X.dot(self._coef) if self._folded is None else self._folded(X)[:, 0]
        y += self._b
        if not _isfinite(y.sum()):  # one reduction: NaN/inf anywhere in y makes the sum non-finite
            self._reject_nonfinite(X)
        return y

    def fuse_key(self) -> tuple | None:
        return None if _unfusable(self) else ("linear", self.n_features)

    @classmethod
    def predict_fused(cls, models: list[Model], X: np.ndarray, owner: np.ndarray) -> np.ndarray:
        return _fused_decisions(models, X, owner, [m._coef for m in models], [m._b for m in models])  # type: ignore[attr-defined]


@register
class LogisticModel(Model):
    """Class probabilities from linear decisions, exactly as scikit-learn's ``predict_proba``."""

    arch: ClassVar[str] = "logistic"
    checks_own_input: ClassVar[bool] = True

    def _validate(self) -> None:
        self._mode = self._meta("proba", str, choices=PROBA_MODES)
        coef = self._array("coef", ndim=2)
        rows = coef.shape[0]
        self._array("coef", shape=(rows, self.n_inputs))
        intercept = self._array("intercept", shape=(rows,))
        binary = self._mode in ("binary", "binary-softmax")
        if binary and rows != 1:
            raise InvalidWeights(f"{self._what()}: proba {self._mode!r} needs coef with 1 row; got {rows}")
        self._check_classes(2 if binary else rows, f"coef with {rows} row(s) and proba {self._mode!r}")
        if not binary and rows < 3:
            raise InvalidWeights(f"{self._what()}: proba {self._mode!r} is for 3+ classes; use 'binary' for 2")
        # scikit-learn's decision is X @ coef.T + intercept; keep coef.T contiguous for the matmul.
        self._coef_t = np.ascontiguousarray(coef.T)
        self._intercept = intercept
        self._w = np.ascontiguousarray(coef[0])
        self._b = float(intercept[0])
        self._scale = 2.0 if self._mode == "binary-softmax" else 1.0
        self._folded = _fold(self, self._coef_t)
        self._raw = _raw_paths(self)
        front = self._fold_front(self._coef_t, intercept) if self._folded is None else None
        if front is not None:  # scalers folded into the weights; the kernels below then see raw inputs
            self._coef_t, self._intercept = front
            self._w = np.ascontiguousarray(self._coef_t[:, 0])
            self._b = float(self._intercept[0])
        # Bind the kernel once so a call pays no mode dispatch.
        if self._folded is not None:
            self._predict = self._predict_folded  # type: ignore[method-assign]
        else:
            self._predict = self._predict_binary if binary else self._predict_multi  # type: ignore[method-assign]

    def predict(self, X: Any) -> np.ndarray:
        if self._raw:
            z = _direct(self, X)
            if z is not None:
                z += self._intercept
                return self._link(z)
        return super().predict(X)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._mode in ("binary", "binary-softmax"):
            return self._predict_binary(X)
        return self._predict_multi(X)

    def _predict_binary(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 1:
            # One row without array temporaries: the latency path of a streaming scorer.
            # ndarray.dot(...).item() is several times cheaper than float(X[0] @ w) for tiny inputs.
            z = X.dot(self._w).item() + self._b
            if not _isfinite(z):
                self._reject_nonfinite(X)
            return self._one_row(z)
        z = X.dot(self._w)
        z += self._b
        if not _isfinite(z.sum()):
            self._reject_nonfinite(X)
        return self._binary_rows(z)

    def _one_row(self, z: float) -> np.ndarray:
        z *= self._scale  # softmax([-z, z]) == expit(2z)
        if z >= 0.0:
            p = 1.0 / (1.0 + _exp(-z))
        else:
            e = _exp(z)
            p = e / (1.0 + e)
        out = np.empty((1, 2))
        out[0, 0] = 1.0 - p
        out[0, 1] = p
        return out

    def _binary_rows(self, z: np.ndarray) -> np.ndarray:
        if self._scale != 1.0:
            return softmax_(np.stack([-z, z], axis=1))
        return _binary_proba(z)

    def _predict_front(self, X: np.ndarray) -> np.ndarray:
        front = self._front
        assert front is not None
        if front.keep is None and self._mode in ("binary", "binary-softmax"):  # the binary kernel's own fast paths
            if X.shape[0] == 1:
                z = X.dot(self._w).item() + self._b
                if _isfinite(z):
                    return self._one_row(z)
            else:
                zs = X.dot(self._w)
                zs += self._b
                if _isfinite(zs.sum()):
                    return self._binary_rows(zs)
        return self._link(front.decide(X, self._coef_t, self._intercept, self._reject_nonfinite))

    def _predict_folded(self, X: np.ndarray) -> np.ndarray:
        z = self._folded(X)  # type: ignore[misc]
        z += self._intercept
        if not _isfinite(z.sum()):
            self._reject_nonfinite(X)
        return self._link(z)

    def _link(self, z: np.ndarray) -> np.ndarray:
        """Probabilities from decisions ``z`` (n, rows of coef) by this model's proba mode (``z`` is reused)."""
        if self._mode == "softmax":
            return softmax_(z)
        if self._mode == "ovr":
            return ovr_proba_(z)
        z = z[:, 0] * self._scale
        return _binary_proba(z)

    def fuse_key(self) -> tuple | None:
        if _unfusable(self) or self._mode not in ("binary", "binary-softmax"):
            return None
        return ("logistic-binary", self.n_features, self._scale)

    @classmethod
    def predict_fused(cls, models: list[Model], X: np.ndarray, owner: np.ndarray) -> np.ndarray:
        z = _fused_decisions(models, X, owner, [m._w for m in models], [m._b for m in models])  # type: ignore[attr-defined]
        scale = models[0]._scale  # type: ignore[attr-defined]
        if scale != 1.0:
            z *= scale  # softmax([-z, z]) == expit(2z)
        return _binary_proba(z)

    def _predict_multi(self, X: np.ndarray) -> np.ndarray:
        z = X.dot(self._coef_t)
        z += self._intercept
        if not _isfinite(z.sum()):
            self._reject_nonfinite(X)
        if self._mode == "softmax":
            return softmax_(z)
        return ovr_proba_(z)
