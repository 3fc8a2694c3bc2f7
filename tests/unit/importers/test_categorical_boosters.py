"""LightGBM categorical bitsets and XGBoost partition splits: exact rebuilds, file path == object path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.cli.store_cmds import _read_weights
from scorer.errors import UnsupportedModel
from scorer.models import build
from trainers.export import export

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")


def _data(rng: np.random.Generator, n: int, levels: int, nan: float, hi: int | None = None) -> np.ndarray:
    hi = levels if hi is None else hi
    X = np.column_stack([rng.integers(0, hi, n), rng.normal(size=n), rng.integers(0, 6, n), rng.normal(size=n)])
    X = X.astype(float)
    X[rng.random(n) < nan, 0] = np.nan
    X[rng.random(n) < nan, 1] = np.nan
    return X


def _target(X: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    signal = np.isin(np.nan_to_num(X[:, 0], nan=-1), [1, 3, 5, 8, 13, 21]) + np.nan_to_num(X[:, 1]) + (X[:, 2] == 2)
    if kind == "regression":
        return signal + rng.normal(scale=0.1, size=X.shape[0])
    if kind == "binary":
        return (signal > 0.7).astype(int)
    return np.digitize(signal, [0.0, 0.8, 1.6])


def _check(est, X_test: np.ndarray, tol: float, tmp_path, suffixes: tuple[str, ...]) -> None:
    weights = export(est)
    model = build(weights)
    proba = hasattr(est, "predict_proba")
    ref = est.predict_proba(X_test) if proba else est.predict(X_test)
    got = model.predict(X_test)
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol)
    if proba:
        assert (np.argmax(got, axis=1) == np.argmax(ref, axis=1)).mean() > 0.995  # ties in float32 may flip
    np.testing.assert_allclose(model.predict(X_test[:1]), ref[:1], rtol=0, atol=tol)
    booster = est.booster_ if hasattr(est, "booster_") else est.get_booster()
    for suffix in suffixes:
        path = tmp_path / f"m{suffix}"
        booster.save_model(str(path))
        got_w = _read_weights(path)
        assert got_w.arch == weights.arch
        assert set(got_w.arrays) == set(weights.arrays)
        for k, v in weights.arrays.items():
            assert got_w.arrays[k].tobytes() == v.tobytes(), (suffix, k)


KINDS = st.sampled_from(["regression", "binary", "multiclass"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), kind=KINDS, trees=st.integers(1, 500), depth=st.integers(1, 12),
       levels=st.integers(2, 60), nan=st.sampled_from([0.0, 0.1]))
def test_lightgbm_categorical_matches_predict(tmp_path, seed, kind, trees, depth, levels, nan) -> None:
    rng = np.random.default_rng(seed)
    X = _data(rng, 400, levels, nan)
    y = _target(X, kind, rng)
    if kind != "regression" and np.unique(y).size < (2 if kind == "binary" else 3):
        return
    cls = lgb.LGBMRegressor if kind == "regression" else lgb.LGBMClassifier
    est = cls(n_estimators=trees, max_depth=depth, num_leaves=min(2**depth, 64), min_child_samples=5,
              min_data_per_group=5, cat_smooth=1, verbose=-1, n_jobs=1, random_state=0)
    est.fit(X, y, categorical_feature=[0, 2])
    X_test = _data(rng, 200, levels, nan, hi=levels + 5)  # codes never seen in training too
    _check(est, X_test, 1e-12, tmp_path, (".txt",))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), kind=KINDS, trees=st.integers(1, 500), depth=st.integers(1, 12),
       levels=st.integers(2, 60), nan=st.sampled_from([0.0, 0.1]))
def test_xgboost_categorical_matches_predict(tmp_path, seed, kind, trees, depth, levels, nan) -> None:
    rng = np.random.default_rng(seed)
    X = _data(rng, 400, levels, nan)
    y = _target(X, kind, rng)
    if kind != "regression" and np.unique(y).size < (2 if kind == "binary" else 3):
        return
    if kind != "regression" and np.unique(y).tolist() != list(range(np.unique(y).size)):
        return
    cls = xgb.XGBRegressor if kind == "regression" else xgb.XGBClassifier
    est = cls(n_estimators=trees, max_depth=depth, tree_method="hist", enable_categorical=True, max_cat_to_onehot=1,
              feature_types=["c", "q", "c", "q"], n_jobs=1, random_state=0)
    est.fit(X, y)
    X_test = _data(rng, 200, levels, nan, hi=levels + 5)
    scale = max(1.0, float(np.abs(est.predict(X_test)).max())) if kind == "regression" else 1.0
    _check(est, X_test, 1e-6 * scale * (1 + trees / 100), tmp_path, (".json", ".ubj"))


def test_pandas_categorical_lightgbm_model_is_refused_with_what_is_supported() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"c": pd.Categorical(["a", "b", "c"] * 40), "x": np.arange(120.0)})
    est = lgb.LGBMRegressor(n_estimators=3, verbose=-1, min_data_per_group=1).fit(df, np.arange(120.0))
    with pytest.raises(UnsupportedModel, match="pandas categorical columns.*supported: integer category codes"):
        export(est)
