"""The ``columns`` preprocessing step: a ColumnTransformer's output layout over category codes.

One-hot parts expand a code into its output column (or none); target-encoded parts look a code's values
up; numeric parts copy their column. Linear models fold the layout into per-category weights instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.errors import InvalidWeights


class ColumnsLayout:
    """The ``columns`` step: a ColumnTransformer's output, parts in order, one-hot parts expanded, target-encoded
    parts looked up (optional ``kind`` (P,) 0/1/2 and ``values``: a (n_codes, width) table per kind-2 part).

    Arrays ``source`` (P,) input column per part, ``n_codes`` (P,) 0 for a numeric part (the value is
    copied) or the number of codes of a one-hot part, ``slots`` (sum n_codes,) each code's output column
    within its part (-1: all zeros, as a dropped or ignored category), ``width`` (P,) each part's width.
    A code outside [0, n_codes) (NaN, the -1 of an ignored unknown) gives all zeros.
    """

    def __init__(self, model: Any, i: int, width_in: int) -> None:
        self.width_in = width_in
        self.source = model._array(f"pre{i}.source", ndim=1, dtype="int64")
        p = self.source.size
        self.n_codes = model._array(f"pre{i}.n_codes", shape=(p,), dtype="int64")
        self.width = model._array(f"pre{i}.width", shape=(p,), dtype="int64")
        what = model._what()
        kind = model._array(f"pre{i}.kind", shape=(p,), dtype="int64", optional=True)
        self.kind = np.where(self.n_codes > 0, 1, 0) if kind is None else kind
        if ((self.kind == 0) != (self.n_codes == 0)).any() or (self.kind > 2).any() or (self.kind < 0).any():
            raise InvalidWeights(f"{what}: pre{i}.kind must be 0 (numeric), 1 (one-hot) or 2 (values) per part")
        one_hot, valued = self.kind == 1, self.kind == 2
        self.slots = model._array(f"pre{i}.slots", shape=(int(self.n_codes[one_hot].sum()),), dtype="int64")
        n_values = int((self.n_codes * self.width)[valued].sum())
        self.values = model._array(f"pre{i}.values", shape=(n_values,)) if valued.any() else np.zeros(0)
        if p == 0 or (self.source < 0).any() or (self.source >= width_in).any() or (self.n_codes < 0).any():
            raise InvalidWeights(f"{what}: pre{i}.source/n_codes out of range for {width_in} input column(s)")
        if ((self.n_codes == 0) & (self.width != 1)).any() or (self.width < 1).any():
            raise InvalidWeights(f"{what}: pre{i}.width must be 1 for numeric parts and >= 1 for one-hot parts")
        self.offsets = np.concatenate([[0], np.cumsum(self.width)])
        self.code_base = np.concatenate([[0], np.cumsum(np.where(one_hot, self.n_codes, 0))])
        self.value_base = np.concatenate([[0], np.cumsum(np.where(valued, self.n_codes * self.width, 0))])
        for k in np.flatnonzero(one_hot).tolist():
            s = self.slots[self.code_base[k] : self.code_base[k + 1]]
            if (s < -1).any() or (s >= self.width[k]).any():
                raise InvalidWeights(f"{what}: pre{i}.slots of part {k} must be in [-1, {self.width[k]})")
        self.width_out = int(self.offsets[-1])
        if (self.source >= width_in).any():
            raise InvalidWeights(f"{what}: pre{i}.source out of range")
        self.numeric_parts = np.flatnonzero(self.n_codes == 0)
        self.onehot_parts = np.flatnonzero(self.n_codes > 0)

    def code_index(self, X: np.ndarray, table_base: np.ndarray) -> np.ndarray:
        """(n, one-hot parts) indices into a per-part table laid end to end (each n_codes + 1 long, the
        last entry standing for "no column")."""
        parts = self.onehot_parts
        codes = X[:, self.source[parts]]
        n = self.n_codes[parts]
        ok = (codes >= 0) & (codes < n)
        idx = np.where(ok, codes, n).astype(np.intp)
        idx += table_base
        return idx

    def _values(self, k: int) -> np.ndarray:
        """A value part's (n_codes, width) table."""
        a, b = self.value_base[k], self.value_base[k + 1]
        return self.values[a:b].reshape(int(self.n_codes[k]), int(self.width[k]))

    def expand(self, X: np.ndarray) -> np.ndarray:
        """The dense output (for kernels that need it: MLP, trees behind one-hot)."""
        out = np.zeros((X.shape[0], self.width_out))
        num = self.numeric_parts
        out[:, self.offsets[num]] = X[:, self.source[num]]
        rows = np.arange(X.shape[0])
        for k in self.onehot_parts.tolist():
            n = int(self.n_codes[k])
            if self.kind[k] == 2:
                c = X[:, self.source[k]]
                code = np.where((c >= 0) & (c < n), c, n - 1).astype(np.intp)  # out of range: the last (unknown)
                out[:, self.offsets[k] : self.offsets[k + 1]] = self._values(k)[code]
                continue
            table = np.append(self.slots[self.code_base[k] : self.code_base[k + 1]], -1)
            c = X[:, self.source[k]]
            slot = table[np.where((c >= 0) & (c < n), c, n).astype(np.intp)]
            hit = slot >= 0
            out[rows[hit], self.offsets[k] + slot[hit]] = 1.0
        return out

    def fold(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A linear layer over the output, ``coef`` (width_out, k), as (numeric sources, their coef (m, k),
        table (sum(n_codes + 1), k), table base per one-hot part): the decision is
        ``X[:, sources] @ coef_num + table[code_index(X)].sum(parts)``, no dense one-hot."""
        num = self.numeric_parts
        rows, bases, at = [], [], 0
        for k in self.onehot_parts.tolist():
            if self.kind[k] == 2:  # values per code times their weights; out of range reads as unknown
                t = self._values(k) @ coef[self.offsets[k] : self.offsets[k + 1]]
                rows.append(np.vstack([t, t[-1:]]))
                bases.append(at)
                at += t.shape[0] + 1
                continue
            s = np.append(self.slots[self.code_base[k] : self.code_base[k + 1]], -1)
            t = np.where((s >= 0)[:, None], coef[np.maximum(s, 0) + self.offsets[k]], 0.0)
            rows.append(t)
            bases.append(at)
            at += s.size
        table = np.concatenate(rows) if rows else np.zeros((0, coef.shape[1]))
        return (self.source[num].astype(np.intp), np.ascontiguousarray(coef[self.offsets[num]]),
                np.ascontiguousarray(table), np.asarray(bases, dtype=np.intp))
