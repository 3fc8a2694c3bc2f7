"""LightGBM text models read without lightgbm: predictions equal lightgbm's own within 1e-12."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import UnsupportedModel
from scorer.importers.lightgbm import read_lightgbm_text
from scorer.models.registry import build
from trainers.export import export

lgb = pytest.importorskip("lightgbm")


def _data(rng, n=400, d=5, nan_share=0.1):
    X = rng.normal(size=(n, d))
    X[rng.random(X.shape) < nan_share] = np.nan
    return X


def _weights_from_file(text: str, classes=None):
    from scorer.models.weights import ModelWeights

    got = read_lightgbm_text(text.encode(), classes)
    return ModelWeights(
        arch=got.arch, feature_names=got.feature_names, arrays=got.arrays, classes=got.classes, metadata=got.metadata
    )


@pytest.mark.parametrize("n_trees,depth,use_missing", [(1, 3, True), (20, 6, True), (60, 12, False), (5, 2, True)])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression", "poisson", "huber", "regression_l1"])
def test_predictions_match(kind, n_trees, depth, use_missing):
    rng = np.random.default_rng(n_trees * 31 + depth)
    X = _data(rng)
    common = {
        "n_estimators": n_trees,
        "max_depth": depth,
        "num_leaves": min(2**depth, 64),
        "min_child_samples": 3,
        "verbose": -1,
        "n_jobs": 1,
        "use_missing": use_missing,
    }
    if kind in ("binary", "multiclass"):
        y = (np.nan_to_num(X[:, 0]) + rng.normal(size=len(X)) > 0).astype(int)
        if kind == "multiclass":
            y = y + (np.nan_to_num(X[:, 1]) > 0.5)
        labels = np.array(["a", "b", "c"])[y]
        est = lgb.LGBMClassifier(**common).fit(X, labels)
        expected = est.predict_proba(X)
    else:
        y = np.exp(np.nan_to_num(X[:, 0]) * 0.5) + rng.random(len(X))
        est = lgb.LGBMRegressor(objective=kind, **common).fit(X, y)
        expected = est.predict(X)
    w = export(est)
    got = build(w).predict(X)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    if kind in ("binary", "multiclass"):
        assert w.classes == tuple(est.classes_.tolist())
        assert (np.asarray(w.classes)[got.argmax(1)] == est.predict(X)).all()
    # the file path gives bit-identical arrays
    fw = _weights_from_file(est.booster_.model_to_string(), w.classes)
    for k, v in w.arrays.items():
        assert fw.arrays[k].tobytes() == v.tobytes(), k


def test_bare_booster_and_best_iteration():
    rng = np.random.default_rng(3)
    X, y = _data(rng), rng.normal(size=400)
    booster = lgb.train(
        {"verbose": -1, "num_threads": 1},
        lgb.Dataset(X[:300], y[:300]),
        50,
        valid_sets=[lgb.Dataset(X[300:], y[300:])],
        callbacks=[lgb.early_stopping(3, verbose=False)],
    )
    got = build(export(booster)).predict(X)
    np.testing.assert_allclose(got, booster.predict(X, num_iteration=booster.best_iteration), rtol=0, atol=1e-12)


def test_refusals():
    rng = np.random.default_rng(4)
    X = np.abs(_data(rng, nan_share=0))
    X[:50, 0] = 0
    est = lgb.LGBMRegressor(n_estimators=3, zero_as_missing=True, verbose=-1).fit(X, X[:, 0] + rng.random(400))
    with pytest.raises(UnsupportedModel, match="zero as missing"):
        export(est)
    text = est.booster_.model_to_string()
    with pytest.raises(UnsupportedModel, match="truncated"):
        read_lightgbm_text(text[: len(text) // 2])
    with pytest.raises(UnsupportedModel, match="no known link"):
        read_lightgbm_text(text.replace("objective=regression", "objective=custom"))
    with pytest.raises(UnsupportedModel, match="not UTF-8"):
        read_lightgbm_text(b"\xff\xfe" + text.encode())
