"""Imputer and scalers folded into the first layer: same scores as scikit-learn, NaN rows imputed on demand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from scorer.models import build
from scorer.models.linear import LogisticModel
from trainers import export

NAMES = [f"f{i}" for i in range(6)]


def _data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * [1, 10, 0.1, 5, 2, 1] + [0, 50, -3, 7, 0, 100]
    y = (X[:, 0] + X[:, 3] / 5 > 1.4).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X, y


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
    lambda: make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler(), LogisticRegression()),
    lambda: make_pipeline(SimpleImputer(), StandardScaler(with_mean=False), LogisticRegression()),
    lambda: make_pipeline(SimpleImputer(), StandardScaler(), MLPClassifier((8,), max_iter=300, random_state=0)),
])
def test_folded_classifiers_match_scikit_learn_with_missing_values(make: object) -> None:
    X, y = _data()
    pipe = make().fit(X, y)  # type: ignore[operator]
    model = build(export(pipe, NAMES))
    assert model._front is not None
    assert np.abs(model.predict(X) - pipe.predict_proba(X)).max() < 1e-12
    complete = np.nan_to_num(X, nan=0.5)
    assert np.abs(model.predict(complete) - pipe.predict_proba(complete)).max() < 1e-12
    one = np.ascontiguousarray(X[np.isnan(X).any(axis=1)][:1])
    assert np.abs(model.predict(one) - pipe.predict_proba(one)).max() < 1e-12
    x = X.copy()
    model.predict(x)
    assert np.array_equal(x, X, equal_nan=True)  # the input is never modified


def test_folded_regressor_and_dropped_empty_columns() -> None:
    X, y = _data(1)
    X[:, 2] = np.nan  # empty at fit time: scikit-learn drops it
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LinearRegression()).fit(X, np.nan_to_num(X[:, 0]) * 2 + y)
    model = build(export(pipe, NAMES))
    assert model._front is not None and model._front.keep is not None and model.fuse_key() is None
    assert np.abs(model.predict(X) - pipe.predict(X)).max() < 1e-9


def test_inf_is_still_refused_and_models_without_imputer_reject_nan() -> None:
    X, y = _data(2)
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    model = build(export(pipe, NAMES))
    bad = np.nan_to_num(X[:3], nan=0.0)
    bad[1, 4] = np.inf
    with pytest.raises(ValueError, match=r"column\(s\) \['f4'\]"):
        model.predict(bad)
    complete = np.nan_to_num(X, nan=0.0)
    scaled_only = make_pipeline(StandardScaler(), LogisticRegression()).fit(complete, y)
    strict = build(export(scaled_only, NAMES))
    assert strict._front is not None and strict._front.fill is None
    with pytest.raises(ValueError, match="no imputer"):
        strict.predict(X[np.isnan(X).any(axis=1)][:2])


def test_large_offsets_are_not_folded() -> None:
    X, y = _data(3)
    X[:, 1] += 1e9  # a mean a billion spreads away: re-association would lose digits
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    model = build(export(pipe, NAMES))
    assert model._front is None
    assert np.abs(model.predict(X) - pipe.predict_proba(X)).max() < 1e-9


def test_folded_models_fuse_and_impute_their_own_rows() -> None:
    models, pipes = [], []
    for seed in range(3):
        X, y = _data(seed)
        pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
        pipes.append(pipe)
        models.append(build(export(pipe, NAMES)))
    plain = build(export(LogisticRegression().fit(np.nan_to_num(X), y), NAMES))
    models.append(plain)
    assert len({m.fuse_key() for m in models}) == 1
    X, _ = _data(9, n=60)
    owner = np.arange(60) % 4
    X[owner == 3] = np.nan_to_num(X[owner == 3])  # the model without an imputer gets complete rows
    fused = LogisticModel.predict_fused(models, np.ascontiguousarray(X), owner)
    for k, model in enumerate(models):
        assert np.abs(fused[owner == k] - model.predict(np.ascontiguousarray(X[owner == k]))).max() < 1e-12
