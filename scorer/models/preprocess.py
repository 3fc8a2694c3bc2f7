"""The preprocessing steps of a Model, parsed from ``metadata["preprocess"]`` (the kinds are listed in
:mod:`scorer.models.base`): each step becomes a function of the rows (``_steps``) and, for kernels that fold
it into their weights, a description (``_plan``, :mod:`scorer.models.affine`; ``_affine``, the one-hot fold).

A mixin of :class:`scorer.models.base.Model`, which provides ``_array``, ``_what`` and the attributes set here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models.columns import ColumnsLayout

PREPROCESS_KINDS = ("impute", "standard_scaler", "minmax_scaler", "columns")


class Preprocessing:
    """Parsing of the stored preprocessing into row functions (see the module docstring)."""

    weights: Any
    n_features: int
    _steps: list[Callable[[np.ndarray], np.ndarray]]
    _plan: list[tuple]
    _imputes: bool
    _layout: ColumnsLayout | None
    _affine: dict[Callable[[np.ndarray], np.ndarray], tuple]
    _array: Callable[..., Any]
    _what: Callable[[], str]

    def _parse_preprocess(self) -> int:
        steps = self.weights.metadata.get("preprocess", [])
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise InvalidWeights(f"{self._what()}: metadata 'preprocess' must be a list of objects; got {steps!r}")
        width = self.n_features
        for i, spec in enumerate(steps):
            kind = spec.get("kind")
            if kind == "impute":
                width = self._add_impute(i, width)
            elif kind == "standard_scaler":
                self._add_standard_scaler(i, width)
            elif kind == "minmax_scaler":
                self._add_minmax_scaler(i, width, spec)
            elif kind == "columns":
                self._plan.append(("other",))
                self._layout = ColumnsLayout(self, i, width)
                self._steps.append(self._layout.expand)
                width = self._layout.width_out
            else:
                raise InvalidWeights(
                    f"{self._what()}: preprocess step {i} has kind {kind!r}; valid: {', '.join(PREPROCESS_KINDS)}"
                )
            extra = set(spec) - {"kind", "clip", "feature_range"}
            if extra:
                raise InvalidWeights(f"{self._what()}: preprocess step {i} has unknown keys {sorted(extra)}")
        return width

    def _add_impute(self, i: int, width: int) -> int:
        # NaN fills leave a column as it is (columns outside a ColumnTransformer branch's imputer)
        fill = self._array(f"pre{i}.fill", shape=(width,), finite=False)
        if np.isinf(fill).any():
            raise InvalidWeights(f"{self._what()}: pre{i}.fill has inf")
        keep = self._array(f"pre{i}.keep", ndim=1, dtype="int64", optional=True)
        if keep is not None:
            if keep.size == 0 or keep[0] < 0 or keep[-1] >= width or (keep.size > 1 and (np.diff(keep) <= 0).any()):
                raise InvalidWeights(
                    f"{self._what()}: pre{i}.keep must be increasing column indices in [0, {width}); "
                    f"got {keep.tolist()}"
                )
        self._imputes = self._imputes or bool(np.isfinite(fill).all())
        self._plan.append(("impute", fill, keep))
        isnan, where = np.isnan, np.where

        if keep is None:
            def impute(X: np.ndarray) -> np.ndarray:
                return where(isnan(X), fill, X)
            self._steps.append(impute)
            return width

        fill_kept = np.ascontiguousarray(fill[keep])

        def impute_drop(X: np.ndarray) -> np.ndarray:
            X = X[:, keep]
            return where(isnan(X), fill_kept, X)

        self._steps.append(impute_drop)
        return int(keep.size)

    def _add_standard_scaler(self, i: int, width: int) -> None:
        mean = self._array(f"pre{i}.mean", shape=(width,), optional=True)
        scale = self._array(f"pre{i}.scale", shape=(width,), optional=True)
        if scale is not None and (scale == 0).any():
            raise InvalidWeights(f"{self._what()}: pre{i}.scale has zeros (scikit-learn stores 1 for constant columns)")
        a = np.ones(width) if scale is None else 1.0 / scale
        self._plan.append(("affine", a, np.zeros(width) if mean is None else -mean * a))
        first = not self._steps

        def standardise(X: np.ndarray) -> np.ndarray:
            if mean is not None:
                X = X - mean if first else np.subtract(X, mean, out=X)
            elif first:
                X = X.copy()
            if scale is not None:
                np.divide(X, scale, out=X)
            return X

        self._steps.append(standardise)
        #: (mean, scale) of each standardise step, for kernels that fold them into their weights
        self._affine[standardise] = (mean, scale)

    def _add_minmax_scaler(self, i: int, width: int, spec: dict[str, Any]) -> None:
        scale = self._array(f"pre{i}.scale", shape=(width,))
        offset = self._array(f"pre{i}.min", shape=(width,))
        clip = spec.get("clip", False)
        rng = spec.get("feature_range", [0.0, 1.0])
        if not isinstance(clip, bool):
            raise InvalidWeights(f"{self._what()}: preprocess step {i} 'clip' must be a bool; got {clip!r}")
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)
            or not rng[0] < rng[1]
        ):
            raise InvalidWeights(f"{self._what()}: preprocess step {i} 'feature_range' must be [lo, hi] with lo < hi")
        lo, hi = float(rng[0]), float(rng[1])
        self._plan.append(("other",) if clip else ("affine", scale, offset))
        first = not self._steps

        def minmax(X: np.ndarray) -> np.ndarray:
            X = X * scale if first else np.multiply(X, scale, out=X)
            X += offset
            if clip:
                np.clip(X, lo, hi, out=X)
            return X

        self._steps.append(minmax)
