"""Bit-plane traversal of padded tree ensembles whose trees hold few real splits (XGBoost's, typically).

A depth-limited booster tree is sparse: XGBoost's depth-8 trees hold some 30 leaves, yet walking them one
gather step per level costs several numpy passes per (row, tree) pair and level. Here each real split is
instead compared once against a block of rows (one broadcast comparison per input column, packed to bits),
and the rows reaching each node travel as bit masks, level by level: the rows going right at a split are
its mask AND its comparison bits, the rest go left. A tree's rows going right at a level is the union over
its splits there; the masks are disjoint, so a prefix XOR gives it. The bit planes of up to 8 levels,
transposed as 8x8 bit matrices, give every (tree, row) its slot in the padded layout of
:mod:`scorer.models.tree_layout`, the same slot the step-by-step walk reaches: decisions are identical
(``x > threshold`` goes right; NaN is folded into the inputs as there), and the caller sums the same leaves.

It pays while a tree holds few splits per level (the comparisons grow with them, the walk with the depth
only), so the layout builds it only then (``SPLITS_PER_LEVEL``), for trees up to ``MAX_PLANES`` deep, and
the model uses it from ``_PLANES_MIN_ROWS`` rows (:mod:`scorer.models.trees`).
"""

from __future__ import annotations

import numpy as np

#: deepest trees scored by planes: one byte of path bits per (tree, row)
MAX_PLANES = 8
#: planes are built when the model has at most this many splits per tree and level: measured 1.3x the
#: walk at 4 (XGBoost, depth 8) and at 10 (LightGBM, 255 leaves, depth 8), break-even near 13
SPLITS_PER_LEVEL = 12
#: rows per block, a multiple of 64: the comparison bits of every split stay in cache
ROWS = 1024

_TRANSPOSE = [(np.uint64(s), np.uint64(m)) for s, m in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC),
                                                          (28, 0x00000000F0F0F0F0))]


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transpose the 8x8 bit matrix held in each uint64 (bit i of byte k -> bit k of byte i), in place."""
    for s, mask in _TRANSPOSE:
        t = x >> s
        t ^= x
        t &= mask
        x ^= t
        t <<= s
        x ^= t
    return x


class BitPlanes:
    """Comparison groups and per-level tables of a padded layout, and the block scorer over them."""

    def __init__(self, levels: list[np.ndarray], trees: list[np.ndarray], leaf: np.ndarray, col: np.ndarray,
                 threshold: np.ndarray, n_trees: int, depth: int) -> None:
        """``levels``/``trees``: the breadth-first node ids of each level and their trees (tree by tree, the
        children of a level's splits in order, left before right); ``col``: the input column each split reads."""
        splits = np.concatenate([ids[~leaf[ids]] for ids in levels[:depth]])
        # One comparison row per distinct (column, threshold): histogram boosters reuse their bin edges, so
        # XGBoost's and LightGBM's models hold two to four splits per distinct comparison.
        by_col = splits[np.lexsort((threshold[splits], col[splits]))]
        c, t = col[by_col], threshold[by_col]
        new = np.ones(by_col.size, dtype=bool)
        new[1:] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
        row_of = np.zeros(leaf.size, dtype=np.intp)
        row_of[by_col] = np.cumsum(new) - 1
        distinct = by_col[new]
        cols, starts = np.unique(col[distinct], return_index=True)
        ends = np.append(starts[1:], distinct.size)
        self._groups = [(int(c), int(a), int(b), threshold[distinct[a:b]][:, np.newaxis])
                        for c, a, b in zip(cols, starts, ends, strict=True)]
        self._n_splits = distinct.size
        self._widest = int((ends - starts).max())
        self._levels = []
        for ids, tree in zip(levels[:depth], trees[:depth], strict=True):
            inner = ~leaf[ids]
            tr = tree[inner]
            present, first = np.unique(tr, return_index=True)  # a level lists its nodes tree by tree
            last = np.append(first[1:], tr.size) - 1
            self._levels.append((np.flatnonzero(inner), row_of[ids[inner]], present, first - 1, last))
        self._n_trees, self._depth = n_trees, depth
        self._base = (np.arange(n_trees, dtype=np.intp) << depth)[:, np.newaxis]

    def walk(self, X: np.ndarray, fold_nan: bool) -> np.ndarray:
        """Padded slot each (tree, row) ends in: (n_trees, rows) intp. ``X``: at most ``ROWS`` rows, compared
        in its dtype; ``fold_nan``: the splits read columns of [X, NaN -> -inf | X, NaN -> +inf]."""
        m, width = X.shape
        mp = -(-m // 64) * 64
        Xt = np.zeros((2 * width if fold_nan else width, mp), X.dtype)  # padding rows: scored, then dropped
        if fold_nan:
            nan = np.isnan(X)
            Xt[:width, :m] = np.where(nan, -np.inf, X).T
            Xt[width:, :m] = np.where(nan, np.inf, X).T
        else:
            Xt[:, :m] = X.T
        P = np.empty((self._n_splits, mp // 8), np.uint8)
        # numpy compares two contiguous operands several times faster than a column against a row: the
        # thresholds are spread over a buffer first
        spread = np.empty((self._widest, mp), X.dtype)
        above = np.empty((self._widest, mp), bool)
        for c, a, b, thr in self._groups:
            t, r = spread[: b - a], above[: b - a]
            t[...] = thr
            np.greater(Xt[c], t, out=r)
            P[a:b] = np.packbits(r, axis=1, bitorder="little")  # bit i of byte k: row 8 k + i
        P64 = P.view(np.uint64)
        T, D = self._n_trees, self._depth
        reach = np.full((T, mp // 64), ~np.uint64(0))
        planes = np.zeros((T, mp // 8, 8), np.uint8)  # per tree and byte of rows, a byte per level
        for lv, (pos, rows, present, before, last) in enumerate(self._levels):
            here = reach.take(pos, axis=0)
            right = here & P64.take(rows, axis=0)
            cum = np.bitwise_xor.accumulate(right, axis=0)
            plane = cum[last]
            some = before >= 0
            plane[some] ^= cum[before[some]]
            planes[present, :, D - 1 - lv] = plane.view(np.uint8)
            here ^= right
            reach = np.stack([here, right], axis=1).reshape(-1, mp // 64)
        code = _transpose8(planes.view(np.uint64)[..., 0]).view(np.uint8)  # byte of each row: its path bits
        return np.add(self._base, code[:, :m], dtype=np.intp)
