"""LightGBM text models (``Booster.save_model`` / ``model_to_string``) -> arch ``hist_boosted`` arrays.

Read straight from the text format so neither the worker nor the CLI needs lightgbm installed. LightGBM
goes left when ``x <= threshold`` in float64, which is what ``hist_boosted`` does; a NaN input follows the
node's default direction (missing_type NaN) or is read as 0.0 (missing_type None). Refused with one line:
zero-as-missing splits, linear trees, objectives without a known link. Categorical splits keep LightGBM's
bitsets (category c goes left when its bit is set; NaN, negative and unlisted values go right), for integer
category codes; models trained on pandas categoricals (a ``pandas_categorical`` list) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.errors import UnsupportedModel
from scorer.models.tree_layout import MAX_DEPTH, pack_trees

MAX_BYTES = 512 * 1024 * 1024
MAX_TREES = 100_000
MAX_LEAVES = 1 << 20

# objective name -> (link, is classifier)
_OBJECTIVES = {
    "regression": ("identity", False),
    "regression_l1": ("identity", False),
    "huber": ("identity", False),
    "fair": ("identity", False),
    "quantile": ("identity", False),
    "mape": ("identity", False),
    "poisson": ("log", False),
    "gamma": ("log", False),
    "tweedie": ("log", False),
    "binary": ("logit", True),
    "multiclass": ("softmax", True),
}


@dataclass(frozen=True)
class Imported:
    """What a file reader returns: the same fields as trainers' ``Exported`` plus the file's feature names."""

    arch: str
    arrays: dict[str, np.ndarray]
    classes: tuple | None
    metadata: dict[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()


def _fail(why: str) -> UnsupportedModel:
    return UnsupportedModel(f"cannot read LightGBM model: {why}")


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    ended = False
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line == "end of trees":
            ended = True
            break
        if line.startswith("Tree="):
            if len(trees) >= MAX_TREES:
                raise _fail(f"more than {MAX_TREES} trees")
            current = {}
            trees.append(current)
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    if not ended:
        raise _fail("truncated file (no 'end of trees' line)")
    if header.get("tree") is None and "version" not in header:
        raise _fail("not a LightGBM text model (no 'version' header)")
    return header, trees


def _nums(tree: dict[str, str], key: str, n: int, dtype: type, i: int) -> np.ndarray:
    raw = tree.get(key)
    if raw is None:
        raise _fail(f"tree {i} has no {key}")
    try:
        out = np.array([dtype(v) for v in raw.split()], dtype=np.float64 if dtype is float else np.int64)
    except ValueError:
        raise _fail(f"tree {i} has a malformed {key}") from None
    if out.size != n:
        raise _fail(f"tree {i}: {key} has {out.size} values, expected {n}")
    return out


def _int(d: dict[str, str], key: str, where: str) -> int:
    try:
        return int(d[key])
    except (KeyError, ValueError):
        raise _fail(f"{where} has no valid {key}") from None


def _tree(t: dict[str, str], i: int, scale: float) -> dict[str, np.ndarray]:
    n_leaves = _int(t, "num_leaves", f"tree {i}")
    if not 1 <= n_leaves <= MAX_LEAVES:
        raise _fail(f"tree {i} has num_leaves={n_leaves}")
    if t.get("is_linear", "0") != "0":
        raise _fail(f"tree {i} is a linear tree; only constant leaves are supported")
    n_cat = _int(t, "num_cat", f"tree {i}")
    if not 0 <= n_cat <= MAX_LEAVES:
        raise _fail(f"tree {i} has num_cat={n_cat}")
    leaf_value = _nums(t, "leaf_value", n_leaves, float, i) * scale
    n_int = n_leaves - 1
    if n_int == 0:
        return {
            k: np.array([v])
            for k, v in {"feature": -1, "threshold": 0.0, "left": -1, "right": -1, "missing_left": 0}.items()
        } | {"value": leaf_value, "bits": []}
    feature = _nums(t, "split_feature", n_int, int, i)
    threshold = _nums(t, "threshold", n_int, float, i)
    dtype = _nums(t, "decision_type", n_int, int, i)
    left = _nums(t, "left_child", n_int, int, i)
    right = _nums(t, "right_child", n_int, int, i)
    is_cat = (dtype & 1).astype(bool)
    bits = _category_sets(t, i, n_cat, threshold[is_cat]) if is_cat.any() else []
    missing_type = (dtype >> 2) & 3
    if np.any(missing_type == 1):
        raise _fail(f"tree {i} treats zero as missing (missing_type Zero / zero_as_missing); not supported yet")
    if np.any(missing_type > 2) or np.any(feature < 0) or np.any(np.isnan(threshold)):
        raise _fail(f"tree {i} has an invalid split")
    # NaN type: NaN follows default_left; None type: LightGBM reads NaN as 0.0; categorical: NaN goes right
    missing_left = np.where(missing_type == 2, (dtype >> 1) & 1, (threshold >= 0.0).astype(np.int64))
    missing_left[is_cat] = 0
    threshold = np.where(is_cat, 0.0, threshold)

    def node(child: np.ndarray) -> np.ndarray:
        out = np.where(child < 0, n_int + ~child, child)
        if np.any((out < 0) | (out >= 2 * n_leaves - 1)):
            raise _fail(f"tree {i} has a child index out of range")
        return out

    pad_i, pad_f = np.full(n_leaves, -1), np.zeros(n_leaves)
    return {
        "feature": np.concatenate([feature, pad_i]),
        "threshold": np.concatenate([threshold, pad_f]),
        "left": np.concatenate([node(left), pad_i]),
        "right": np.concatenate([node(right), pad_i]),
        "missing_left": np.concatenate([missing_left, np.zeros(n_leaves, dtype=np.int64)]),
        "value": np.concatenate([np.zeros(n_int), leaf_value]),
        "cat_split": np.concatenate([is_cat, np.zeros(n_leaves, dtype=bool)]).astype(np.uint8),
        "bits": bits,
    }


#: largest category value a categorical split may name (its bitset's size bounds the stored arrays)
MAX_CATEGORY = 1 << 16


def _category_sets(t: dict[str, str], i: int, n_cat: int, index: np.ndarray) -> list[np.ndarray]:
    """The left-going category bitsets of a tree's categorical nodes (in node order) as bytes.

    LightGBM keeps them as 32-bit words, ``cat_threshold[cat_boundaries[k]:cat_boundaries[k + 1]]`` for the
    node whose threshold is k; bit c set sends category c left, anything else (NaN, negative) goes right.
    """
    bounds = _nums(t, "cat_boundaries", n_cat + 1, int, i)
    if bounds[0] != 0 or np.any(np.diff(bounds) < 1):
        raise _fail(f"tree {i} has bad cat_boundaries")
    words = np.asarray(_nums(t, "cat_threshold", int(bounds[-1]), int, i))
    if np.any(words < 0) or np.any(words >= 1 << 32) or np.diff(bounds).max() * 32 > MAX_CATEGORY:
        raise _fail(f"tree {i} has bad cat_threshold words (or categories beyond {MAX_CATEGORY})")
    k = index.astype(np.int64)
    if np.any(k != index) or np.any((k < 0) | (k >= n_cat)):
        raise _fail(f"tree {i} has a categorical split naming no category set")
    return [words[bounds[j] : bounds[j + 1]].astype("<u4").view(np.uint8).copy() for j in k.tolist()]


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth = np.zeros(left.size, dtype=np.int64)
    for j in range(left.size):  # parents come before children (checked by the kernel's validation)
        for c in (left[j], right[j]):
            if c > j:
                depth[c] = depth[j] + 1
    return int(depth.max(initial=0))


def read_lightgbm_text(data: bytes | str, classes: tuple | None = None) -> Imported:
    """Parse a LightGBM text model; ``classes`` are the labels (LGBMClassifier.classes_), else 0..K-1."""
    if len(data) > MAX_BYTES:
        raise _fail(f"file larger than {MAX_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("not UTF-8 text") from None
    header, trees = _sections(data)
    tail = data[data.rfind("end of trees") :]
    for line in tail.splitlines():
        if line.startswith("pandas_categorical:") and line.strip() not in ("pandas_categorical:null",
                                                                           "pandas_categorical:[]"):
            raise _fail("trained on pandas categorical columns (pandas_categorical); supported: integer "
                        "category codes (categorical_feature on numeric columns)")
    objective = header.get("objective", "").split()
    if not objective:
        raise _fail("no objective line")
    name, params = objective[0], dict(p.split(":", 1) for p in objective[1:] if ":" in p)
    if name not in _OBJECTIVES:
        raise _fail(f"objective {name!r} has no known link (supported: {', '.join(sorted(_OBJECTIVES))})")
    link, is_classifier = _OBJECTIVES[name]
    scale = float(params.get("sigmoid", 1.0)) if name == "binary" else 1.0
    k = _int(header, "num_tree_per_iteration", "header")
    n_class = _int(header, "num_class", "header")
    if k != (n_class if name == "multiclass" else 1) or (name == "multiclass" and k < 3):
        raise _fail(f"{k} trees per iteration with num_class={n_class} and objective {name} is not supported")
    if not trees or len(trees) % k:
        raise _fail(f"{len(trees)} trees is not a positive multiple of {k} per iteration")
    n_features = _int(header, "max_feature_idx", "header") + 1
    blocks = [_tree(t, i, scale) for i, t in enumerate(trees)]
    for i, b in enumerate(blocks):
        if np.any(b["feature"] >= n_features):
            raise _fail(f"tree {i} splits on a feature beyond max_feature_idx")
        if _depth(b["left"], b["right"]) > MAX_DEPTH:
            raise _fail(f"tree {i} is deeper than {MAX_DEPTH}")
    bits = [b for block in blocks for b in block.pop("bits")]
    arrays = {**pack_trees(blocks, with_missing=True, cat_bits=bits), "baseline": np.zeros(k, dtype=np.float64)}
    if is_classifier:
        classes = tuple(classes) if classes is not None else tuple(range(max(k, 2)))
    else:
        classes = None
    names = tuple(header.get("feature_names", "").split()) or tuple(f"Column_{j}" for j in range(n_features))
    return Imported("hist_boosted", arrays, classes, {"link": link, "source": "lightgbm"}, names)
