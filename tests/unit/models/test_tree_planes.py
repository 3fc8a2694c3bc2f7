"""Bit-plane kernel, float32 comparisons and NaN folding of the tree kernels: same leaves as a plain walk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scorer.models.tree_layout as tree_layout
from scorer.importers.xgboost import _threshold as xgboost_threshold
from scorer.models import ModelWeights, build
from scorer.models.tree_layout import _decided_in_f32, pack_trees
from scorer.models.tree_planes import SPLITS_PER_LEVEL, _transpose8

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


def random_tree(rng: np.random.Generator, depth: int, n_features: int, thresholds: np.ndarray,
                inf_share: float) -> dict[str, np.ndarray]:
    """A random binary tree up to ``depth`` deep, breadth first, local child ids (-1 at leaves)."""
    feature, threshold, left, right, missing, depth_of = [], [], [], [], [], [0]
    i = 0
    while i < len(depth_of):
        split = depth_of[i] < depth and (i == 0 or rng.random() < 0.7)
        feature.append(int(rng.integers(n_features)) if split else -1)
        threshold.append(np.inf if split and rng.random() < inf_share else float(rng.choice(thresholds)))
        missing.append(int(rng.integers(2)))
        if split:
            left.append(len(depth_of))
            right.append(len(depth_of) + 1)
            depth_of += [depth_of[i] + 1] * 2
        else:
            left.append(-1)
            right.append(-1)
        i += 1
    return {"feature": np.array(feature), "threshold": np.array(threshold), "left": np.array(left),
            "right": np.array(right), "missing_left": np.array(missing), "value": rng.normal(size=i)}


def booster(rng: np.random.Generator, n_trees: int, depth: int, n_features: int, thresholds: np.ndarray,
            inf_share: float = 0.0) -> ModelWeights:
    blocks = [random_tree(rng, depth, n_features, thresholds, inf_share) for _ in range(n_trees)]
    arrays = {**pack_trees(blocks, with_missing=True), "baseline": np.array([0.25])}
    return ModelWeights(arch="hist_boosted", feature_names=tuple(f"x{i}" for i in range(n_features)), arrays=arrays,
                        classes=None, metadata={"link": "identity"})


def reference(w: ModelWeights, X: np.ndarray) -> np.ndarray:
    """Node by node, in float64: ``x <= threshold`` goes left, NaN by missing_left; trees summed in order."""
    a = w.arrays
    first = a["offsets"][:-1][:, np.newaxis]
    j = np.repeat(first, X.shape[0], axis=1)
    rows = np.arange(X.shape[0])
    for _ in range(64):
        f = a["feature"][j]
        if (f < 0).all():
            break
        x = X[rows, np.maximum(f, 0)]
        right = np.where(np.isnan(x), a["missing_left"][j] == 0, x > a["threshold"][j])
        j = np.where(f < 0, j, first + np.where(right, a["right"][j], a["left"][j]))
    v = a["value"][j]
    v[0] += a["baseline"][0]
    return np.add.reduce(v, axis=0)


def inputs(rng: np.random.Generator, n: int, n_features: int, thresholds: np.ndarray, nan: float) -> np.ndarray:
    """Values at, next to and between the thresholds, some NaN, some beyond float32 range."""
    pick = rng.choice(thresholds, size=(n, n_features))
    X = pick + rng.choice([0.0, 1.0, -1.0, 1e-9], size=pick.shape) * rng.random(pick.shape)
    X = np.where(rng.random(X.shape) < 0.1, np.nextafter(pick, rng.choice([-np.inf, np.inf], size=X.shape)), X)
    X[rng.random(X.shape) < 0.02] = rng.choice([np.inf, -np.inf, 1e39, -1e39])
    X[rng.random(X.shape) < nan] = np.nan
    return X


def kernels(w: ModelWeights, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The same model scored by planes, by the walk, and (planes off) by the plain layout."""
    models = {"default": build(w), "walk": build(w)}
    models["walk"]._planes = None
    with monkeypatch.context() as m:
        m.setattr(tree_layout, "_PAD_FACTOR", 0.0)
        m.setattr(tree_layout, "_PAD_SLACK_BYTES", 0)
        models["plain"] = build(w)
    return models


@SETTINGS
@given(seed=st.integers(0, 2**16), n_trees=st.integers(1, 40), depth=st.integers(1, 8),
       n_features=st.integers(1, 6), float32_exact=st.booleans(), nan=st.sampled_from([0.0, 0.2]))
def test_planes_walk_and_plain_layout_agree_with_a_node_by_node_walk(
    seed: int, n_trees: int, depth: int, n_features: int, float32_exact: bool, nan: float
) -> None:
    rng = np.random.default_rng(seed)
    thresholds = np.round(rng.normal(size=12), 2)
    if float32_exact:  # as the XGBoost reader stores them: the model then compares in float32
        thresholds = xgboost_threshold(thresholds)
    w = booster(rng, n_trees, depth, n_features, thresholds)
    X = inputs(rng, 700, n_features, thresholds, nan)
    ref = reference(w, X)
    with pytest.MonkeyPatch.context() as mp:
        models = kernels(w, mp)
        model = models["default"]
        sparse = (w.arrays["feature"] >= 0).sum() <= SPLITS_PER_LEVEL * model._depth * n_trees
        assert (model._planes is not None) == sparse and model._cast32 == float32_exact
        assert not models["plain"]._complete
        for name, model in models.items():
            for rows in (slice(None), slice(0, 300), slice(5, 6)):
                np.testing.assert_array_equal(model.predict(X[rows]), ref[rows], err_msg=name)


def test_a_split_at_infinity_sending_nan_right_keeps_the_per_step_nan_test(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    w = booster(rng, 20, 5, 3, np.linspace(-1, 1, 7), inf_share=0.3)
    a = w.arrays
    assert ((a["threshold"] == np.inf) & (a["missing_left"] == 0) & (a["feature"] >= 0)).any()
    X = inputs(rng, 600, 3, np.linspace(-1, 1, 7), 0.3)
    for name, model in kernels(w, monkeypatch).items():
        assert not model._fold_nan and model._planes is None, name
        np.testing.assert_array_equal(model.predict(X), reference(w, X), err_msg=name)


def test_float32_decisions_only_for_float32_exact_thresholds() -> None:
    t = np.array([-3.5, 0.1, 2.0, 1e30])
    assert _decided_in_f32(xgboost_threshold(t))
    assert _decided_in_f32(np.append(xgboost_threshold(t), np.inf))
    assert not _decided_in_f32(t)  # 0.1 and 1e30 are not float32 boundaries, nor is 2.0 (next float64 -> 2.0f)
    assert not _decided_in_f32(np.array([-np.inf]))  # float32(-1e300) == -inf, but -1e300 > -inf
    assert not _decided_in_f32(np.array([]))


def test_transpose8_moves_bit_i_of_byte_k_to_bit_k_of_byte_i() -> None:
    x = np.random.default_rng(0).integers(0, 2**63, size=50, dtype=np.uint64)
    bits = np.unpackbits(x.view(np.uint8).reshape(50, 8, 1), axis=2, bitorder="little")  # [word, byte, bit]
    got = np.unpackbits(_transpose8(x.copy()).view(np.uint8).reshape(50, 8, 1), axis=2, bitorder="little")
    np.testing.assert_array_equal(got, bits.transpose(0, 2, 1))


def test_dense_boosters_keep_the_walk() -> None:
    """Many splits per tree and level: the comparisons would cost more than the walk's steps."""
    rng = np.random.default_rng(5)
    blocks = []
    for _ in range(4):  # complete trees of depth 6: 63 splits, 10.5 per level
        n = 127
        idx = np.arange(n)
        inner = idx < 63
        blocks.append({"feature": np.where(inner, idx % 3, -1), "threshold": np.where(inner, rng.normal(size=n), 0),
                       "left": np.where(inner, 2 * idx + 1, -1), "right": np.where(inner, 2 * idx + 2, -1),
                       "missing_left": np.ones(n, int), "value": rng.normal(size=n)})
    arrays = {**pack_trees(blocks, with_missing=True), "baseline": np.array([0.0])}
    w = ModelWeights(arch="hist_boosted", feature_names=("a", "b", "c"), arrays=arrays, classes=None,
                     metadata={"link": "identity"})
    assert build(w)._planes is not None  # 10.5 <= SPLITS_PER_LEVEL
    arrays = {k: v.copy() for k, v in arrays.items()}
    w2 = ModelWeights(arch="hist_boosted", feature_names=("a", "b", "c"), arrays=arrays, classes=None,
                      metadata={"link": "identity"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tree_layout, "SPLITS_PER_LEVEL", 10)
        model = build(w2)
    assert model._planes is None and model._complete
    X = rng.normal(size=(400, 3))
    np.testing.assert_array_equal(model.predict(X), reference(w2, X))
