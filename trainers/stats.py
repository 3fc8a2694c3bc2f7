"""Per-feature training statistics, stored with each version as the reference for drift checks.

Layout of ``feature_stats(...)`` (JSON-able, the ``stats`` of a published version)::

    {"schema": 1, "n_rows": 800, "n_bins": 10,
     "features": {"<name>": {...}, ...},          # in the model's feature order
     "target": {...}}                              # see ``target_stats``

and of one feature::

    {"count": 790,            # non-missing values
     "n_missing": 10, "missing_rate": 0.0125,     # NaN among n_rows
     "mean": .., "std": .., "min": .., "max": ..,  # over non-missing values (population std); null if none
     "edges": [e0, ..., ek],  # training quantiles at 0, 1/n_bins, ..., 1, deduplicated: e0 = min, ek = max
     "hist": [p0, ..., pk-1], # share of non-missing values per bin
     "below": 0.0, "above": 0.0}   # share of non-missing values < e0 or > ek

A categorical feature (``categories`` given) has instead::

    {"kind": "categorical", "count": .., "n_missing": .., "missing_rate": ..,
     "levels": [...], "shares": [...]}     # training frequency of each level among non-missing values

Bins are ``[e_i, e_(i+1))`` except the last, which is closed ``[e_(k-1), e_k]``; ``hist + below + above``
sums to 1 whenever ``count > 0``. Training data never falls outside its own edges, so ``below``/``above``
are 0 here; they are spelled out so that live windows binned with ``bin_shares`` have the same shape and a
value beyond the training range is counted, not dropped. A constant feature gets ``edges = [c, c]``: one
closed bin holding exactly ``c``. A feature with no values gets ``edges = []`` and ``hist = []``. Missing
values never enter the histogram; they are tracked by ``missing_rate`` (compare it separately).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

STATS_SCHEMA = 1
DEFAULT_BINS = 10


def _float(value: float) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    value = float(value)
    return value if np.isfinite(value) else None


def _sorted_quantiles(present: np.ndarray, n_bins: int) -> np.ndarray:
    """Linear-interpolation quantiles at 0, 1/n_bins, ..., 1 of sorted, NaN-free ``present`` (numpy's default
    method), clamped to their neighbours so rounding can never push an edge past the data's min or max."""
    positions = np.linspace(0.0, 1.0, n_bins + 1) * (present.size - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, present.size - 1)
    low, high = present[lower], present[upper]
    values = low + (high - low) * (positions - lower)
    return np.clip(values, low, high)


def _edges_from_sorted(present: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    if present.size == 0:
        return np.empty(0, dtype=np.float64)
    edges = np.unique(_sorted_quantiles(present, n_bins))
    if edges.size == 1:
        edges = np.repeat(edges, 2)  # constant feature: one closed bin [c, c]
    return edges


def quantile_edges(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Deduplicated quantile edges of the non-missing ``values`` (empty when there are none)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return _edges_from_sorted(np.sort(values[~np.isnan(values)]), n_bins)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """Counts per bin over ``edges`` plus the counts below the first edge, above the last, and missing.

    The binning rule of the module docstring; the counts add up to ``values.size``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(values)
    n_missing = int(missing.sum())
    present = values[~missing]
    if edges.size == 0:
        return np.empty(0, dtype=np.int64), 0, int(present.size), n_missing
    n_bins = max(edges.size - 1, 1)
    below = present < edges[0]
    above = present > edges[-1]
    inside = present[~(below | above)]
    index = np.minimum(np.searchsorted(edges, inside, side="right") - 1, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    return counts, int(below.sum()), int(above.sum()), n_missing


def bin_shares(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """``hist``/``below``/``above`` as shares of the non-missing values, and the missing rate."""
    counts, below, above, n_missing = bin_counts(values, edges)
    present = int(counts.sum()) + below + above
    total = present + n_missing
    denominator = present if present else 1
    return {
        "hist": (counts / denominator).tolist(),
        "below": below / denominator,
        "above": above / denominator,
        "missing_rate": n_missing / total if total else 0.0,
    }


def _sorted_column_stats(present: np.ndarray, n_rows: int, n_bins: int) -> dict[str, Any]:
    """Stats from the sorted non-missing values: bin counts are searchsorted differences, no per-value pass."""
    count = int(present.size)
    edges = _edges_from_sorted(present, n_bins)
    if count:
        # Values < e_i for every edge, and <= the last edge (the last bin is closed).
        left = np.searchsorted(present, edges, side="left")
        through_last = int(np.searchsorted(present, edges[-1], side="right"))
        counts = np.diff(np.r_[left[:-1], through_last])  # edges has >= 2 entries whenever count > 0
        below, above = int(left[0]), count - through_last
        hist = (counts / count).tolist()
    else:
        hist, below, above = [], 0, 0
    return {
        "count": count,
        "n_missing": n_rows - count,
        "missing_rate": (n_rows - count) / n_rows if n_rows else 0.0,
        "mean": _float(present.mean()) if count else None,
        "std": _float(present.std()) if count else None,
        "min": _float(present[0]) if count else None,
        "max": _float(present[-1]) if count else None,
        "edges": edges.tolist(),
        "hist": hist,
        "below": below / count if count else 0.0,
        "above": above / count if count else 0.0,
    }


def column_stats(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Statistics of one feature column (NaN = missing); see the module docstring."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return _sorted_column_stats(np.sort(values[~np.isnan(values)]), int(values.size), n_bins)


def target_stats(y: np.ndarray, classes: Sequence[Any] | None) -> dict[str, Any]:
    """Class shares for a classifier's target, or mean/std/min/max for a regressor's."""
    if classes is not None:
        counts = {cls: int(np.count_nonzero(y == cls)) for cls in classes}
        n = max(int(y.size), 1)
        return {"n": int(y.size), "classes": [_jsonable(cls) for cls in classes],
                "shares": [counts[cls] / n for cls in classes]}
    values = np.asarray(y, dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": int(values.size), "mean": _float(values.mean()), "std": _float(values.std()),
            "min": _float(values.min()), "max": _float(values.max())}


def category_stats(values: np.ndarray, levels: Sequence[Any]) -> dict[str, Any]:
    """Level frequencies of one categorical column (NaN/None = missing; values outside ``levels`` ignored)."""
    counts = dict.fromkeys(levels, 0)
    n_missing = 0
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            n_missing += 1
        elif v in counts:
            counts[v] += 1
    count = int(values.size) - n_missing
    return {"kind": "categorical", "count": count, "n_missing": n_missing,
            "missing_rate": n_missing / values.size if values.size else 0.0,
            "levels": [_jsonable(v) for v in levels], "shares": [c / count if count else 0.0 for c in counts.values()]}


def feature_stats(X: np.ndarray, feature_names: Sequence[str], *, n_bins: int = DEFAULT_BINS,
                  y: np.ndarray | None = None, classes: Sequence[Any] | None = None,
                  categories: Any = None) -> dict[str, Any]:
    """The ``stats`` dict of a version: one entry per feature in ``feature_names`` order (see module doc).

    ``X`` is the raw training matrix (before imputation or scaling), NaN meaning missing; the columns named in
    ``categories`` (name -> levels) hold categories and get level frequencies instead of bins.
    """
    if categories:
        names = list(feature_names)
        num = [j for j, n in enumerate(names) if n not in categories]
        out = feature_stats(np.asarray(X[:, num], dtype=np.float64), [names[j] for j in num], n_bins=n_bins,
                            y=y, classes=classes)
        numeric = out["features"]
        out["features"] = {n: category_stats(X[:, j], categories[n]) if n in categories else numeric[n]
                           for j, n in enumerate(names)}
        return out
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X must be 2-D with {len(feature_names)} columns (one per feature); got shape {X.shape}")
    ordered = np.sort(X, axis=0)  # one sort for every column; NaN sorts last
    present = np.count_nonzero(~np.isnan(X), axis=0)
    n_rows = int(X.shape[0])
    out: dict[str, Any] = {
        "schema": STATS_SCHEMA,
        "n_rows": n_rows,
        "n_bins": n_bins,
        "features": {name: _sorted_column_stats(ordered[: present[j], j], n_rows, n_bins)
                     for j, name in enumerate(feature_names)},
    }
    if y is not None:
        out["target"] = target_stats(np.asarray(y), classes)
    return out


def _jsonable(value: Any) -> Any:
    """numpy scalars to the matching Python scalar (class labels may be np.int64, np.str_, np.bool_)."""
    return value.item() if isinstance(value, np.generic) else value
