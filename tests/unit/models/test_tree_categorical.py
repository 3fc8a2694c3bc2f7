"""Categorical bitset splits: HistGradientBoosting with categorical_features rebuilt exactly, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from scorer.errors import CategoryError, InvalidWeights
from scorer.models import ModelWeights, build
from trainers.export import export


def _data(rng: np.random.Generator, n: int, lo: int = 0, hi: int = 12) -> np.ndarray:
    X = np.column_stack([rng.integers(lo, hi, n), rng.normal(size=n), rng.integers(lo, hi + 28, n)]).astype(float)
    X[rng.random(n) < 0.05, 0] = np.nan
    return X


@pytest.mark.parametrize("cls", [HistGradientBoostingClassifier, HistGradientBoostingRegressor])
def test_hgb_integer_categories_match_sklearn_with_unknown_negative_fractional_and_missing(cls) -> None:
    rng = np.random.default_rng(0)
    X = _data(rng, 3000)
    y = (np.sin(np.nan_to_num(X[:, 0])) + (X[:, 2] % 3) + X[:, 1] > 0.5).astype(int)
    est = cls(categorical_features=[0, 2], max_iter=30, random_state=0).fit(X, y)
    weights = export(est)
    model = build(weights)
    Xt = _data(rng, 600, lo=-2, hi=20)  # unknown (>= 12 / 40) and negative codes
    Xt[::7, 2] += 0.5  # fractional: unknown to scikit-learn's encoder
    ref = est.predict_proba(Xt) if hasattr(est, "predict_proba") else est.predict(Xt)
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=0, atol=1e-12)
    for i in range(0, 600, 97):
        np.testing.assert_allclose(model.predict(Xt[i : i + 1]), ref[i : i + 1], rtol=0, atol=1e-12)
    assert weights.arrays["cat_bits"].dtype == np.uint8 and weights.arrays["cat_split"].max() == 1
    cats = {c["feature"]: c for c in weights.metadata["categorical"]}
    assert cats["x0"]["categories"] == list(range(12)) and cats["x0"]["unknown"] is None


def _objects(rng: np.random.Generator, n: int, levels: list, unknown: float = 0.0) -> np.ndarray:
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = rng.choice(levels, n)
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = rng.choice(["x", "y", "z"], n)
    if unknown:
        X[rng.random(n) < unknown, 0] = "never-seen"
        X[rng.random(n) < unknown, 2] = None
        X[rng.random(n) < unknown, 0] = np.nan
    return X


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n_levels=st.integers(2, 40), max_iter=st.integers(1, 25))
def test_hgb_string_categories_match_sklearn(seed: int, n_levels: int, max_iter: int) -> None:
    rng = np.random.default_rng(seed)
    levels = [f"l{i}" for i in range(n_levels)]
    X = _objects(rng, 800, levels)
    y = (np.isin(X[:, 0], levels[::3]) ^ (X[:, 2] == "y")).astype(int) + (X[:, 1] > 1)
    est = HistGradientBoostingClassifier(categorical_features=[0, 2], max_iter=max_iter, random_state=0).fit(X, y)
    model = build(export(est))
    Xt = _objects(rng, 300, levels, unknown=0.1)
    np.testing.assert_allclose(model.predict(Xt), est.predict_proba(Xt), rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.predict(Xt[:1]), est.predict_proba(Xt[:1]), rtol=0, atol=1e-9)


def test_type_mismatch_is_a_category_error_naming_row_and_feature() -> None:
    rng = np.random.default_rng(1)
    X = _objects(rng, 400, ["a", "b", "c"])
    est = HistGradientBoostingRegressor(categorical_features=[0, 2], max_iter=5).fit(X, X[:, 1].astype(float))
    model = build(export(est))
    Xt = X[:3].copy()
    Xt[2, 0] = 7
    with pytest.raises(CategoryError, match="feature 'x0' takes string categories; got int 7") as info:
        model.predict(Xt)
    assert info.value.row == 2 and info.value.kind == "category_type"


def test_corrupt_categorical_arrays_refused() -> None:
    rng = np.random.default_rng(2)
    X = _data(rng, 500)
    est = HistGradientBoostingRegressor(categorical_features=[0], max_iter=3).fit(X, np.nan_to_num(X[:, 0]) % 3)
    w = export(est)
    arrays = dict(w.arrays)
    arrays["cat_split"] = np.where(arrays["cat_split"] == 1, 3, 0).astype(np.uint8)
    with pytest.raises(InvalidWeights, match="cat_split must hold 0, 1 or 2"):
        build(ModelWeights(w.arch, w.feature_names, arrays, w.classes, w.metadata))
    arrays = dict(w.arrays)
    arrays["cat_bits"] = arrays["cat_bits"][:-1]
    with pytest.raises(InvalidWeights, match="cat_bits must be"):
        build(ModelWeights(w.arch, w.feature_names, arrays, w.classes, w.metadata))
    meta = dict(w.metadata)
    meta["categorical"] = [{"feature": "x0", "categories": ["a", 1], "missing": None, "unknown": None}]
    with pytest.raises(InvalidWeights, match="all strings or all integers"):
        build(ModelWeights(w.arch, w.feature_names, w.arrays, w.classes, meta))
