"""XGBoost JSON models (``save_model("m.json")`` / ``save_raw("json")``) -> arch ``hist_boosted`` arrays.

XGBoost goes left when ``float32(x) < t`` (t float32); the stored float64 threshold is the largest float64
``x`` for which that holds, so ``x <= threshold`` in the kernel decides every input the same way. NaN
follows ``default_left``. Leaf values are float32 and XGBoost sums them in float32, so predictions agree to
about 1e-6. Partition splits (``enable_categorical``) keep their category set as a bitset: listed categories
go right, every other value left, NaN by default_left. Refused with one line: linear boosters, multi-output,
objectives without a known link.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from scorer.errors import UnsupportedModel
from scorer.importers.lightgbm import MAX_BYTES, MAX_TREES, Imported
from scorer.models.tree_cat import bitset
from scorer.models.tree_layout import MAX_DEPTH, pack_trees

# objective -> (link, classifier, base_score -> margin)
_OBJECTIVES = {
    "reg:squarederror": ("identity", False, float),
    "reg:absoluteerror": ("identity", False, float),
    "reg:pseudohubererror": ("identity", False, float),
    "reg:quantileerror": ("identity", False, float),
    "count:poisson": ("log", False, math.log),
    "reg:gamma": ("log", False, math.log),
    "reg:tweedie": ("log", False, math.log),
    "binary:logistic": ("logit", True, lambda p: math.log(p / (1 - p))),
    "multi:softprob": ("softmax", True, float),
    "multi:softmax": ("softmax", True, float),
}


def _fail(why: str) -> UnsupportedModel:
    return UnsupportedModel(f"cannot read XGBoost model: {why}")


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            raise _fail(f"no {'/'.join(path)}")
        d = d[key]
    return d


def _threshold(t: np.ndarray) -> np.ndarray:
    """Largest float64 x with float32(x) < t: just below the midpoint of t and the float32 before it."""
    t32 = t.astype(np.float32)
    prev = np.nextafter(t32, np.float32(-np.inf)).astype(np.float64)
    mid = (prev + t32.astype(np.float64)) / 2  # exact: float32 needs 24 bits, the midpoint 25
    rounds_down = mid.astype(np.float32) == prev.astype(np.float32)
    out = np.where(rounds_down, mid, np.nextafter(mid, -np.inf))
    return np.where(np.isinf(prev) & (prev < 0), -np.inf, out)


def _tree(tree: dict, i: int, weight: float) -> dict[str, np.ndarray]:
    try:
        left = np.asarray(tree["left_children"], dtype=np.int64)
        right = np.asarray(tree["right_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float64)
        feat = np.asarray(tree["split_indices"], dtype=np.int64)
        dleft = np.asarray(tree["default_left"], dtype=np.int64)
        stype = np.asarray(tree.get("split_type", [0] * left.size), dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise _fail(f"tree {i} is malformed") from None
    n = left.size
    if n == 0 or any(a.shape != (n,) for a in (right, cond, feat, dleft, stype)):
        raise _fail(f"tree {i} has arrays of different lengths")
    if np.any((stype != 0) & (stype != 1)):
        raise _fail(f"tree {i} has split types {sorted(set(stype.tolist()))}; supported: 0 numeric, 1 categorical")
    sets = _category_sets(tree, i, stype) if np.any(stype == 1) else {}
    order, depth, seen = [0], {0: 0}, {0}
    for j in order:  # breadth-first from the root: new ids, parents before children, unreachable nodes dropped
        if left[j] != -1:
            for c in (left[j], right[j]):
                if not 0 <= c < n or c in seen:
                    raise _fail(f"tree {i} is not a tree (bad child index {c})")
                seen.add(c)
                depth[c] = depth[j] + 1
                if depth[c] > MAX_DEPTH:
                    raise _fail(f"tree {i} is deeper than {MAX_DEPTH}")
                order.append(c)
    order = np.asarray(order)
    new = np.full(n, -1)
    new[order] = np.arange(order.size)
    leaf = left[order] == -1
    is_cat = (stype[order] == 1) & ~leaf
    return {
        "feature": np.where(leaf, -1, feat[order]),
        "threshold": np.where(leaf, 0.0, _threshold(cond[order])),
        "left": np.where(leaf, -1, new[np.maximum(left[order], 0)]),
        "right": np.where(leaf, -1, new[np.maximum(right[order], 0)]),
        "missing_left": np.where(leaf, 0, dleft[order]),
        "value": np.where(leaf, cond[order].astype(np.float32).astype(np.float64) * weight, 0.0),
        "cat_split": np.where(is_cat, 2, 0).astype(np.uint8),
        "bits": [sets[j] for j in order[is_cat].tolist()],
    }


#: largest category value a partition split may name (its bitset's size bounds the stored arrays)
MAX_CATEGORY = 1 << 16


def _category_sets(tree: dict, i: int, stype: np.ndarray) -> dict[int, np.ndarray]:
    """Node id -> bitset of the categories that go right at that partition split (everything else,
    including values out of range or negative, goes left; NaN follows default_left)."""
    try:
        nodes = [int(v) for v in tree["categories_nodes"]]
        starts = [int(v) for v in tree["categories_segments"]]
        sizes = [int(v) for v in tree["categories_sizes"]]
        cats = np.asarray(tree["categories"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise _fail(f"tree {i} has categorical splits without valid category lists") from None
    if not len(nodes) == len(starts) == len(sizes) or set(nodes) != set(np.flatnonzero(stype == 1).tolist()):
        raise _fail(f"tree {i}: categories_nodes do not match its categorical splits")
    out = {}
    for node, start, size in zip(nodes, starts, sizes, strict=True):
        if start < 0 or size < 0 or start + size > cats.size:
            raise _fail(f"tree {i}: a category segment is out of range")
        values = cats[start : start + size]
        if values.size and (values.min() < 0 or values.max() >= MAX_CATEGORY):
            raise _fail(f"tree {i}: categories must be in [0, {MAX_CATEGORY})")
        out[node] = bitset(values, int(values.max(initial=0)) // 8 + 1)
    return out


def _number(text: Any, what: str) -> list[float]:
    try:
        if isinstance(text, str):
            text = json.loads(text) if text.startswith("[") else float(text)
        return [float(v) for v in (text if isinstance(text, list) else [text])]
    except (TypeError, ValueError):
        raise _fail(f"malformed {what}") from None


def read_xgboost(model: dict) -> Imported:
    """Convert a decoded XGBoost JSON/UBJSON document (plain dicts and lists) to stored arrays."""
    learner = _get(model, "learner")
    params = _get(learner, "learner_model_param")
    objective = _get(learner, "objective", "name")
    if objective not in _OBJECTIVES:
        raise _fail(f"objective {objective!r} has no known link (supported: {', '.join(sorted(_OBJECTIVES))})")
    link, is_classifier, to_margin = _OBJECTIVES[objective]
    if int(params.get("num_target", "1")) != 1:
        raise _fail("multi-output models are not supported")
    n_class = int(params.get("num_class", "0"))
    k = n_class if n_class > 2 else 1
    n_features = int(_get(params, "num_feature"))
    booster = _get(learner, "gradient_booster")
    name = booster.get("name")
    if name == "gblinear":
        raise _fail("linear boosters (gblinear) are not supported")
    gbtree = _get(booster, "gbtree") if name == "dart" else booster
    trees = _get(gbtree, "model", "trees")
    if not isinstance(trees, list) or not trees or len(trees) > MAX_TREES:
        raise _fail("no trees or too many")
    weights = _number(booster.get("weight_drop", [1.0] * len(trees)), "weight_drop") if name == "dart" else None
    info = np.asarray(_get(gbtree, "model", "tree_info"), dtype=np.int64)
    if info.size != len(trees) or np.any(info != np.arange(len(trees)) % k):
        raise _fail("trees are not one per class per iteration (num_parallel_tree > 1 with classes?)")
    best = learner.get("attributes", {}).get("best_iteration")
    if best is not None:
        trees = trees[
            : (int(best) + 1) * k * int(_get(gbtree, "model", "gbtree_model_param").get("num_parallel_tree", "1"))
        ]
    blocks = [_tree(t, i, 1.0 if weights is None else weights[i]) for i, t in enumerate(trees)]
    for i, b in enumerate(blocks):
        if np.any(b["feature"] >= n_features):
            raise _fail(f"tree {i} splits on a feature beyond num_feature")
    base = _number(_get(params, "base_score"), "base_score")
    if len(base) not in (1, k):
        raise _fail(f"base_score has {len(base)} values for {k} outputs")
    try:
        baseline = np.array([to_margin(b) for b in base] * (k if len(base) == 1 else 1), dtype=np.float64)
    except (ValueError, ZeroDivisionError):
        raise _fail(f"base_score {base} is outside the objective's range") from None
    bits = [b for block in blocks for b in block.pop("bits")]
    arrays = {**pack_trees(blocks, with_missing=True, cat_bits=bits), "baseline": baseline}
    classes = tuple(range(max(k, 2))) if is_classifier else None
    names = tuple(learner.get("feature_names") or ()) or tuple(f"f{j}" for j in range(n_features))
    return Imported("hist_boosted", arrays, classes, {"link": link, "source": "xgboost"}, names)


def read_xgboost_json(data: bytes | str) -> Imported:
    """Parse XGBoost's JSON model text (plain ``json``: no code runs, size bounded)."""
    if len(data) > MAX_BYTES:
        raise _fail(f"file larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise _fail("not valid JSON (truncated or corrupt)") from None
    return read_xgboost(doc)


def read_xgboost_ubj(data: bytes) -> Imported:
    """Parse XGBoost's UBJSON model bytes with scorer's own bounded decoder."""
    from scorer.importers.ubjson import loads

    if len(data) > MAX_BYTES:
        raise _fail(f"file larger than {MAX_BYTES} bytes")
    doc = loads(data)
    if not isinstance(doc, dict):
        raise _fail("not an XGBoost model (top level is not an object)")
    return read_xgboost(doc)
