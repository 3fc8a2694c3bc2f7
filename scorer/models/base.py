"""The Model base class: validated weights in, a numpy scoring function out.

A Model is built once (``scorer.models.build``) and then only scores. Construction validates every array
an architecture reads, so a model that exists can always score; ``predict`` keeps its per-call checks to
the few that protect the caller (shape, dtype, missing values) so that scoring one row stays cheap.

Preprocessing recorded with the weights (from a scikit-learn Pipeline) runs before the kernel:
``metadata["preprocess"]`` is a list of steps, step ``i`` reading its arrays as ``pre{i}.<name>``:

- ``{"kind": "impute"}`` with ``pre{i}.fill`` (width_in,) replacing NaN per column, and optionally
  ``pre{i}.keep`` (int64 column indices) when scikit-learn dropped columns that were empty at fit time;
- ``{"kind": "standard_scaler"}`` with ``pre{i}.mean`` and/or ``pre{i}.scale``: ``(X - mean) / scale``;
- ``{"kind": "minmax_scaler", "clip": bool, "feature_range": [lo, hi]}`` with ``pre{i}.scale`` and
  ``pre{i}.min``: ``X * scale + min`` then clipped to the range when ``clip``;
- ``{"kind": "columns"}``: a ColumnTransformer's output layout, one-hot parts expanded
  (:class:`scorer.models.columns.ColumnsLayout`).

Models with categorical inputs (``metadata["categorical"]``, :mod:`scorer.models.categorical`) first
turn category values into codes; every step and kernel after that sees numbers only.

These are the exact operations scikit-learn performs, in the same order, so results agree bit for bit
up to floating-point associativity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models.categorical import CategoricalInputs
from scorer.models.columns import ColumnsLayout
from scorer.models.weights import ModelWeights

PREPROCESS_KINDS = ("impute", "standard_scaler", "minmax_scaler", "columns")
LEARNER_PREFIX = "learn."
_F64 = np.dtype(np.float64)


class Model:
    """Base of every architecture. Subclasses set ``arch``, implement ``_validate`` and ``_predict``.

    ``_validate`` reads arrays only through ``self._array(...)`` (which checks dtype, shape and
    finiteness and records that the array is used); arrays the architecture never reads are refused,
    so misspelt or stray arrays are caught at build time rather than silently ignored.
    ``_predict`` receives a float64 C-contiguous array of width ``self.n_inputs`` that it may not
    modify unless preprocessing already copied it (``self._owns_input``), and returns (n, k)
    probabilities for classifiers or (n,) values for regressors.
    """

    arch: ClassVar[str]
    #: the kernel accepts NaN natively (e.g. histogram gradient boosting) and needs no input scan
    handles_missing: ClassVar[bool] = False
    #: the kernel detects non-finite inputs itself (e.g. from a NaN in ``X @ coef``), which is much
    #: cheaper than scanning every input; it then calls ``self._reject_nonfinite(X)``, which raises
    checks_own_input: ClassVar[bool] = False

    weights: ModelWeights
    feature_names: tuple[str, ...]
    classes: tuple | None
    n_features: int
    n_inputs: int
    is_classifier: bool

    def __init__(self, weights: ModelWeights) -> None:
        if not isinstance(weights, ModelWeights):
            raise InvalidWeights(f"build needs ModelWeights; got {type(weights).__name__}")
        if weights.arch != self.arch:
            raise InvalidWeights(f"{type(self).__name__} builds arch {self.arch!r}; weights are {weights.arch!r}")
        self.weights = weights
        self.feature_names = weights.feature_names
        self.n_features = len(self.feature_names)
        self.classes = weights.classes
        self.is_classifier = self.classes is not None
        self._used: set[str] = set()
        self._check_feature_names()
        if self.classes is not None:
            if len(self.classes) < 2:
                raise InvalidWeights(f"{self._what()}: a classifier needs at least 2 classes; got {list(self.classes)}")
            if len(set(self.classes)) != len(self.classes) or len({repr(c) for c in self.classes}) != len(self.classes):
                raise InvalidWeights(f"{self._what()}: class labels must be distinct; got {list(self.classes)}")
        self._steps: list[Callable[[np.ndarray], np.ndarray]] = []
        self._imputes = False
        self._layout: ColumnsLayout | None = None
        self._affine: dict[Callable[[np.ndarray], np.ndarray], tuple] = {}
        cat = weights.metadata.get("categorical")
        #: the categorical input stage, or None for a numeric-only model
        unused = weights.metadata.get("unused_inputs", [])
        self.categorical = None if cat is None else CategoricalInputs(cat, self.feature_names, self._what(), unused)
        self.n_inputs = self._parse_preprocess()
        self._owns_input = bool(self._steps)
        self._validate()
        # Scan every input for NaN/inf only when nothing else catches them (decided once, not per call).
        self._scan_input = not (self.checks_own_input or self.accepts_missing)
        # ``learn.*`` arrays are an online learner's state (scorer.learn.state), read by the learner only.
        unused = sorted(n for n in set(weights.arrays) - self._used if not n.startswith(LEARNER_PREFIX))
        if unused:
            raise InvalidWeights(f"{self._what()}: unexpected arrays {unused} (not read by this architecture)")

    # -- public ---------------------------------------------------------------------------------------
    @property
    def accepts_missing(self) -> bool:
        """NaN inputs are legal: the pipeline imputes them or the kernel handles them natively."""
        return self._imputes or self.handles_missing

    def predict(self, X: Any) -> np.ndarray:
        """Score rows of ``X`` (n, n_features) in ``feature_names`` order; X itself is never modified.

        Classifiers return (n, len(classes)) probabilities like scikit-learn's ``predict_proba``,
        regressors (n,) like ``predict``. A DataFrame-like input (with ``columns``) is reordered by name.
        """
        if self.categorical is not None:
            return self.predict_encoded(self.categorical.encode(self._reorder(X)))
        if type(X) is not np.ndarray or X.dtype is not _F64 or not X.flags.c_contiguous:
            X = self._coerce(X)
        return self.predict_encoded(X)

    def predict_encoded(self, X: np.ndarray) -> np.ndarray:
        """``predict`` on rows whose categorical inputs are already codes (``self.categorical.encode``);
        the same as ``predict`` for a numeric-only model. X: float64, C-contiguous, feature order."""
        shape = X.shape
        if len(shape) != 2 or shape[1] != self.n_features or not shape[0]:
            return self._odd_shape(X)
        if self._steps:
            for step in self._steps:
                X = step(X)
        if self._scan_input and not np.isfinite(X).all():
            self._reject_nonfinite(X)
        return self._predict(X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The kernel's inputs (n, n_inputs) for rows of ``X``: the stored preprocessing applied, ``X`` untouched.

        Online learners update the weights behind this fixed preprocessing.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        out = X
        for step in self._steps:
            out = step(out)
        layout = self._layout
        if layout is not None and layout.expand not in self._steps:  # folded into a linear kernel: expand here
            out = layout.expand(out)
        return out.copy() if out is X else out

    def fuse_key(self) -> tuple | None:
        """Models with equal keys can be scored together by ``predict_fused``; None: only one at a time."""
        return None

    @classmethod
    def predict_fused(cls, models: list[Model], X: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """``predict`` for many models at once: row i of ``X`` (finite, C-contiguous float64, in
        ``feature_names`` order) is scored by ``models[owner[i]]``; all models share one ``fuse_key``.

        Scoring a batch over many segments costs one kernel call per segment otherwise, which is most of
        the per-batch cost when each segment has a handful of rows.
        """
        raise NotImplementedError(f"{cls.__name__} has no fused kernel")

    def _odd_shape(self, X: np.ndarray) -> np.ndarray:
        """Empty batches get an empty result (kernels never see them); other shapes are refused."""
        if X.ndim == 2 and X.shape[1] == self.n_features:
            return np.empty((0, len(self.classes)) if self.classes is not None else (0,))
        raise ValueError(
            f"{self._what()}: X must be 2-D with {self.n_features} columns {list(self.feature_names)[:8]}"
            f"{'...' if self.n_features > 8 else ''}; got shape {X.shape}"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(arch={self.arch!r}, n_features={self.n_features}, "
            f"classes={self.classes!r}, estimator={self.weights.metadata.get('estimator')!r})"
        )

    # -- for subclasses -------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Read and check every array; store what ``_predict`` needs on ``self``."""
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _what(self) -> str:
        """How messages name this model: arch plus the estimator it came from, when recorded."""
        est = self.weights.metadata.get("estimator")
        return f"{self.arch} model" + (f" ({est})" if est else "")

    def _array(
        self,
        name: str,
        *,
        ndim: int | None = None,
        shape: tuple[int | None, ...] | None = None,
        dtype: str | tuple[str, ...] = "float64",
        finite: bool = True,
        optional: bool = False,
    ) -> np.ndarray:
        """Fetch array ``name`` and check it; ``None`` in ``shape`` means any size on that axis."""
        arrays = self.weights.arrays
        if name not in arrays:
            if optional:
                return None  # type: ignore[return-value]
            raise InvalidWeights(f"{self._what()}: missing array {name!r} (have {sorted(arrays)})")
        self._used.add(name)
        arr = arrays[name]
        allowed = (dtype,) if isinstance(dtype, str) else dtype
        if arr.dtype.name not in allowed:
            raise InvalidWeights(f"{self._what()}: array {name!r} must be {'/'.join(allowed)}; got {arr.dtype.name}")
        if shape is not None:
            ndim = len(shape)
        if ndim is not None and arr.ndim != ndim:
            raise InvalidWeights(f"{self._what()}: array {name!r} must be {ndim}-D; got shape {list(arr.shape)}")
        if shape is not None and any(w is not None and g != w for g, w in zip(arr.shape, shape, strict=True)):
            expect = ["*" if s is None else s for s in shape]
            raise InvalidWeights(f"{self._what()}: array {name!r} must have shape {expect}; got {list(arr.shape)}")
        if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.isfinite(arr).sum())
            raise InvalidWeights(f"{self._what()}: array {name!r} has {bad} non-finite value(s) (NaN or inf)")
        return arr

    def _meta(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = ()) -> Any:
        """Fetch ``metadata[key]`` checking its type (and value among ``choices`` when given)."""
        meta = self.weights.metadata
        if key not in meta:
            if default is ...:
                raise InvalidWeights(f"{self._what()}: metadata lacks {key!r}")
            return default
        value = meta[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool) and int in kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise InvalidWeights(f"{self._what()}: metadata {key!r} must be {names}; got {value!r}")
        if choices and value not in choices:
            valid = ", ".join(map(str, choices))
            raise InvalidWeights(f"{self._what()}: metadata {key!r} is {value!r}; valid: {valid}")
        return value

    def _check_classes(self, n_outputs: int, what: str) -> None:
        """A classifier's output width must equal its class count (``what`` names the array)."""
        if self.classes is None:
            raise InvalidWeights(f"{self._what()}: a classifier needs class labels; weights have classes=None")
        if n_outputs != len(self.classes):
            raise InvalidWeights(
                f"{self._what()}: {what} gives {n_outputs} outputs but there are {len(self.classes)} classes"
            )

    def _reject_nonfinite(self, X: np.ndarray) -> None:
        """Raise ValueError naming the columns of ``X`` holding NaN/inf; return if there are none.

        Kernels call this when an intermediate turned out non-finite; finite inputs can still overflow
        (e.g. 1e300 * w), which scikit-learn scores without complaint, so that case just returns.
        """
        bad_cols = np.flatnonzero(~np.isfinite(X).all(axis=0))
        if not bad_cols.size:
            return
        names = self.feature_names if X.shape[1] == self.n_features else tuple(f"input {i}" for i in range(X.shape[1]))
        cols = [names[i] for i in bad_cols[:10]]
        hint = "" if self.accepts_missing else " (this model has no imputer and does not handle missing values)"
        raise ValueError(f"{self._what()}: input has NaN or inf in column(s) {cols}{hint}")

    # -- internals ------------------------------------------------------------------------------------
    def _reorder(self, X: Any) -> Any:
        """A DataFrame-like input (with ``columns``) as an object array in ``feature_names`` order."""
        columns = getattr(X, "columns", None)
        if columns is None or isinstance(X, np.ndarray):
            return X
        cols = [str(c) for c in columns]
        missing = [f for f in self.feature_names if f not in cols]
        if missing:
            raise ValueError(f"{self._what()}: input lacks column(s) {missing[:10]}")
        return X[list(self.feature_names)]  # the categorical input stage reads a frame column by column

    def _coerce(self, X: Any) -> np.ndarray:
        X = self._reorder(X)
        try:
            return np.ascontiguousarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self._what()}: X cannot be converted to a float64 array: {exc}") from None

    def _check_feature_names(self) -> None:
        names = self.feature_names
        if not names:
            raise InvalidWeights(f"{self._what()}: feature_names is empty")
        if any(not n for n in names):
            raise InvalidWeights(f"{self._what()}: feature names must be non-empty strings")
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise InvalidWeights(f"{self._what()}: duplicate feature names {dups}")

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
        first = not self._steps

        def minmax(X: np.ndarray) -> np.ndarray:
            X = X * scale if first else np.multiply(X, scale, out=X)
            X += offset
            if clip:
                np.clip(X, lo, hi, out=X)
            return X

        self._steps.append(minmax)
