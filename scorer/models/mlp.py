"""Multi-layer perceptron (``mlp``): scikit-learn's MLPClassifier/MLPRegressor forward pass.

Arrays ``coef0..coef{L-1}`` (layer i maps width_i -> width_{i+1}) and ``intercept0..intercept{L-1}``;
``metadata["activation"]`` is the hidden activation and ``metadata["out_activation"]`` the output one,
as scikit-learn names them. Output widths: regressors 1; classifiers 1 for two classes (rows become
[1 - p, p]), k for softmax over k classes, or one per label for multilabel (logistic, k outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models._numeric import expit_, softmax_
from scorer.models.base import Model
from scorer.models.registry import register


def _identity(z: np.ndarray) -> np.ndarray:
    return z


def _tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z, out=z)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0, out=z)


def _exp(z: np.ndarray) -> np.ndarray:
    return np.exp(z, out=z)


#: hidden activations scikit-learn offers
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "logistic": expit_,
    "tanh": _tanh,
    "relu": _relu,
}
#: output activations scikit-learn sets (exp: MLPRegressor(loss="poisson"))
OUT_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "exp": _exp,
    "logistic": expit_,
    "softmax": softmax_,
}
_MAX_LAYERS = 1000


@register
class MLPModel(Model):
    """Dense layers with one hidden activation, then the output activation (in place, like sklearn)."""

    arch: ClassVar[str] = "mlp"
    checks_own_input: ClassVar[bool] = True

    def _validate(self) -> None:
        act = self._meta("activation", str)
        out = self._meta("out_activation", str)
        if act not in ACTIVATIONS:
            raise InvalidWeights(f"{self._what()}: unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
        if out not in OUT_ACTIVATIONS:
            raise InvalidWeights(
                f"{self._what()}: unknown out_activation {out!r}; valid: {', '.join(OUT_ACTIVATIONS)}"
            )
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        width = self.n_inputs
        while f"coef{len(layers)}" in self.weights.arrays:
            i = len(layers)
            if i >= _MAX_LAYERS:
                raise InvalidWeights(f"{self._what()}: more than {_MAX_LAYERS} layers")
            coef = self._array(f"coef{i}", ndim=2)
            if coef.shape[0] != width:
                raise InvalidWeights(
                    f"{self._what()}: coef{i} has shape {list(coef.shape)} but layer {i} receives {width} values"
                )
            if coef.shape[1] == 0:
                raise InvalidWeights(f"{self._what()}: coef{i} has zero output units")
            width = coef.shape[1]
            layers.append((coef, self._array(f"intercept{i}", shape=(width,))))
        if not layers:
            raise InvalidWeights(f"{self._what()}: missing array 'coef0' (an MLP needs at least one layer)")
        front = self._fold_front(*layers[0])
        if front is not None:  # scalers folded into the first layer; _predict_front sees raw inputs
            layers[0] = front
        self._layers = layers
        self._hidden = ACTIVATIONS[act]
        self._out = OUT_ACTIVATIONS[out]
        self._binary = False
        if self.classes is None:
            if width != 1 or out not in ("identity", "exp"):
                raise InvalidWeights(
                    f"{self._what()}: a regressor needs 1 output with identity/exp out_activation; "
                    f"got {width} output(s) with {out!r}"
                )
        elif out == "logistic":
            self._binary = width == 1
            self._check_classes(2 if self._binary else width, f"the last layer ({width} logistic unit(s))")
        elif out == "softmax":
            self._check_classes(width, f"the last layer ({width} softmax units)")
        else:
            raise InvalidWeights(f"{self._what()}: a classifier needs logistic or softmax output; got {out!r}")

    def _predict_front(self, X: np.ndarray) -> np.ndarray:
        assert self._front is not None
        return self._rest(self._front.decide(X, *self._layers[0], self._reject_nonfinite))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        coef, intercept = self._layers[0]
        z = X.dot(coef)  # ndarray.dot: same BLAS call as @, less overhead on small batches
        z += intercept
        if not math.isfinite(z.sum()):  # NaN/inf inputs (with non-zero weights) reach the first layer
            self._reject_nonfinite(X)
        return self._rest(z)

    def _rest(self, z: np.ndarray) -> np.ndarray:
        """The layers after the first, from its decisions ``z`` (reused in place)."""
        layers = self._layers
        hidden = self._hidden
        for coef, intercept in layers[1:]:
            hidden(z)
            z = z.dot(coef)
            z += intercept
        self._out(z)
        if self.classes is None:
            return z.ravel()
        if self._binary:
            p = z.ravel()
            out = np.empty((p.shape[0], 2))
            out[:, 1] = p
            np.subtract(1.0, p, out=out[:, 0])
            return out
        return z
