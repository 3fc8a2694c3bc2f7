"""Categorical splits of the tree kernels (HistGradientBoosting, LightGBM, XGBoost), optional arrays.

- ``cat_split`` uint8 (N,): 0 numeric split (``x <= threshold``); 1 the node's category set goes left and
  every other code right; 2 the set goes right and every other code left (XGBoost partition splits);
- ``cat_bits`` uint8 (C, B), C = number of nodes with ``cat_split != 0``, in node order: bit ``c & 7`` of byte
  ``c >> 3`` of row r set means code ``c`` is in the set of the r-th categorical node.

A categorical node reads its input as a category code: NaN follows ``missing_left``; a negative value or
one at or beyond ``8 * B`` is an "other" code; any other value is truncated toward zero (as LightGBM and
XGBoost cast it to int). scikit-learn's HistGradientBoosting never sees anything but exact codes or NaN:
its categorical inputs are encoded before the kernel (``scorer.models.categorical``), unknown ones to NaN.

Scoring walks the stored node layout one vectorised step per level over a (trees, rows) matrix of node
ids, leaves pointing to themselves; numeric nodes compare in the same step, so a call costs O(depth)
numpy operations. Models without ``cat_split`` never reach this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.errors import InvalidWeights


class CategoricalSplits:
    """Validated categorical split tables plus the walker over the stored node layout."""

    def __init__(self, model: Any, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                 right: np.ndarray, missing_left: np.ndarray | None, base: np.ndarray, leaf: np.ndarray) -> None:
        n_nodes = feature.size
        what = model._what()
        flags = model._array("cat_split", shape=(n_nodes,), dtype="uint8")
        if (flags > 2).any():
            raise InvalidWeights(f"{what}: cat_split must hold 0, 1 or 2; got values {np.unique(flags)[:5].tolist()}")
        is_cat = flags != 0
        if (is_cat & leaf).any():
            bad = np.flatnonzero(is_cat & leaf)[:5].tolist()
            raise InvalidWeights(f"{what}: cat_split is set on leaf node(s) {bad}")
        c = int(is_cat.sum())
        bits = model._array("cat_bits", ndim=2, dtype="uint8")
        if bits.shape[0] != c or bits.shape[1] < 1:
            raise InvalidWeights(f"{what}: cat_bits must be ({c}, B>=1) for {c} categorical node(s); got {bits.shape}")
        if missing_left is None:
            missing_left = np.zeros(n_nodes, dtype=np.uint8)
        ids = np.arange(n_nodes)
        self.row = np.full(n_nodes, -1, dtype=np.intp)
        self.row[is_cat] = np.arange(c)
        self.is_cat = is_cat
        self.set_right = flags == 2
        self.n_codes = 8 * bits.shape[1]
        self.bits = bits
        self.feature = np.where(leaf, 0, feature).astype(np.intp)
        self.threshold = np.where(leaf | is_cat, np.inf, threshold).astype(np.float64)
        self.missing_right = (missing_left == 0) & ~leaf
        owner = np.repeat(base, np.diff(np.append(base, n_nodes)))  # each node's tree's first node
        self.left = np.where(leaf, ids, owner + left).astype(np.intp)
        self.right = np.where(leaf, ids, owner + right).astype(np.intp)
        self.moving = ~leaf
        self.roots = base.astype(np.intp)
        self.depth = _depth(self.roots, leaf, self.left, self.right)

    def walk(self, X: np.ndarray) -> np.ndarray:
        """Stored node id of the leaf each (tree, row) reaches: an (n_trees, n_rows) array."""
        m = X.shape[0]
        j = np.repeat(self.roots[:, np.newaxis], m, axis=1)
        rows = np.broadcast_to(np.arange(m), j.shape)
        for _ in range(self.depth):
            if not self.moving[j].any():
                break
            x = X[rows, self.feature[j]]
            nan = np.isnan(x)
            right = x > self.threshold[j]
            cat = self.is_cat[j]
            if cat.any():
                jc, xc = j[cat], x[cat]
                ok = (xc >= 0) & (xc < self.n_codes)  # False for NaN
                code = np.where(ok, xc, 0).astype(np.intp)
                inside = ok & ((self.bits[self.row[jc], code >> 3] >> (code & 7).astype(np.uint8)) & 1).astype(bool)
                right[cat] = inside == self.set_right[jc]
            right = np.where(nan, self.missing_right[j], right)
            j = np.where(right, self.right[j], self.left[j])
        return j


def _depth(roots: np.ndarray, leaf: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    """Depth of the deepest tree (validation already bounded it)."""
    frontier, depth = roots, 0
    while True:
        inner = frontier[~leaf[frontier]]
        if not inner.size:
            return depth
        depth += 1
        frontier = np.concatenate([left[inner], right[inner]])


def bitset(codes: np.ndarray, width: int) -> np.ndarray:
    """``codes`` (non-negative ints) as a uint8 bitset of ``width`` bytes (the layout of ``cat_bits``)."""
    codes = np.asarray(codes, dtype=np.int64)
    bits = np.zeros(width, dtype=np.uint8)
    np.bitwise_or.at(bits, codes >> 3, (np.uint8(1) << (codes & 7).astype(np.uint8)))
    return bits


def stack_bitsets(rows: list[np.ndarray]) -> np.ndarray:
    """Per-node bitsets of varying widths -> one (C, B) uint8 array, zero padded."""
    width = max((r.size for r in rows), default=1)
    return np.ascontiguousarray(np.stack([np.pad(r, (0, width - r.size)) for r in rows]), dtype=np.uint8)
