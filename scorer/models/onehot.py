"""Linear layers behind a one-hot ``columns`` step: decisions by lookup, never a dense one-hot matrix.

:class:`Folded` scores the codes (``CategoricalInputs.encode``'s output): the numeric inputs times their
weights plus one table lookup per one-hot part (:meth:`ColumnsLayout.fold`). :class:`Direct` scores raw float
rows whose categorical inputs are small integer categories without encoding them first: each such input's
table is indexed by the value itself and holds that category's whole contribution (NaN for a value that is
not a category, so an unknown value makes the decision non-finite and the general path takes over).
:class:`DirectObjects` does the same for object rows whose categorical inputs are strings (one dict pass
per column to 2-byte codes, then a gather).

All are fast paths for the usual batch, every value known and finite; they return None otherwise and the
general path decides (and refuses, dead-letters or imputes) exactly as it always did.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

import numpy as np

_isfinite = math.isfinite


class Folded:
    """Decisions of a linear layer ``coef`` (width_out, k) behind the model's one-hot layout, by lookup."""

    def __init__(self, model: Any, coef: np.ndarray) -> None:
        layout = model._layout
        self.layout = layout
        self.src, self.coef, self.table, self.bases = layout.fold(coef)
        # Standard scalers just before the layout fold into the numeric weights: x -> a x + b per column
        # (their padded identity on code columns changes nothing), one pass less over the input.
        a = b = None
        while model._steps and model._steps[-1] in model._affine:
            mean, scale = model._affine[model._steps.pop()]  # the last step first: final = a * x + b
            if mean is None and scale is None:
                continue
            width = (mean if mean is not None else scale).size
            if a is None:
                a, b = np.ones(width), np.zeros(width)
            m = np.zeros(width) if mean is None else mean
            s = np.ones(width) if scale is None else scale
            a, b = a / s, b - a * m / s  # x -> (x - m) / s feeds a * (.) + b
        self.offset = np.zeros(self.coef.shape[1])
        if a is not None and self.src.size:
            self.offset = b[self.src] @ self.coef
            self.coef = np.ascontiguousarray(a[self.src][:, None] * self.coef)
        # The fast path's arrays: the numeric weights over every input column (zero elsewhere: one product
        # over the contiguous rows, no column copy), and per one-hot part its code column and code count.
        self.full = np.zeros((layout.width_in, self.coef.shape[1]))
        np.add.at(self.full, self.src, self.coef)
        parts = layout.onehot_parts
        self.code_src = layout.source[parts].astype(np.intp)
        self.n_codes = layout.n_codes[parts].astype(np.uintp)
        self.ones = np.ones(parts.size)
        self.table1 = np.ascontiguousarray(self.table[:, 0])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.bases.size and X.shape[0] > 1:
            z = self._fast(X)
            if z is not None:
                return z
        z = X[:, self.src].dot(self.coef) if self.src.size else np.zeros((X.shape[0], self.coef.shape[1]))
        z += self.offset
        if self.bases.size:
            z += self.table[self.layout.code_index(X, self.bases)].sum(axis=1)
        return z

    def _fast(self, X: np.ndarray) -> np.ndarray | None:
        """The decisions in a few whole-array passes when every code is in range and every input finite;
        None otherwise."""
        codes = X[:, self.code_src]
        with np.errstate(invalid="ignore"):
            i = codes.astype(np.intp)
        # codes in [0, n): truncated into [0, n) (negatives wrap high as unsigned) and none below 0 or NaN
        if not (i.view(np.uintp) < self.n_codes).all() or not codes.min() >= 0.0:
            return None
        i += self.bases
        return _finish(X.dot(self.full), self.offset, self.table, self.table1, i, self.ones)


def _finish(z: np.ndarray, offset: np.ndarray, table: np.ndarray, table1: np.ndarray, i: np.ndarray,
            ones: np.ndarray) -> np.ndarray | None:
    """``z + offset + table[i].sum(1)``, or None when a decision is not finite."""
    z += offset
    if z.shape[1] == 1:
        z[:, 0] += table1[i].dot(ones)  # a product with ones: far cheaper than sum(axis=1) over 2-3 columns
    else:
        for j in range(i.shape[1]):
            z += table[i[:, j]]
    return z if _isfinite(z.sum()) else None


class Direct:
    """Decisions straight from raw float rows when every categorical input has small integer categories."""

    def __init__(self, folded: Folded, categorical: Any) -> None:
        k = folded.coef.shape[1]
        cols = categorical.columns
        self.index = np.array([c.index for c in cols], dtype=np.intp)
        self.full = folded.full.copy()
        self.full[self.index] = 0.0  # a categorical input counts through its table only
        self.full[sorted(categorical.unused)] = 0.0
        self.offset = folded.offset
        tables: list[np.ndarray] = []
        bases, at = [], 0
        for c in cols:
            part = self.contributions(folded, c)
            table = np.full((c.dense.size + 1, k), np.nan)  # the last row: any value out of range
            known = c.dense >= 0
            table[:-1][known] = part[c.dense[known].astype(np.intp)]
            tables.append(table)
            bases.append(at)
            at += table.shape[0]
        self.table = np.concatenate(tables)
        self.table1 = np.ascontiguousarray(self.table[:, 0])
        self.bases = np.asarray(bases, dtype=np.intp)
        self.last = np.array([t.shape[0] - 1 for t in tables], dtype=np.uintp)
        self.ones = np.ones(len(cols))

    @staticmethod
    def contributions(folded: Folded, c: Any) -> np.ndarray:
        """(n_categories, k): what each category of input ``c`` adds to the decisions."""
        codes = np.arange(len(c.categories))
        part = np.zeros((codes.size, folded.coef.shape[1]))
        for p, src in enumerate(folded.code_src.tolist()):  # every one-hot part reading this input
            if src == c.index:
                n = int(folded.n_codes[p])
                part += folded.table[folded.bases[p] + np.where(codes < n, codes, n)]
        part += codes[:, None] * folded.full[c.index]  # numeric parts reading the code itself
        return part

    @classmethod
    def build(cls, model: Any) -> Direct | None:
        """For a model whose encoded rows go straight into its fold, every categorical input of small
        non-negative integer categories; else None."""
        cat, folded = model.categorical, model._folded
        if cat is None or folded is None or model._steps or folded.layout.width_in != model.n_features:
            return None
        if not cat.columns or any(c.dense is None for c in cat.columns):
            return None
        return cls(folded, cat)

    def __call__(self, X: np.ndarray) -> np.ndarray | None:
        """Decisions (n, k) of float64 C-contiguous rows in feature order; None unless every categorical
        value is one of its categories and every decision finite."""
        block = X[:, self.index]
        with np.errstate(invalid="ignore"):  # NaN/inf cast to some integer: the equality below catches them
            i = block.astype(np.intp)
        if not (i == block).all():  # missing or fractional
            return None
        u = i.view(np.uintp)  # negative values wrap high: both bounds in one clip to the NaN row
        np.minimum(u, self.last, out=u)
        i += self.bases
        return _finish(X.dot(self.full), self.offset, self.table, self.table1, i, self.ones)


class DirectObjects:
    """Decisions straight from a 2-D object batch when every categorical input has string categories: each
    column's values become 2-byte codes in one dict pass, and a code indexes that category's contribution."""

    def __init__(self, folded: Folded, categorical: Any) -> None:
        self.columns = categorical.columns
        self.numeric = categorical.numeric
        self.at = categorical._numeric_at
        self.w = np.ascontiguousarray(folded.full[self.numeric])
        self.offset = folded.offset
        self.tables = [Direct.contributions(folded, c) for c in self.columns]

    @classmethod
    def build(cls, model: Any) -> DirectObjects | None:
        cat, folded = model.categorical, model._folded
        if cat is None or folded is None or model._steps or folded.layout.width_in != model.n_features:
            return None
        if not cat.columns or any(not c.strings or c.code_bytes is None for c in cat.columns):
            return None
        return cls(folded, cat)

    def __call__(self, X: np.ndarray) -> np.ndarray | None:
        """Decisions (n, k) of object rows in feature order; None unless every categorical value is one of its
        categories, every number converts and every decision is finite."""
        n = X.shape[0]
        try:
            num = np.empty((n, self.numeric.size))
            np.copyto(num, X[:, self.at], casting="unsafe")
            z = num.dot(self.w)
            z += self.offset
            for c, table in zip(self.columns, self.tables, strict=True):
                joined = b"".join(itemgetter(*X[:, c.index].tolist())(c.code_bytes))
                z += table[np.frombuffer(joined, dtype="<u2")]
        except (KeyError, TypeError, ValueError):
            return None
        return z if _isfinite(z.sum()) else None
