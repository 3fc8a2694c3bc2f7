"""Tree ensembles: ``forest`` (averaged trees), ``boosted`` (GradientBoosting) and ``hist_boosted`` (HistGB).

Why three architectures: scikit-learn scores them with three different input semantics, and each arch
pins one down so that the stored arrays alone decide every prediction.

==============  ===================================  ==================  =====================  ==============
arch            estimators                           inputs compared as  NaN input              output
==============  ===================================  ==================  =====================  ==============
forest          DecisionTree*, RandomForest*,        float32             follows missing_left   mean of trees
                ExtraTrees* (Classifier/Regressor)                       (inf refused)
boosted         GradientBoosting*                    float32             refused                baseline + sum,
                                                                                                then link
hist_boosted    HistGradientBoosting* (numeric)      float64             follows missing_left   baseline + sum,
                                                                         (inf accepted)         then link
==============  ===================================  ==================  =====================  ==============

Stored arrays (all trees of the ensemble packed end to end; N nodes in all, T trees):

- ``offsets`` int64 (T+1,): tree t owns nodes ``offsets[t]:offsets[t+1]``, its root first;
- ``feature`` int32 (N,): input column tested at the node, -1 at leaves;
- ``threshold`` float64 (N,): go left when ``x <= threshold`` (never NaN; +-inf allowed);
- ``left``/``right`` int32 (N,): child indices *local to the tree*, -1 at leaves;
- ``missing_left`` uint8 (N,) (forest, hist_boosted): where a NaN input goes;
- ``value`` float64: forest (N, k) per-tree output (class fractions, or (N, 1) for regression);
  boosted archs (N,) leaf contributions (GradientBoosting's already multiplied by the learning rate);
- ``baseline`` float64 (K,) (boosted archs): the raw prediction before any tree (the init estimator's);
- ``cat_split`` uint8 (N,) and ``cat_bits`` uint8 (C, B), optional: categorical splits (category sets as
  bitsets, :mod:`scorer.models.tree_cat`); a model with them is walked on its stored layout.

Boosted trees are stored stage-major: tree ``t`` adds to raw output ``t % K``. ``metadata["link"]`` maps raw
to output: ``identity``, ``log`` (exp), ``logit`` (binary, rows [1-p, p]), ``half_logit`` (expit(2 raw),
exponential loss) or ``softmax``.

Validation proves each packed tree is a tree: children point strictly forward inside their own tree and
every node but the root has exactly one parent, so there are no cycles, no shared or orphan nodes, and no
index can leave the arrays; depth is at most ``MAX_DEPTH``.

Scoring moves a (rows x trees) matrix of node indices down one level per numpy step, so a call costs
O(depth) vectorised operations and no Python work per node or per row. Two layouts are built from the
stored arrays (never stored themselves):

- padded, when it costs little memory (shallow, bushy trees: GradientBoosting, depth-limited forests):
  each tree becomes a complete binary tree stored level by level, child = 2 * index + went_right. The
  first ``_DENSE_LEVELS`` levels are scored densely (every node of the level compared, the path's node
  picked with boolean multiplexing), the rest one gather step per level;
- plain, for deep trees: nodes renumbered breadth first so that a right child is its left child + 1 and
  leaves point to themselves (threshold +inf: every input stays). Finished (row, tree) pairs are dropped
  every other level once they are a good share, so unbalanced trees cost about their mean path length.

Two more ways to the same leaves, chosen when the arrays are built: a padded model with few splits per tree
and level (boosters' sparse depth-limited trees: XGBoost's, LightGBM's) scores batches of ``_PLANES_MIN_ROWS``
rows or more by bit planes (:mod:`scorer.models.tree_planes`: each distinct split compared once per block of
rows, paths carried as bit masks); and a ``hist_boosted`` model whose every threshold is a float32 boundary
(XGBoost's) compares float32 inputs, which decides exactly as float64 does (``tree_layout._decided_in_f32``).
Padded layouts fold NaN into the inputs (a node sending NaN right reads a copy of X with NaN as +inf, the
others a copy with NaN as -inf), so neither the walk nor the planes test NaN per node.

The trees' outputs are then summed tree after tree in scikit-learn's order (the boosted baseline folded
into the first stage), so scores are bit-identical to scikit-learn's, in batches and one row at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from scorer.models._numeric import expit_, softmax_
from scorer.models.base import Model
from scorer.models.registry import register
from scorer.models.tree_layout import _DENSE_LEVELS, LINKS, MAX_DEPTH, TreeLayout  # noqa: F401 - re-exported
from scorer.models.tree_planes import ROWS as PLANE_ROWS

#: (row, tree) pairs per chunk, by input itemsize: keeps the per-level temporaries in the CPU cache
_CHUNK = {4: 32768, 8: 16384}
#: batches from this many rows take the bit planes when the layout has them (below, their fixed cost per
#: block outweighs the walk's per-level steps)
_PLANES_MIN_ROWS = 256
_DENSE_MIN = 1024
#: plain layout: every other level, drop the (row, tree) pairs already at a leaf once they are this share
#: of the moving ones (deep, unbalanced trees: HistGradientBoosting's, unbounded forests) ...
_COMPACT_SHARE = 0.25
_COMPACT_EVERY = 2
#: ... in chunks of at least this many pairs (below, the extra numpy calls cost more than they save)
_COMPACT_MIN = 2048


class _TreeEnsemble(TreeLayout, Model):
    """Shared validation and traversal; subclasses fix the input semantics and the aggregation."""

    #: inputs are rounded to float32 before comparing, as scikit-learn's DecisionTree-based estimators do
    float32_inputs: ClassVar[bool]
    #: NaN inputs follow ``missing_left`` (else they are refused)
    routes_nan: ClassVar[bool]
    #: +-inf inputs are legal (HistGradientBoosting) or refused (float32 trees: scikit-learn raises)
    accepts_inf: ClassVar[bool]
    boosted: ClassVar[bool]
    # every kernel scans its own (possibly float32-rounded) inputs once, so the base class need not
    checks_own_input: ClassVar[bool] = True

    # -- scoring --------------------------------------------------------------------------------------
    def _inputs(self, X: np.ndarray) -> tuple[np.ndarray, bool]:
        """The array the trees compare (float32-rounded or not) and whether it holds NaN; refuses the illegal."""
        if self.float32_inputs or self._cast32:  # _cast32: decisions proven identical in float32 (tree_layout)
            with np.errstate(over="ignore"):
                Xc = X.astype(np.float32)
        else:
            Xc = X
        if self.accepts_inf:
            return Xc, bool(np.isnan(Xc).any())
        if np.isfinite(Xc).all():
            return Xc, False
        if not self.routes_nan:
            if not np.isfinite(X).all():
                self._reject_nonfinite(X)
        elif np.isinf(X).any():
            raise ValueError(
                f"{self._what()}: input has inf in column(s) {self._columns(np.isinf(X))} (NaN is legal, inf is not)"
            )
        if np.isinf(Xc).any():
            raise ValueError(
                f"{self._what()}: input column(s) {self._columns(np.isinf(Xc))} hold values beyond float32 range, "
                "which scikit-learn's trees refuse (they compare inputs as float32)"
            )
        return Xc, True

    def _columns(self, bad: np.ndarray) -> list[str]:
        cols = np.flatnonzero(bad.any(axis=0))[:10]
        if bad.shape[1] == self.n_features:
            return [self.feature_names[i] for i in cols]
        return [f"input {i}" for i in cols]

    def _leaf_values(self, X: np.ndarray, has_nan: bool, emit: Callable[[int, int, np.ndarray], None]) -> None:
        """Walk every row down every tree; call ``emit(start, stop, leaves)`` per chunk, leaves (trees, rows).

        Chunks are transposed (features, rows) so that the dense levels gather whole contiguous input rows,
        and the leaves come out tree-major, ready to be summed tree after tree.
        """
        n = X.shape[0]
        T = self._n_trees
        planes = self._planes if n >= _PLANES_MIN_ROWS else None
        step = PLANE_ROWS if planes is not None else max(1, _CHUNK[X.itemsize] // T)
        for s in range(0, n, step):
            Xc = X[s : s + step]
            m = Xc.shape[0]
            if self._depth == 0:
                j = np.broadcast_to(self._roots[:, np.newaxis], (T, m))
            elif planes is not None:
                j = planes.walk(Xc, self._fold_nan)
            elif self._cat is not None:
                j = self._cat.walk(Xc)
            else:
                j = self._walk(Xc, has_nan)
            emit(s, s + m, j)

    def _walk(self, Xc: np.ndarray, has_nan: bool) -> np.ndarray:
        Xt = np.ascontiguousarray(Xc.T)
        m, T, depth = Xc.shape[0], self._n_trees, self._depth
        isnan = np.isnan
        # Dense levels: compare every node of the level (row gathers and compares cost far less than the
        # gathers of a path step, and nearly every path is still moving there), then multiplex each tree's
        # node on the path from the bits taken so far.
        dense = min(depth, _DENSE_LEVELS if m * T >= _DENSE_MIN else 1)
        bits: list[np.ndarray] = []
        for lv in range(dense):
            feat, thr, mright = self._top[lv]
            x = Xt[feat]
            b = x > thr
            if has_nan:
                b |= isnan(x) & mright
            if lv:
                by_pos = b.reshape(T, 1 << lv, m)
                cands = [by_pos[:, p] for p in range(1 << lv)]
                for sel in reversed(bits):  # positions differ last in the latest bit
                    cands = [lo ^ ((lo ^ hi) & sel) for lo, hi in zip(cands[0::2], cands[1::2], strict=True)]
                b = cands[0]
            bits.append(b)
        code = bits[0].view(np.uint8).copy()
        for b in bits[1:]:
            code <<= 1
            code |= b.view(np.uint8)
        j = np.add(self._top_base[dense], code, dtype=np.intp)
        if self._complete:
            return self._descend(Xc, j, dense, has_nan)
        thrs, mrights = self._thrs, self._mrights
        # Plain layout, walked row-major (a step's input reads stay within a row). Deep, unbalanced trees
        # leave most pairs at leaves long before the deepest level, so every other level the finished pairs
        # are parked once they are a good share, and only the rest move on.
        j = np.ascontiguousarray(self._top_map[dense][j].T)
        packed, moving, shift = self._packed, self._moving, self._shift
        fmask = (1 << shift) - 1
        thr, mright = thrs[0], mrights[0]
        flat = Xc.ravel()
        off = np.arange(0, m * Xc.shape[1], Xc.shape[1], dtype=np.intp)[:, np.newaxis]
        compact = m * T >= _COMPACT_MIN
        pos = full = None
        for lv in range(dense, depth):
            if compact and not (lv - dense) % _COMPACT_EVERY:
                still = moving[j]
                if np.count_nonzero(still) <= (1 - _COMPACT_SHARE) * still.size:
                    if pos is None:
                        j, still = j.ravel(), still.ravel()
                        full = j.copy()
                        pos = np.arange(j.size)
                        off = np.repeat(off[:, 0], T)
                    else:
                        full[pos] = j
                    keep = np.flatnonzero(still)
                    j, pos, off = j[keep], pos[keep], off[keep]
                    if not j.size:
                        break
            elif not compact and not lv % 4 and not moving[j].any():
                break  # small batches: stop once every path has ended
            code = packed[j]
            f = code & fmask
            f += off
            x = flat[f]
            r = x > thr[j]
            if has_nan:
                r |= isnan(x) & mright[j]
            j = code >> shift
            j += r
        if pos is not None:
            full[pos] = j
            j = full.reshape(m, T)
        return np.ascontiguousarray(j.T)

    def _descend(self, Xc: np.ndarray, j: np.ndarray, dense: int, has_nan: bool) -> np.ndarray:
        """Padded layout below the dense levels: one gather step per level, child = 2 i + went_right.

        Seven numpy calls a level, all writing into buffers of the chunk's size: inputs are read row-major
        (a row's features share cache lines) and NaN is folded into them (``_fold_nan``), so no step tests it.
        """
        m, width = Xc.shape
        feats, thrs, mrights = self._feats, self._thrs, self._mrights
        if self._fold_nan:
            src = np.empty((m, 2, width), Xc.dtype)
            if has_nan:
                nan = np.isnan(Xc)
                src[:, 0] = np.where(nan, -np.inf, Xc)
                src[:, 1] = np.where(nan, np.inf, Xc)
                has_nan = False
            else:
                src[...] = Xc[:, np.newaxis]
            width *= 2
            src = src.reshape(m, width)
        else:
            src = Xc
        flat = src.ravel()
        if j.size < _DENSE_MIN:  # a few rows: plain calls cost less than keyword parsing and buffers
            rows = np.arange(0, m * width, width) if m > 1 else None
            for lv in range(dense, self._depth):
                f = feats[lv][j]
                if rows is not None:
                    f += rows
                x = flat[f]
                r = x > thrs[lv][j]
                if has_nan:
                    r |= np.isnan(x) & mrights[lv][j]
                j += j  # on small arrays, faster than a shift by a scalar
                j += r
            return j
        rowoff = np.arange(0, m * width, width, dtype=np.intp)
        idx = np.empty_like(j)
        x = np.empty(j.shape, flat.dtype)
        t = np.empty(j.shape, thrs[0].dtype)
        r = np.empty(j.shape, bool)
        for lv in range(dense, self._depth):
            feats[lv].take(j, out=idx, mode="clip")  # in range by construction; "clip" spares a checked copy
            idx += rowoff
            flat.take(idx, out=x, mode="clip")
            thrs[lv].take(j, out=t, mode="clip")
            np.greater(x, t, out=r)
            if has_nan:
                r |= np.isnan(x) & mrights[lv].take(j, mode="clip")
            j <<= 1
            j |= r
        return j


def _sum_trees(v: np.ndarray) -> np.ndarray:
    """Sum (trees, rows) over the trees one tree after another, as scikit-learn accumulates them.

    Reducing axis 0 of a C-ordered array adds whole rows in order (vectorised over the rows); a single
    column would be summed pairwise instead, so that case runs a running sum.
    """
    if v.shape[1] == 1:
        return np.add.accumulate(v[:, 0])[-1:]
    return np.add.reduce(v, axis=0)


@register
class ForestModel(_TreeEnsemble):
    """Mean of the trees' outputs (class fractions or values), as scikit-learn's forests average them."""

    arch: ClassVar[str] = "forest"
    handles_missing: ClassVar[bool] = True
    float32_inputs: ClassVar[bool] = True
    routes_nan: ClassVar[bool] = True
    accepts_inf: ClassVar[bool] = False
    boosted: ClassVar[bool] = False

    def _predict(self, X: np.ndarray) -> np.ndarray:
        Xc, has_nan = self._inputs(X)
        vals = self._vals
        out = np.empty((X.shape[0], len(vals)))

        def emit(a: int, b: int, j: np.ndarray) -> None:
            for c, v in enumerate(vals):
                out[a:b, c] = _sum_trees(v[j])

        self._leaf_values(Xc, has_nan, emit)
        out /= self._n_trees
        return out if self.classes is not None else out[:, 0]


class _Boosted(_TreeEnsemble):
    boosted: ClassVar[bool] = True

    def _predict(self, X: np.ndarray) -> np.ndarray:
        Xc, has_nan = self._inputs(X)
        values = self._vals[0]
        K = self._k_raw
        raw = np.empty((X.shape[0], K))

        def emit(a: int, b: int, j: np.ndarray) -> None:
            v = values[j]  # (trees, rows); the first stage holds the baseline
            if K == 1:
                raw[a:b, 0] = _sum_trees(v)
            else:
                raw[a:b] = np.add.reduce(v.reshape(-1, K * (b - a)), axis=0).reshape(K, b - a).T

        self._leaf_values(Xc, has_nan, emit)
        link = self._link
        if link == "identity":
            return raw[:, 0]
        if link == "log":
            return np.exp(raw[:, 0])
        if link == "softmax":
            return softmax_(raw)
        p = raw[:, 0]
        if link == "half_logit":
            p *= 2.0
        expit_(p)
        out = np.empty((p.shape[0], 2))
        out[:, 1] = p
        np.subtract(1.0, p, out=out[:, 0])
        return out


@register
class BoostedModel(_Boosted):
    """GradientBoosting: float32-rounded inputs like its trees, NaN refused as scikit-learn does."""

    arch: ClassVar[str] = "boosted"
    handles_missing: ClassVar[bool] = False
    float32_inputs: ClassVar[bool] = True
    routes_nan: ClassVar[bool] = False
    accepts_inf: ClassVar[bool] = False


@register
class HistBoostedModel(_Boosted):
    """HistGradientBoosting on numeric features: float64 inputs, NaN follows each node's missing_left."""

    arch: ClassVar[str] = "hist_boosted"
    handles_missing: ClassVar[bool] = True
    float32_inputs: ClassVar[bool] = False
    routes_nan: ClassVar[bool] = True
    accepts_inf: ClassVar[bool] = True
