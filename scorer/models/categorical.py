"""Categorical inputs: values (strings or integers) -> category codes (see also :mod:`scorer.models.columns`).

``metadata["categorical"]`` lists the model's categorical inputs, in feature order, each
``{"feature": name, "categories": [...], "missing": M, "unknown": U}``: the categories (all strings or
all integers, the encoder's own order) give codes 0..n-1. A missing input (None or NaN) becomes ``M``: a
code, null (NaN: the kernel or an imputer handles it) or ``"unknown"`` (the unknown rule applies). A value
not among the categories becomes ``U``: a code, null (NaN) or ``"error"`` (the row is refused, naming the
feature and the value). A string where integer categories are expected, or a number where strings are,
is always refused. Numeric inputs pass through as float64.

This runs before every other preprocessing step, so the rest of the model sees only numbers: ordinal
codes for trees, code columns expanded by the ``columns`` step (:class:`scorer.models.columns.ColumnsLayout`).
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

import numpy as np

from scorer.errors import CategoryError, InvalidWeights
from scorer.models.category_batch import DenseCodes, arrow_codes

UNKNOWN_CATEGORY = "unknown_category"
CATEGORY_TYPE = "category_type"
_F64 = np.dtype(np.float64)
#: integer categories below this are looked up in a dense table (one gather per column)
_DENSE_MAX = 1 << 16
#: batches up to this many rows are encoded in plain Python (fewer numpy calls)
_SMALL = SMALL_BATCH = 16


def _numeric_type(t: type) -> bool:
    """Values of type ``t`` may stand in a numeric column of an event (None: missing)."""
    return t is type(None) or (t is not bool and issubclass(t, int | float | np.number))


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


class _Column:
    """One categorical input: lookup table, rules, and the sorted numeric view for float input."""

    __slots__ = ("index", "name", "categories", "strings", "lut", "code_bytes", "missing", "unknown", "sorted", "order",
                 "dense", "arrow")

    def __init__(self, index: int, spec: dict, what: str) -> None:
        name, cats = spec.get("feature"), spec.get("categories")
        if not isinstance(cats, list) or not cats:
            raise InvalidWeights(f"{what}: categorical input {name!r} needs a non-empty categories list")
        strings = all(isinstance(c, str) for c in cats)
        if not strings and not all(isinstance(c, int) and not isinstance(c, bool) for c in cats):
            raise InvalidWeights(f"{what}: categories of {name!r} must be all strings or all integers")
        if len(set(cats)) != len(cats):
            raise InvalidWeights(f"{what}: categories of {name!r} repeat a value")
        self.index, self.name, self.categories, self.strings = index, name, tuple(cats), strings
        self.lut = {c: float(k) for k, c in enumerate(cats)}
        #: the codes as 2-byte strings, for a batch of string values (joined and read as one array)
        self.code_bytes = {c: k.to_bytes(2, "little") for k, c in enumerate(cats)} if len(cats) <= 1 << 16 else None
        self.missing = self._rule(spec.get("missing"), "unknown", what)
        self.unknown = self._rule(spec.get("unknown"), "error", what)
        self.dense = None
        self.arrow: Any = None  # the categories as an Arrow array, made when an Arrow-backed column first arrives
        if not strings:
            vals = np.asarray(cats, dtype=np.float64)
            self.order = np.argsort(vals, kind="stable")
            self.sorted = vals[self.order]
            if min(cats) >= 0 and max(cats) < _DENSE_MAX:  # small codes: one gather instead of a search
                self.dense = np.full(max(cats) + 1, -1.0)
                self.dense[np.asarray(cats)] = np.arange(len(cats), dtype=np.float64)

    def _rule(self, rule: Any, word: str, what: str) -> Any:
        if rule is None:
            return math.nan
        if rule == word:
            return rule
        if isinstance(rule, int | float) and not isinstance(rule, bool):
            return float(rule)
        raise InvalidWeights(f"{what}: categorical input {self.name!r}: rule {rule!r}; valid: a code, null, {word!r}")

    def bad(self, row: int, value: Any, model: str) -> float:
        """The code of a value the lookup missed (missing, unknown), or raise CategoryError."""
        if _is_missing(value):
            if self.missing != "unknown":
                return self.missing
        elif isinstance(value, bool) or (self.strings != isinstance(value, str | np.str_)):
            want = "string" if self.strings else "integer"
            got = f"{type(value).__name__} {value!r}"[:60]
            detail = f"feature '{self.name}' takes {want} categories; got {got}"
            raise CategoryError(f"{model}: {detail}", row=row, feature=self.name, kind=CATEGORY_TYPE, detail=detail)
        if self.unknown == "error":
            detail = (f"feature '{self.name}' has unknown category {repr(value)[:40]} "
                      f"(known: {len(self.categories)} categories, handle_unknown='error')")
            raise CategoryError(f"{model}: {detail}", row=row, feature=self.name, kind=UNKNOWN_CATEGORY,
                                detail=detail)
        return self.unknown

    def encode_objects(self, col: Any, model: str) -> np.ndarray:
        if self.strings and len(col) > 1:  # every value known (the usual case): one C-level pass of dict
            try:  # lookups (itemgetter: no call per value) to 2-byte codes joined (no conversion per value)
                if self.code_bytes is not None:
                    joined = b"".join(itemgetter(*col.tolist())(self.code_bytes))
                    return np.frombuffer(joined, dtype="<u2").astype(np.float64)
                return np.fromiter(itemgetter(*col.tolist())(self.lut), dtype=np.float64, count=len(col))
            except (KeyError, TypeError):
                pass
        get, miss = self.lut.get, -7.5  # -7.5 is never a code
        codes = [get(v, miss) if type(v) is not bool else miss for v in col]
        out = np.array(codes, dtype=np.float64)
        for r in np.flatnonzero(out == miss).tolist():
            out[r] = self.bad(r, col[r], model)
        return out

    def encode_numbers(self, col: np.ndarray, model: str) -> np.ndarray:
        nan = np.isnan(col)
        if self.strings:
            if not nan.all():
                r = int(np.flatnonzero(~nan)[0])
                self.bad(r, float(col[r]), model)
            return np.full(col.shape, self.missing if self.missing != "unknown" else self.bad(0, None, model))
        if self.dense is not None:
            with np.errstate(invalid="ignore"):
                ok = (col >= 0) & (col < self.dense.size)
            idx = col.astype(np.intp) if ok.all() else np.where(ok, col, 0).astype(np.intp)
            out = self.dense[idx]
            hit = ok & (out >= 0) & (idx == col)
        else:
            pos = np.minimum(np.searchsorted(self.sorted, col), self.sorted.size - 1)
            hit = self.sorted[pos] == col
            out = self.order[pos].astype(np.float64)
        if not hit.all():
            for r in np.flatnonzero(~hit).tolist():
                out[r] = self.bad(r, None if nan[r] else float(col[r]), model)
        return out


def _numbers(col: np.ndarray, what: str) -> np.ndarray:
    try:
        return np.where(np.equal(col, None), np.nan, col).astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: a numeric feature holds a non-number: {exc}") from None


class CategoricalInputs:
    """The input stage of a model with categorical inputs (see the module docstring)."""

    def __init__(self, specs: Any, feature_names: tuple[str, ...], what: str, unused: Any = ()) -> None:
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs) or not specs:
            raise InvalidWeights(f"{what}: metadata 'categorical' must be a non-empty list of objects")
        position = {n: i for i, n in enumerate(feature_names)}
        self.columns: list[_Column] = []
        for spec in specs:
            extra = set(spec) - {"feature", "categories", "missing", "unknown"}
            if extra or spec.get("feature") not in position:
                raise InvalidWeights(f"{what}: bad categorical input {str(spec)[:80]} (unknown feature or keys)")
            self.columns.append(_Column(position[spec["feature"]], spec, what))
        if len({c.index for c in self.columns}) != len(self.columns):
            raise InvalidWeights(f"{what}: a feature is listed twice in metadata 'categorical'")
        self.by_name = {c.name: c for c in self.columns}
        if not isinstance(unused, list | tuple) or any(u not in position for u in unused):
            raise InvalidWeights(f"{what}: metadata 'unused_inputs' must list feature names; got {unused!r}")
        #: inputs no step reads (a ColumnTransformer dropped them): never converted, scored as 0
        self.unused = {position[u] for u in unused}
        cat = {c.index for c in self.columns} | self.unused
        self.numeric = np.array([i for i in range(len(feature_names)) if i not in cat], dtype=np.intp)
        self.n_features = len(feature_names)
        self.names = feature_names
        by_index = {c.index: c for c in self.columns}
        #: per feature: its _Column, or None for a numeric one
        self._plan = [False if j in self.unused else by_index.get(j) for j in range(len(feature_names))]
        self.what = what
        self._unused_cols = sorted(self.unused)
        num = self.numeric
        #: the numeric inputs as a slice when they are adjacent (a view: no copy of an object block)
        self._numeric_at: slice | np.ndarray = (
            slice(int(num[0]), int(num[-1]) + 1) if num.size and (np.diff(num) == 1).all() else num)
        self._dense = DenseCodes([c for c in self.columns if c.dense is not None])

    def _encode_frame(self, df: Any, strict: bool) -> np.ndarray:
        """A DataFrame in feature order, column by column: numeric columns as they are, pandas categoricals by
        their codes (one lookup per category, not per row), other columns value by value."""
        if df.shape[0] <= _SMALL or df.shape[1] != self.n_features:
            return self.encode(df.to_numpy(dtype=object), strict=strict)
        out = np.zeros(df.shape, dtype=np.float64)
        labels = list(df.columns)
        if len(set(labels)) != len(labels):
            return self.encode(df.to_numpy(dtype=object), strict=strict)
        for j, c in enumerate(self._plan):
            if c is False:
                continue
            col = df[labels[j]]
            kind = getattr(col.dtype, "kind", "O")
            if c is None:
                if kind in "fiub":
                    out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    out[:, j] = _numbers(col.to_numpy(dtype=object), self.what)
            elif hasattr(col, "cat"):  # pandas Categorical: encode its categories once, then gather by code
                cats = list(col.cat.categories)
                table = np.array([c.lut.get(v, np.nan) if type(v) is not bool else np.nan for v in cats] + [np.nan])
                codes = col.cat.codes.to_numpy()
                out[:, j] = table[np.where(codes < 0, len(cats), codes)]
                bad = np.flatnonzero(np.isnan(out[:, j]))
                for r in bad.tolist():
                    v = None if codes[r] < 0 else cats[codes[r]]
                    out[r, j] = c.bad(r, v, self.what)
            elif kind in "fiu":
                out[:, j] = c.encode_numbers(col.to_numpy(dtype=np.float64, na_value=np.nan), self.what)
            elif not (c.strings and arrow_codes(col, c, out[:, j])):  # pandas' NA is missing, as None is
                out[:, j] = c.encode_objects(col.to_numpy(dtype=object, na_value=None), self.what)
        return out

    def _encode_small(self, rows: list[list[Any]], strict: bool) -> np.ndarray:
        """``encode`` for a few rows in plain Python: the one-event latency path."""
        plan, what, nan = self._plan, self.what, math.nan
        out = []
        for r, row in enumerate(rows):
            vals = []
            for j, (v, c) in enumerate(zip(row, plan, strict=True)):
                if c is False:
                    vals.append(0.0)
                elif c is None:
                    if v is None:
                        vals.append(nan)
                        continue
                    if strict and (type(v) is str or type(v) is bool or isinstance(v, str)):
                        self._check_numbers(np.array([[v]], dtype=object), r, j)
                    vals.append(float(v))
                else:
                    code = c.lut.get(v) if type(v) is not bool else None
                    vals.append(c.bad(r, v, what) if code is None else code)
            out.append(vals)
        return np.array(out, dtype=np.float64)

    def _check_numbers(self, num: np.ndarray, row0: int = 0, column: int | None = None) -> None:
        if all(map(_numeric_type, set(map(type, num.reshape(-1))))):  # the verdict depends on the type alone
            return
        for r, row in enumerate(num.tolist(), start=row0):
            for k, v in enumerate(row):
                if not (v is None or (type(v) is not bool and isinstance(v, int | float | np.number))):
                    name = self.names[int(self.numeric[k]) if column is None else column]
                    detail = f"feature '{name}' takes numbers; got {type(v).__name__} {repr(v)[:40]}"
                    raise CategoryError(f"{self.what}: {detail}", row=r, feature=name, kind=CATEGORY_TYPE,
                                        detail=detail)

    def sample_row(self) -> np.ndarray:
        """One valid row (first category, zeros): what a worker warms a new version with."""
        row = np.zeros((1, self.n_features), dtype=object)
        for c in self.columns:
            row[0, c.index] = c.categories[0]
        return row

    def encode_rows(self, X: np.ndarray, what: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
        """``encode`` that sets bad rows aside: (codes of the kept rows, kept row positions,
        [(row, reason, kind)] for the others). For streams: one bad event must not cost the batch.
        ``what`` names the model in the reasons (e.g. ``"delay/ORD v3"``)."""
        keep = np.arange(X.shape[0])
        errors: list[tuple[int, str, str]] = []
        while keep.size:
            try:
                return self.encode(X[keep], strict=True), keep, errors
            except CategoryError as exc:
                errors.append((int(keep[exc.row]), f"{what}: {exc.detail}" if what else str(exc), exc.kind))
                keep = np.delete(keep, exc.row)
        return np.empty((0, self.n_features)), keep, errors

    def drift_codes(self, X: np.ndarray) -> np.ndarray:
        """Rows as numbers for drift histograms: a category's code, NaN for missing, ``len(categories)`` for
        any value not among them (what the categorical stats' buckets expect, see trainers.stats)."""
        out = np.full(X.shape, np.nan)
        if self.numeric.size:
            num = X[:, self.numeric]
            out[:, self.numeric] = [[v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                                     for v in row] for row in num.tolist()]
        for c in self.columns:
            unseen = float(len(c.categories))
            get = c.lut.get
            out[:, c.index] = [np.nan if _is_missing(v) else get(v, unseen) for v in X[:, c.index].tolist()]
        return out

    def levels(self) -> dict[str, list]:
        """Feature name -> its categories, for ``scorer show`` and the stream's decoder."""
        return {c.name: list(c.categories) for c in self.columns}

    def encode(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Rows (float ndarray, 2-D object array or DataFrame in feature order) -> float64 codes and numbers.

        Raises CategoryError (its ``row`` says which) or ValueError for a numeric column that is not a number.
        Numeric columns convert as numpy does (as scikit-learn reads them, numeric strings included) unless
        ``strict``, where anything but int, float or None there is a CategoryError (event streams).
        """
        if type(X) is np.ndarray and X.dtype.kind == "f":
            if X.ndim == 2 and 0 < X.shape[0] <= _SMALL and X.shape[1] == self.n_features:
                return self._encode_small(X.tolist(), strict)
            out = np.array(X, dtype=np.float64, order="C", copy=True)
            if out.ndim == 2 and out.shape[1] == self.n_features:
                if self._unused_cols:
                    out[:, self._unused_cols] = 0.0
                done = self._dense.encode(out)  # small integer categories, all columns in a few passes
                for c in self.columns:
                    if c.index not in done:
                        out[:, c.index] = c.encode_numbers(out[:, c.index], self.what)
            return out
        if hasattr(X, "columns") and hasattr(X, "dtypes") and not isinstance(X, np.ndarray):
            return self._encode_frame(X, strict)
        arr = X if type(X) is np.ndarray else np.asarray(X, dtype=object)
        if arr.ndim != 2 or arr.shape[1] != self.n_features or not arr.shape[0]:
            return np.empty((0, self.n_features)) if arr.ndim == 2 and arr.shape[1] == self.n_features else arr
        if arr.shape[0] <= _SMALL:
            return self._encode_small(arr.tolist(), strict)
        out = np.zeros(arr.shape, dtype=np.float64)
        if self.numeric.size:
            num = arr[:, self._numeric_at]
            if strict and num.dtype == object:
                self._check_numbers(num)
            try:
                try:
                    if type(self._numeric_at) is slice:  # cast straight into the output's view: one pass
                        np.copyto(out[:, self._numeric_at], num, casting="unsafe")
                    else:
                        out[:, self.numeric] = num.astype(np.float64)
                except TypeError:  # None (missing) in an object column
                    out[:, self.numeric] = np.where(np.equal(num, None), np.nan, num).astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.what}: a numeric feature holds a non-number: {exc}") from None
        for c in self.columns:
            col = arr[:, c.index]
            out[:, c.index] = c.encode_numbers(col.astype(np.float64), self.what) if col.dtype.kind in "fiu" \
                else c.encode_objects(col, self.what)
        return out


def describe_levels(spec: Any) -> str:
    """One categorical input of ``metadata["categorical"]`` in a line (``scorer show``)."""
    if not isinstance(spec, dict):
        return "?"
    cats = list(spec.get("categories") or [])
    shown = ", ".join(map(str, cats[:12])) + (" ..." if len(cats) > 12 else "")
    unknown = spec.get("unknown")
    rule = "refused" if unknown == "error" else "missing" if unknown is None else f"code {unknown:g}"
    return f"{spec.get('feature')}: {len(cats)} levels ({shown}); unknown {rule}"
