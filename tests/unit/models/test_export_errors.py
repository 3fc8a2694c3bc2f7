"""trainers.export refuses what it cannot rebuild exactly, naming the estimator and what is supported."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVC

from scorer.errors import UnsupportedModel
from trainers import export
from trainers.export import supported_estimators


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(60, 4))
    return X, (X[:, 0] > 0).astype(int)


def test_unknown_estimator_is_named_and_supported_ones_listed(data) -> None:
    X, y = data
    with pytest.raises(UnsupportedModel, match=r"cannot export SVC.*Supported estimators: .*SimpleImputer") as err:
        export(SVC().fit(X, y))
    for name in supported_estimators():
        assert name in str(err.value)


@pytest.mark.parametrize("step", [PCA(n_components=2), PolynomialFeatures()])
def test_unsupported_pipeline_step(data, step) -> None:
    X, y = data
    with pytest.raises(UnsupportedModel, match=rf"step 0 \({type(step).__name__}\).*SimpleImputer, StandardScaler"):
        export(make_pipeline(step, LinearRegression()).fit(X, y))


def test_unsupported_imputer_settings(data) -> None:
    X, y = data
    with pytest.raises(UnsupportedModel, match="add_indicator"):
        export(make_pipeline(SimpleImputer(add_indicator=True), LinearRegression()).fit(X, y))
    with pytest.raises(UnsupportedModel, match="missing_values"):
        export(make_pipeline(SimpleImputer(missing_values=-1), LinearRegression()).fit(X, y))


def test_unfitted_and_non_estimators(data) -> None:
    with pytest.raises(UnsupportedModel, match="not fitted"):
        export(make_pipeline(StandardScaler(), LinearRegression()))
    with pytest.raises(UnsupportedModel, match="not a scikit-learn estimator"):
        export(object())
    with pytest.raises(UnsupportedModel, match="passthrough"):
        from sklearn.pipeline import Pipeline

        export(Pipeline([("a", "passthrough")]))
