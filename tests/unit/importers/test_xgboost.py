"""XGBoost JSON models read without xgboost: predictions equal xgboost's own within 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import UnsupportedModel
from scorer.importers.xgboost import read_xgboost_json
from scorer.models.registry import build
from trainers.export import export

xgb = pytest.importorskip("xgboost")


def _data(rng, n=400, d=5, nan_share=0.1):
    X = rng.normal(size=(n, d))
    X[rng.random(X.shape) < nan_share] = np.nan
    return X


@pytest.mark.parametrize(
    "n_trees,depth,booster", [(1, 3, "gbtree"), (20, 6, "gbtree"), (60, 12, "gbtree"), (10, 4, "dart")]
)
@pytest.mark.parametrize(
    "kind", ["binary", "multiclass", "reg:squarederror", "count:poisson", "reg:gamma", "reg:absoluteerror"]
)
def test_predictions_match(kind, n_trees, depth, booster):
    rng = np.random.default_rng(n_trees * 31 + depth)
    X = _data(rng)
    common = {"n_estimators": n_trees, "max_depth": depth, "n_jobs": 1, "booster": booster}
    if kind in ("binary", "multiclass"):
        y = (np.nan_to_num(X[:, 0]) + rng.normal(size=len(X)) > 0).astype(int)
        if kind == "multiclass":
            y = y + (np.nan_to_num(X[:, 1]) > 0.5)
        est = xgb.XGBClassifier(**common).fit(X, y)
        expected = est.predict_proba(X)
    else:
        y = np.exp(np.nan_to_num(X[:, 0]) * 0.5) + rng.random(len(X))
        est = xgb.XGBRegressor(objective=kind, **common).fit(X, y)
        expected = est.predict(X)
    w = export(est)
    got = build(w).predict(X)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    if kind in ("binary", "multiclass"):
        assert (np.asarray(w.classes)[got.argmax(1)] == est.predict(X)).all()
    fw = read_xgboost_json(bytes(est.get_booster().save_raw("json")))
    for k, v in w.arrays.items():
        assert fw.arrays[k].tobytes() == v.tobytes(), k


def test_float32_thresholds_decide_like_xgboost():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 2)).astype(np.float32).astype(np.float64)
    y = (X[:, 0] > 0).astype(int)
    est = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)
    # inputs at and next to the training values (in float64): the kernel must route them as xgboost does
    vals = np.asarray(X[:, 0])
    probe = np.concatenate([vals, np.nextafter(vals, np.inf), np.nextafter(vals, -np.inf)])
    Xp = np.column_stack([probe, np.zeros_like(probe)])
    np.testing.assert_allclose(build(export(est)).predict(Xp), est.predict_proba(Xp), rtol=1e-6, atol=1e-6)


def test_refusals():
    rng = np.random.default_rng(4)
    X = _data(rng, nan_share=0)
    est = xgb.XGBRegressor(n_estimators=3, n_jobs=1).fit(X, X[:, 0])
    text = bytes(est.get_booster().save_raw("json")).decode()
    with pytest.raises(UnsupportedModel, match="not valid JSON"):
        read_xgboost_json(text[: len(text) // 2])
    with pytest.raises(UnsupportedModel, match="no known link"):
        read_xgboost_json(text.replace("reg:squarederror", "my:custom"))
    lin = xgb.XGBRegressor(n_estimators=3, booster="gblinear", n_jobs=1).fit(X, X[:, 0])
    with pytest.raises(UnsupportedModel, match="linear"):
        export(lin)


def test_ubjson_gives_the_same_arrays_and_refuses_truncation():
    from scorer.importers.xgboost import read_xgboost_ubj

    rng = np.random.default_rng(5)
    X = _data(rng)
    est = xgb.XGBClassifier(n_estimators=30, max_depth=5, n_jobs=1).fit(X, (np.nan_to_num(X[:, 0]) > 0).astype(int))
    booster = est.get_booster()
    a = read_xgboost_json(bytes(booster.save_raw("json")))
    raw = bytes(booster.save_raw("ubj"))
    b = read_xgboost_ubj(raw)
    for k, v in a.arrays.items():
        assert b.arrays[k].tobytes() == v.tobytes(), k
    with pytest.raises(UnsupportedModel, match="truncated"):
        read_xgboost_ubj(raw[: len(raw) // 3])
    with pytest.raises(UnsupportedModel, match="UBJSON"):
        read_xgboost_ubj(b"{" + b"\xff" * 20)
