"""Validating and packing stored tree arrays for the tree kernels (:mod:`scorer.models.trees`).

Validation proves the arrays describe finite, acyclic trees with indices in range before anything scores;
packing lays the trees out for the vectorised traversal (dense first levels, complete-tree padding when it
is cheap). A mixin of the tree ensemble models: it reads arrays through ``Model._array``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models.tree_cat import CategoricalSplits, stack_bitsets
from scorer.models.tree_planes import MAX_PLANES, SPLITS_PER_LEVEL, BitPlanes

#: deepest tree accepted; scoring runs one vectorised step per level, so this bounds the cost of a call
MAX_DEPTH = 256
LINKS = ("identity", "log", "logit", "half_logit", "softmax")
#: complete-tree padding is used while it costs at most this factor of the plain layout (plus a little)
_PAD_FACTOR = 2.0
_PAD_SLACK_BYTES = 1 << 20
#: both layouts: the first levels scored densely (all 2**level nodes of each tree), for chunks of at least
#: _DENSE_MIN (row, tree) pairs; smaller batches (one row) take fewer, path-step numpy calls instead
_DENSE_LEVELS = 3


def _floor_f32(t: np.ndarray) -> np.ndarray:
    """Largest float32 <= each value: ``float32(x) <= t`` iff ``float32(x) <= floor32(t)`` for float32 x.

    scikit-learn compares float32 inputs with float64 thresholds; storing the thresholds rounded down to
    float32 keeps every decision identical while the comparison runs in float32.
    """
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    up = t32.astype(np.float64) > t
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


def _decided_in_f32(t: np.ndarray) -> bool:
    """Whether ``x <= t`` equals ``float32(x) <= floor32(t)`` for every input x, at every threshold.

    True when each t is the largest float64 that rounds to at most its float32 floor (XGBoost's
    thresholds, which the reader derives from float32 ``x < t``): rounding is monotone, so
    ``x <= t`` gives ``float32(x) <= float32(t) == floor32(t)``, and ``x > t`` gives
    ``float32(x) >= float32(nextafter(t)) > floor32(t)``. Such a model compares float32 inputs (half
    the memory traffic) and decides exactly as in float64, infinities and overflowing inputs included.
    """
    finite = t[t != np.inf]
    if not finite.size:
        return bool(t.size)
    c = _floor_f32(finite)
    with np.errstate(over="ignore"):
        same = finite.astype(np.float32) == c
        above = np.nextafter(finite, np.inf).astype(np.float32) > c
    return bool((same & above).all())


def pack_trees(
    blocks: Sequence[Mapping[str, np.ndarray]], *, with_missing: bool, cat_bits: Sequence[np.ndarray] = ()
) -> dict[str, np.ndarray]:
    """Per-tree node arrays (local child indices, -1 at leaves) -> the stored layout, trees end to end.

    Each block has ``feature``, ``threshold``, ``left``, ``right``, ``value`` and, ``with_missing``,
    ``missing_left``; blocks may carry ``cat_split`` (see :mod:`scorer.models.tree_cat`), with one bitset
    per categorical node, in node order, in ``cat_bits``. Every writer of tree arrays (the scikit-learn
    exporters, the LightGBM and XGBoost readers) packs through here.
    """
    sizes = [b["left"].size for b in blocks]
    arrays = {
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "feature": np.concatenate([b["feature"] for b in blocks]).astype(np.int32),
        "threshold": np.concatenate([b["threshold"] for b in blocks]).astype(np.float64),
        "left": np.concatenate([b["left"] for b in blocks]).astype(np.int32),
        "right": np.concatenate([b["right"] for b in blocks]).astype(np.int32),
        "value": np.ascontiguousarray(np.concatenate([b["value"] for b in blocks]), dtype=np.float64),
    }
    if with_missing:
        arrays["missing_left"] = np.concatenate([b["missing_left"] for b in blocks]).astype(np.uint8)
    flags = [b["cat_split"] if "cat_split" in b else np.zeros(n, np.uint8) for b, n in zip(blocks, sizes, strict=True)]
    if cat_bits:
        arrays["cat_split"] = np.concatenate(flags).astype(np.uint8)
        arrays["cat_bits"] = stack_bitsets(list(cat_bits))
    return arrays


class TreeLayout:
    """Validation (``_validate``) and packing (``_pack``) of the tree ensembles' arrays."""

    # -- validation -----------------------------------------------------------------------------------
    def _validate(self) -> None:
        offsets = self._array("offsets", ndim=1, dtype="int64")
        if offsets.size < 2 or offsets[0] != 0:
            head = offsets[:5].tolist()
            raise InvalidWeights(
                f"{self._what()}: offsets must start at 0 and hold n_trees + 1 >= 2 entries; got {head}"
                f"{'...' if offsets.size > 5 else ''} (length {offsets.size})"
            )
        sizes = np.diff(offsets)
        if (sizes < 1).any():
            t = int(np.flatnonzero(sizes < 1)[0])
            raise InvalidWeights(f"{self._what()}: offsets must increase (no empty tree); tree {t} has {sizes[t]}")
        n_nodes, n_trees = int(offsets[-1]), int(sizes.size)
        feature = self._array("feature", shape=(n_nodes,), dtype="int32")
        threshold = self._array("threshold", shape=(n_nodes,), finite=False)
        left = self._array("left", shape=(n_nodes,), dtype="int32")
        right = self._array("right", shape=(n_nodes,), dtype="int32")
        missing_left = None
        if self.routes_nan:
            missing_left = self._array("missing_left", shape=(n_nodes,), dtype="uint8")
            if (missing_left > 1).any():
                got = np.unique(missing_left)[:5].tolist()
                raise InvalidWeights(f"{self._what()}: missing_left must hold 0 or 1; got values {got}")
        if self.boosted:
            self._validate_boosted(n_trees)
            # Fold the baseline into the first stage's trees: summing the trees in order then repeats
            # scikit-learn's additions exactly, ((baseline + tree 0) + tree 1) + ...
            values = self._array("value", shape=(n_nodes,)).astype(np.float64)[:, np.newaxis]
            for t, b in enumerate(self._baseline):
                values[offsets[t] : offsets[t + 1]] += b
        else:
            values = self._array("value", ndim=2)
            self._array("value", shape=(n_nodes, None))
            k = values.shape[1]
            if self.classes is not None:
                self._check_classes(k, f"value with {k} column(s)")
            elif k != 1:
                raise InvalidWeights(f"{self._what()}: a regression forest has value (n_nodes, 1); got {k} columns")
        nan = np.isnan(threshold)
        if nan.any():
            i = int(np.flatnonzero(nan)[0])
            raise InvalidWeights(f"{self._what()}: threshold is NaN at node {i} (of {int(nan.sum())})")

        tree_of = np.repeat(np.arange(n_trees), sizes)
        local = np.arange(n_nodes) - offsets[tree_of]
        leaf = left == -1
        internal = ~leaf

        def fail(bad: np.ndarray, why: str) -> None:
            i = int(np.flatnonzero(bad)[0])
            raise InvalidWeights(
                f"{self._what()}: tree {int(tree_of[i])} node {int(local[i])}: {why} left={int(left[i])} "
                f"right={int(right[i])} feature={int(feature[i])} ({int(bad.sum())} bad node(s) in all)"
            )

        bad = (right == -1) != leaf
        if bad.any():
            fail(bad, "left and right must both be -1 (a leaf) or both be children; got")
        bad = leaf & (feature != -1)
        if bad.any():
            fail(bad, "a leaf must have feature -1; got")
        bad = internal & ((feature < 0) | (feature >= self.n_inputs))
        if bad.any():
            fail(bad, f"feature must be in [0, {self.n_inputs}) (the model's input width); got")
        size_of = sizes[tree_of]
        for name, child in (("left", left), ("right", right)):
            bad = internal & ((child <= local) | (child >= size_of))
            if bad.any():
                fail(bad, f"{name} child must point forward inside its tree (above the node, below the tree size "
                     f"{int(size_of[np.flatnonzero(bad)[0]])}); got")
        # Forward edges plus exactly one parent for every non-root node: each tree is a tree, every node is
        # reachable from its root exactly once, and no walk can cycle.
        base = offsets[:-1]
        first = base[tree_of[internal]]
        parents = np.bincount(np.concatenate([first + left[internal], first + right[internal]]), minlength=n_nodes)
        bad = parents != (local != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidWeights(
                f"{self._what()}: tree {int(tree_of[i])} node {int(local[i])} has {int(parents[i])} parent(s); "
                "every node but the root needs exactly one (shared or unreachable nodes)"
            )
        self._n_trees = n_trees
        self._cat = None
        self._cast32 = False
        self._planes = None
        if "cat_split" in self.weights.arrays:
            thr = _floor_f32(threshold).astype(np.float64) if self.float32_inputs else threshold
            self._cat = CategoricalSplits(self, feature, thr, left, right, missing_left, base, leaf)
            self._depth = self._cat.depth
            self._roots = self._cat.roots
            self._vals = [np.ascontiguousarray(v) for v in values.T]
            return
        # categorical models keep float64 inputs: a code is read by truncation, which float32 could round
        self._cast32 = not self.float32_inputs and _decided_in_f32(threshold[internal])
        self._pack(base, tree_of, feature, threshold, left, right, missing_left, values, leaf)

    def _validate_boosted(self, n_trees: int) -> None:
        baseline = self._array("baseline", ndim=1)
        k = int(baseline.size)
        link = self._meta("link", str, choices=LINKS)
        if k < 1 or n_trees % k:
            raise InvalidWeights(f"{self._what()}: {n_trees} trees do not split into stages of {k} (baseline length)")
        if self.classes is None:
            if link not in ("identity", "log") or k != 1:
                raise InvalidWeights(
                    f"{self._what()}: a regressor needs link identity or log and 1 baseline; got {link!r} and {k}"
                )
        elif link in ("logit", "half_logit"):
            if k != 1:
                raise InvalidWeights(f"{self._what()}: link {link!r} needs 1 raw output; got a baseline of {k}")
            self._check_classes(2, f"link {link!r}")
        elif link == "softmax":
            if k < 3:
                raise InvalidWeights(f"{self._what()}: link 'softmax' is for 3+ classes; got a baseline of {k}")
            self._check_classes(k, f"link 'softmax' over a baseline of {k}")
        else:
            raise InvalidWeights(f"{self._what()}: a classifier needs link logit, half_logit or softmax; got {link!r}")
        self._link = link
        self._baseline = baseline
        self._k_raw = k

    # -- packing for traversal ------------------------------------------------------------------------
    def _pack(
        self,
        base: np.ndarray,
        tree_of: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        missing_left: np.ndarray | None,
        values: np.ndarray,
        leaf: np.ndarray,
    ) -> None:
        """Renumber nodes breadth first and build the traversal tables (see the module docstring)."""
        n_trees, n_nodes, k = base.size, feature.size, values.shape[1]
        # Breadth first over all trees at once: per level, the stored node ids, their trees, and their
        # positions within the level of their tree (the children of position p are 2p and 2p + 1).
        levels: list[np.ndarray] = []
        trees: list[np.ndarray] = []
        positions: list[np.ndarray] = []
        frontier, tree, pos = base.copy(), np.arange(n_trees), np.zeros(n_trees, dtype=np.int64)
        while frontier.size:
            if len(levels) > MAX_DEPTH:
                raise InvalidWeights(f"{self._what()}: a tree is deeper than the supported {MAX_DEPTH} levels")
            levels.append(frontier)
            trees.append(tree)
            positions.append(pos)
            inner = ~leaf[frontier]
            parent, tree, pos = frontier[inner], tree[inner], pos[inner]
            first = base[tree]
            frontier = np.stack([first + left[parent], first + right[parent]], axis=1).ravel()
            tree = np.repeat(tree, 2)
            # positions only matter for the padded layout, which is never chosen for deep trees
            pos = np.stack([2 * pos, 2 * pos + 1], axis=1).ravel() if len(levels) < 48 else np.repeat(pos, 2)
        depth = len(levels) - 1
        thr = _floor_f32(threshold) if self.float32_inputs or self._cast32 else threshold
        with_mr = missing_left is not None
        per_node = 8 + thr.itemsize + with_mr
        plain_bytes = n_nodes * (per_node + 8 + 8 * k)
        padded_bytes = n_trees * (((1 << depth) - 1) * per_node + (1 << depth) * 8 * k)
        self._complete = depth < 48 and padded_bytes <= _PAD_FACTOR * plain_bytes + _PAD_SLACK_BYTES
        self._depth = depth
        self._roots = np.arange(n_trees, dtype=np.intp)
        self._fold_nan = False
        self._planes: BitPlanes | None = None

        def padded_level(lv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """Level ``lv`` of the trees padded to complete ones: slot (tree << lv) + position.

            Slots below a leaf get feature 0, threshold +inf and NaN-goes-left, so every input goes left
            and ends in the leftmost slot under the leaf.
            """
            ids, t, p = levels[lv], trees[lv], positions[lv]
            inner = ~leaf[ids]
            slot, ids = (t[inner] << lv) + p[inner], ids[inner]
            f = np.zeros(n_trees << lv, dtype=np.intp)
            f[slot] = feature[ids]
            th = np.full(n_trees << lv, np.inf, dtype=thr.dtype)
            th[slot] = thr[ids]
            mr = None
            if with_mr:
                mr = np.zeros(n_trees << lv, dtype=bool)
                mr[slot] = missing_left[ids] == 0
            return f, th, mr

        def slots_below(d: int, node_value: np.ndarray) -> np.ndarray:
            """Per slot of padded level ``d``: the value of the node there or of the leaf above it."""
            out = np.zeros((n_trees << d, *node_value.shape[1:]), dtype=node_value.dtype)
            for lv in range(d + 1):
                ids, t, p = levels[lv], trees[lv], positions[lv]
                sel = leaf[ids] if lv < d else slice(None)
                out[(t[sel] << d) + (p[sel] << (d - lv))] = node_value[ids[sel]]
            return out

        n_top = min(depth, _DENSE_LEVELS)
        top = [padded_level(lv) for lv in range(n_top)]
        # The first levels are scored densely in both layouts: thresholds as columns for (nodes, rows) blocks.
        self._top = [(f, th[:, np.newaxis], None if mr is None else mr[:, np.newaxis]) for f, th, mr in top]
        #: index of (tree, position) after the first d levels: (tree << d) + position
        self._top_base = {d: self._roots[:, np.newaxis] << d for d in range(1, n_top + 1)}
        if self._complete:
            rest = [padded_level(lv) for lv in range(n_top, depth)]
            self._thrs = [th for _, th, _ in top + rest]
            # NaN folded into the inputs: a node whose NaN goes right reads column feature + n_inputs of
            # [X with NaN -> -inf | X with NaN -> +inf], so NaN takes its side through the comparison itself.
            # A node at threshold +inf sending NaN right would keep it left: such models test NaN per step.
            self._fold_nan = with_mr and not ((thr == np.inf) & (missing_left == 0) & ~leaf).any()
            if self._fold_nan:
                self._feats = [f + self.n_inputs * mr for f, _, mr in top + rest]
                self._mrights = [None] * depth
            else:
                self._feats = [f for f, _, _ in top + rest]
                self._mrights = [mr for _, _, mr in top + rest]
            sparse = n_nodes - int(leaf.sum()) <= SPLITS_PER_LEVEL * depth * n_trees
            if (self._fold_nan or not with_mr) and 0 < depth <= MAX_PLANES and sparse:
                col = feature + self.n_inputs * (missing_left == 0) if self._fold_nan else feature
                self._planes = BitPlanes(levels, trees, leaf, col, thr, n_trees, depth)
            vals = slots_below(depth, values).T
            self._top_map = None
            self._roots = self._roots << depth
        else:
            order = np.concatenate(levels)
            new_id = np.empty(n_nodes, dtype=np.intp)
            new_id[order] = np.arange(n_nodes)
            leaf_o = leaf[order]
            child = np.where(leaf_o, order, base[tree_of[order]] + left[order])
            nxt = np.where(leaf_o, np.arange(n_nodes), new_id[child]).astype(np.intp)  # leaves: stay
            # left child and feature packed in one word: one gather per step instead of two
            self._shift = max(1, int(self.n_inputs - 1).bit_length())
            self._packed = (nxt << self._shift) | np.where(leaf_o, 0, feature[order]).astype(np.intp)
            self._moving = ~leaf_o
            self._feats = []
            self._thrs = [np.where(leaf_o, np.inf, thr[order]).astype(thr.dtype)]
            self._mrights = [(missing_left[order] == 0) & ~leaf_o if with_mr else None]
            # where a path is after the dense levels: padded slot -> breadth-first node id
            self._top_map = {d: slots_below(d, new_id) for d in range(1, n_top + 1)}
            vals = values[order].T
        self._vals = [np.ascontiguousarray(v) for v in vals]
