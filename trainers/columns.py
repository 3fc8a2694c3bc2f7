"""Exporting the column-wise front of a Pipeline: ColumnTransformer branches, encoders, categorical imputers.

Every supported step works column by column, so a ColumnTransformer becomes, in the stored model:

- the categorical input stage (``metadata["categorical"]``): per encoded column, the encoder's categories
  and what missing and unknown values become (a categorical SimpleImputer's fill is folded in here);
- the numeric branches' steps (imputer, scalers), each padded to the full width with identity values
  (NaN fill, mean 0, scale 1) so they touch only their own columns;
- one ``columns`` step: the transformer's output order, one-hot parts expanded by a code -> column table
  read from the fitted encoder itself (so drop, min_frequency, max_categories and handle_unknown are
  whatever scikit-learn does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
    TargetEncoder,
)

from scorer.errors import UnsupportedModel

ENCODERS = (OneHotEncoder, OrdinalEncoder, TargetEncoder)
SUPPORTED = (
    "ColumnTransformer (remainder drop/passthrough) of per-column pipelines of SimpleImputer, StandardScaler, "
    "MinMaxScaler (clip=False), OrdinalEncoder, OneHotEncoder and TargetEncoder (these two last in their branch)"
)
_PROBE_STR = "\x00unknown-category\x00"


def category_list(cats: Any, name: str, column: int) -> list:
    """An encoder's categories for one column as JSON values (strings or integers), NaN dropped."""
    cats = np.asarray(cats)
    if cats.dtype.kind in "fc":
        cats = cats[~np.isnan(cats)]
    values = [v for v in cats.tolist() if not (isinstance(v, float) and v != v) and v is not None]
    if values and all(isinstance(v, str) for v in values):
        return values
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise UnsupportedModel(
                f"cannot export {name}: categorical column {column} has category {v!r}; supported: strings or "
                "integers (mixed types, fractional or other category values are not)"
            )
        out.append(int(v))
    return out


def _fail(why: str) -> UnsupportedModel:
    return UnsupportedModel(f"cannot export {why}; supported: {SUPPORTED}")


def is_column_front(step: Any) -> bool:
    """Does this step start a column-wise front (a ColumnTransformer, or an encoder on every column)?"""
    return isinstance(step, ColumnTransformer | OneHotEncoder | OrdinalEncoder)


def _branch_steps(trans: Any) -> list[Any]:
    if isinstance(trans, FunctionTransformer) and trans.func is None and trans.inverse_func is None:
        return []  # a passthrough (what a fitted ColumnTransformer keeps for remainder='passthrough')
    if isinstance(trans, Pipeline):
        out = []
        for _n, s in trans.steps:
            if s is None or s == "passthrough":
                continue
            out.extend(_branch_steps(s))
        return out
    return [trans]


def export_front(steps: list[Any], n_features: int, export_step: Any) -> tuple[list[dict], list, int]:
    """``steps`` (a ColumnTransformer, or steps ending with an encoder on all columns) -> (categorical
    inputs with column indices, [(spec, arrays)] preprocess steps, number of steps consumed)."""
    if isinstance(steps[0], ColumnTransformer):
        ct = steps[0]
        if getattr(ct, "sparse_output_", False) is None:
            raise _fail("a ColumnTransformer with no fitted output")
        branches = []
        for name, trans, _cols in ct.transformers_:
            cols = [int(c) for c in ct._transformer_to_input_indices.get(name, [])]
            if trans == "drop" or not cols:
                continue
            branches.append((name, [] if trans == "passthrough" else _branch_steps(trans), cols))
        used = 1
    else:
        end = next((i for i, s in enumerate(steps) if isinstance(s, ENCODERS)), None)
        if end is None or any(isinstance(s, ColumnTransformer) for s in steps):
            raise _fail("a ColumnTransformer after other steps (it must be the first step of the Pipeline)")
        branches = [("pipeline", steps[: end + 1], list(range(n_features)))]
        used = end + 1
    seen: set[int] = set()
    inputs: list[dict] = []
    numeric_steps: list[tuple[dict, dict]] = []
    parts: list[tuple[int, np.ndarray | None, int]] = []  # (source column, slots or None, width)
    for name, bsteps, cols in branches:
        if seen & set(cols):
            raise _fail(f"ColumnTransformer branch {name!r}: a column used by two branches")
        seen |= set(cols)
        enc_at = [i for i, s in enumerate(bsteps) if isinstance(s, ENCODERS)]
        if not enc_at:
            for s in bsteps:
                numeric_steps.append(_padded(s, cols, n_features, export_step, name))
            parts.extend((c, None, 1) for c in cols)
            continue
        k = enc_at[0]
        if k != len(bsteps) - 1 and isinstance(bsteps[k], OneHotEncoder | TargetEncoder):
            raise _fail(f"branch {name!r}: steps after a {type(bsteps[k]).__name__}")
        fills = None
        for s in bsteps[:k]:
            if not isinstance(s, SimpleImputer) or s.strategy not in ("most_frequent", "constant") or fills:
                raise _fail(f"branch {name!r}: {type(s).__name__} before an encoder (only one SimpleImputer "
                            "most_frequent/constant)")
            if s.add_indicator or not _nan(s.missing_values):
                raise _fail(f"branch {name!r}: SimpleImputer with add_indicator or missing_values other than NaN")
            fills = list(s.statistics_)
        enc = bsteps[k]
        cat_inputs, enc_parts = _encoder(enc, cols, fills, name)
        inputs.extend(cat_inputs)
        for s in bsteps[k + 1 :]:
            numeric_steps.append(_padded(s, cols, n_features, export_step, name))
        parts.extend(enc_parts)
    if isinstance(steps[0], ColumnTransformer):
        order = parts  # ColumnTransformer output: branches in order, remainder last
    else:
        order = parts
    slots = [p[1] for p in order if p[1] is not None and p[1].ndim == 1]
    values = [p[1].ravel() for p in order if p[1] is not None and p[1].ndim == 2]
    arrays = {
        "source": np.array([p[0] for p in order], dtype=np.int64),
        "n_codes": np.array([0 if p[1] is None else p[1].shape[0] for p in order], dtype=np.int64),
        "width": np.array([p[2] for p in order], dtype=np.int64),
        "slots": np.concatenate(slots).astype(np.int64) if slots else np.zeros(0, dtype=np.int64),
    }
    if values:  # TargetEncoder parts: a row of output values per code
        arrays["kind"] = np.array([0 if p[1] is None else p[1].ndim for p in order], dtype=np.int64)
        arrays["values"] = np.concatenate(values).astype(np.float64)
    specs = [*numeric_steps, ({"kind": "columns"}, arrays)]
    if inputs:  # columns no branch reads (remainder='drop') are not converted to numbers when scoring
        inputs += [{"column": c, "unused": True} for c in range(n_features) if c not in seen]
    return inputs, specs, used


def _nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _padded(step: Any, cols: list[int], width: int, export_step: Any, branch: str) -> tuple[dict, dict]:
    """A numeric step on ``cols`` as the same step on every column, identity elsewhere."""
    if not isinstance(step, SimpleImputer | StandardScaler | MinMaxScaler):
        raise _fail(f"branch {branch!r}: step {type(step).__name__}")
    if isinstance(step, MinMaxScaler) and step.clip:
        raise _fail(f"branch {branch!r}: MinMaxScaler(clip=True) inside a ColumnTransformer")
    spec, arrays = export_step(step)
    if "keep" in arrays:
        raise _fail(f"branch {branch!r}: a SimpleImputer that dropped empty columns")
    identity = {"fill": np.nan, "mean": 0.0, "scale": 1.0, "min": 0.0}
    out = {}
    for key, a in arrays.items():
        full = np.full(width, identity[key])
        full[cols] = a
        out[key] = full
    return spec, out


def _encoder(enc: Any, cols: list[int], fills: list | None, branch: str) -> tuple[list[dict], list]:
    name = type(enc).__name__
    if getattr(enc, "_infrequent_enabled", False) and isinstance(enc, OrdinalEncoder):
        raise _fail(f"branch {branch!r}: OrdinalEncoder with min_frequency/max_categories")
    inputs, parts = [], []
    cats_all = [category_list(c, name, col) for c, col in zip(enc.categories_, cols, strict=True)]
    nan_seen = [any(_nan(v) or v is None for v in np.asarray(c, dtype=object).tolist()) for c in enc.categories_]
    for j, (col, cats) in enumerate(zip(cols, cats_all, strict=True)):
        fill = None if fills is None else fills[j]
        if fill is not None and isinstance(fill, np.generic):
            fill = fill.item()
        fill_code: Any = None
        if fill is not None:
            fill_code = cats.index(fill) if fill in cats else "unknown"
        if isinstance(enc, OrdinalEncoder):
            missing = fill_code if fills is not None else _num(enc.encoded_missing_value)
            unknown = "error" if enc.handle_unknown == "error" else _num(enc.unknown_value)
            inputs.append({"column": col, "categories": cats, "missing": missing, "unknown": unknown})
            parts.append((col, None, 1))
            continue
        n = len(cats)
        extra_missing = fills is None and nan_seen[j]
        unknown: Any = "error" if getattr(enc, "handle_unknown", None) == "error" else n + extra_missing
        if fills is not None:
            missing: Any = fill_code
        else:
            missing = n if extra_missing else "unknown"
        if isinstance(enc, TargetEncoder):
            unknown = n + extra_missing  # TargetEncoder scores unknown categories as the target mean
        inputs.append({"column": col, "categories": cats, "missing": missing, "unknown": unknown})
        probes: list[Any] = list(cats)
        if extra_missing:
            probes.append(np.nan)
        if unknown != "error":
            probes.append(_PROBE_STR if cats and isinstance(cats[0], str) else (max(cats) + 1 if cats else 0))
        if isinstance(enc, TargetEncoder):
            table = _probe(enc, j, probes, cats_all)
            parts.append((col, table, table.shape[1]))
            continue
        parts.append((col, _slots(enc, j, probes, cats_all), int(enc._n_features_outs[j])))
    return inputs, parts


def _num(v: Any) -> float | None:
    if v is None or _nan(v):
        return None
    return float(v)


def _probe(enc: Any, j: int, probes: list, cats_all: list[list]) -> np.ndarray:
    """Column j's block of ``transform`` output for each probe value: (len(probes), block width)."""
    X = np.empty((len(probes), len(cats_all)), dtype=object)
    for c, cats in enumerate(cats_all):
        X[:, c] = cats[0] if cats else np.nan
    X[:, j] = probes
    if all(np.asarray(c).dtype.kind in "iuf" for c in enc.categories_):
        X = X.astype(np.float64)
    out = np.asarray(enc.transform(X), dtype=np.float64)
    width = out.shape[1] // len(cats_all)
    return np.ascontiguousarray(out[:, j * width : (j + 1) * width])


def _slots(enc: Any, j: int, probes: list, cats_all: list[list]) -> np.ndarray:
    """Output column within column j's block for each probe value (-1: all zeros), read from ``transform``."""
    X = np.empty((len(probes), len(cats_all)), dtype=object)
    for c, cats in enumerate(cats_all):
        X[:, c] = cats[0] if cats else np.nan
    X[:, j] = probes
    if all(np.asarray(c).dtype.kind in "iuf" for c in enc.categories_):
        X = X.astype(np.float64)  # fitted on a numeric array: transform one the same way
    out = enc.transform(X)
    out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
    start = int(sum(enc._n_features_outs[:j]))
    block = out[:, start : start + int(enc._n_features_outs[j])]
    hit = block.any(axis=1)
    return np.where(hit, block.argmax(axis=1), -1).astype(np.int64)
