"""Exporters for tree ensembles -> arch ``forest`` / ``boosted`` / ``hist_boosted`` (see scorer/models/trees.py).

Each fitted tree becomes a block of the packed arrays; leaves get feature -1, threshold 0 and children -1
whatever scikit-learn keeps there, so equal trees give equal bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from scorer.errors import UnsupportedModel
from scorer.models.tree_layout import MAX_DEPTH, pack_trees
from trainers.columns import category_list
from trainers.export import Exported, register_exporter

# scikit-learn's loss link classes -> the link names the boosted architectures know
_LINKS = {
    "IdentityLink": "identity",
    "LogLink": "log",
    "LogitLink": "logit",
    "HalfLogitLink": "half_logit",
    "MultinomialLogit": "softmax",
}


def _sk_tree(tree: Any, name: str, value: np.ndarray) -> dict[str, np.ndarray]:
    """One sklearn ``Tree`` (``est.tree_``) as node arrays; ``value`` is already shaped per node."""
    if tree.max_depth > MAX_DEPTH:
        raise UnsupportedModel(f"cannot export {name}: a tree has depth {tree.max_depth}; at most {MAX_DEPTH}")
    left = np.asarray(tree.children_left)
    leaf = left == -1
    return {
        "feature": np.where(leaf, -1, tree.feature),
        "threshold": np.where(leaf, 0.0, tree.threshold),
        "left": left,
        "right": np.where(leaf, -1, tree.children_right),
        "missing_left": np.where(leaf, 0, tree.missing_go_to_left),
        "value": value,
    }


def _classes(est: Any, name: str) -> tuple:
    classes = tuple(np.asarray(est.classes_).tolist())
    if len(classes) < 2:
        raise UnsupportedModel(f"cannot export {name} fitted on a single class {list(classes)}")
    return classes


def _single_output(est: Any, name: str) -> None:
    if getattr(est, "n_outputs_", 1) != 1:
        raise UnsupportedModel(
            f"cannot export {name} fitted on {est.n_outputs_} outputs; only a single target (1-D y) is supported"
        )


@register_exporter(
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
)
def export_forest(est: Any) -> Exported:
    """Averaged trees; a single decision tree is a forest of one (scikit-learn's mean of one is exact)."""
    name = type(est).__name__
    _single_output(est, name)
    if not est.__sklearn_tags__().input_tags.allow_nan:
        # the forest arch routes NaN like scikit-learn >= 1.6 does; an estimator that refuses NaN would differ
        raise UnsupportedModel(f"cannot export {name}: this scikit-learn version's {name} does not accept NaN")
    trees = [est] if isinstance(est, DecisionTreeClassifier | DecisionTreeRegressor) else list(est.estimators_)
    classes = _classes(est, name) if is_classifier(est) else None
    width = len(classes) if classes is not None else 1
    blocks = []
    for t in trees:
        value = np.asarray(t.tree_.value)
        if value.shape[1:] != (1, width):
            raise UnsupportedModel(f"cannot export {name}: tree value shape {value.shape[1:]} is not (1, {width})")
        blocks.append(_sk_tree(t.tree_, name, value[:, 0, :]))
    return Exported(arch="forest", arrays=pack_trees(blocks, with_missing=True), classes=classes)


def _link(est: Any, name: str) -> str:
    link = _LINKS.get(type(est._loss.link).__name__)
    if link is None:
        raise UnsupportedModel(f"cannot export {name}: its loss link {type(est._loss.link).__name__} is not supported")
    return link


@register_exporter(GradientBoostingClassifier, GradientBoostingRegressor)
def export_gbt(est: Any) -> Exported:
    """Stage-major regression trees with leaf values times the learning rate, plus the init's raw prediction."""
    name = type(est).__name__
    if est.init not in (None, "zero"):
        raise UnsupportedModel(
            f"cannot export {name} with init={type(est.init).__name__}: only the default init (the prior / "
            "mean DummyEstimator) or init='zero' are supported"
        )
    stages = np.asarray(est.estimators_)
    n_stages, k = stages.shape
    lr = float(est.learning_rate)
    blocks = []
    for s in range(n_stages):
        for c in range(k):
            tree = stages[s, c].tree_
            blocks.append(_sk_tree(tree, name, lr * np.asarray(tree.value).reshape(-1)))
    # The init estimator predicts a constant: its raw prediction on any row is the baseline.
    baseline = est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0]
    if is_classifier(est):
        classes = _classes(est, name)
        link = _link(est, name)
    else:
        classes, link = None, "identity"  # GradientBoostingRegressor.predict returns the raw sum
    arrays = pack_trees(blocks, with_missing=False)
    arrays["baseline"] = np.ascontiguousarray(baseline, dtype=np.float64)
    return Exported(arch="boosted", arrays=arrays, classes=classes, metadata={"link": link})


@register_exporter(HistGradientBoostingClassifier, HistGradientBoostingRegressor)
def export_hgb(est: Any) -> Exported:
    """HistGradientBoosting: raw-value thresholds, per-node NaN direction, baseline, categorical bitsets.

    Categorical features (``categorical_features``) become categorical inputs with scikit-learn's own
    categories (strings or integers), unknown and missing values NaN, as its internal encoder does; each
    categorical node keeps its left bitset over those codes.
    """
    name = type(est).__name__
    categorical = est.is_categorical_
    order = None
    inputs: list[dict[str, Any]] = []
    if categorical is not None and np.any(categorical):
        categorical = np.asarray(categorical, dtype=bool)
        # scikit-learn's preprocessor puts the encoded categorical columns first; map back to input columns
        order = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
        encoder = est._preprocessor.named_transformers_["encoder"]
        for k, cats in enumerate(encoder.categories_):
            inputs.append({"column": int(order[k]), "categories": category_list(cats, name, int(order[k])),
                           "missing": None, "unknown": None})
    blocks = []
    cat_bits: list[np.ndarray] = []
    for predictors in est._predictors:
        for predictor in predictors:
            nodes = predictor.nodes
            if nodes["depth"].max(initial=0) > MAX_DEPTH:
                raise UnsupportedModel(f"cannot export {name}: a tree is deeper than {MAX_DEPTH}")
            leaf = nodes["is_leaf"].astype(bool)
            is_cat = nodes["is_categorical"].astype(bool) & ~leaf
            for i in np.flatnonzero(is_cat).tolist():
                n_cats = len(inputs[int(nodes["feature_idx"][i])]["categories"])
                words = np.ascontiguousarray(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]], dtype="<u4")
                cat_bits.append(words.view(np.uint8)[: max(1, (n_cats + 7) // 8)].copy())
            feature = nodes["feature_idx"] if order is None else order[nodes["feature_idx"]]
            blocks.append(
                {
                    "feature": np.where(leaf, -1, feature),
                    "threshold": np.where(leaf | is_cat, 0.0, nodes["num_threshold"]),
                    "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    "missing_left": np.where(leaf, 0, nodes["missing_go_to_left"]),
                    "cat_split": is_cat.astype(np.uint8),
                    "value": nodes["value"],
                }
            )
    arrays = pack_trees(blocks, with_missing=True, cat_bits=cat_bits)
    arrays["baseline"] = np.ascontiguousarray(np.asarray(est._baseline_prediction).reshape(-1), dtype=np.float64)
    classes = _classes(est, name) if is_classifier(est) else None
    return Exported(arch="hist_boosted", arrays=arrays, classes=classes, metadata={"link": _link(est, name)},
                    categorical=inputs)
