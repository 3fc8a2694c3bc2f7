"""Property tests: parity with scikit-learn over shapes, class counts, layer sizes and pipelines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from scorer.models import ModelWeights, build
from trainers import export

TOL = 1e-9
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def problem(seed: int, n_features: int, n_classes: int, n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train X, labels covering every class, and test X with a different scale."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.1, 5.0, size=n_features)
    y = np.arange(n) % n_classes
    X[:, 0] += y  # make the classes a little separable
    return X, y, rng.normal(size=(31, n_features)) * 4.0


def check(est, X_test: np.ndarray, classifier: bool) -> None:
    w = export(est)
    assert ModelWeights.from_bytes(w.to_bytes()).to_bytes() == w.to_bytes()
    model = build(w)
    ref = est.predict_proba(X_test) if classifier else est.predict(X_test)
    np.testing.assert_allclose(model.predict(X_test), ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict(X_test[:1]), ref[:1], rtol=0, atol=TOL)


def fitted(est, X: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n_features=st.integers(1, 12),
    n_classes=st.integers(2, 6),
    sgd=st.booleans(),
    C=st.floats(1e-3, 1e3),
)
def test_logistic_parity(seed: int, n_features: int, n_classes: int, sgd: bool, C: float) -> None:
    X, y, Xt = problem(seed, n_features, n_classes)
    est = SGDClassifier(loss="log_loss", random_state=seed, max_iter=50) if sgd else LogisticRegression(C=C)
    check(fitted(est, X, y), Xt, classifier=True)


def test_ovr_rows_whose_sigmoids_underflow_match_scikit_learn() -> None:
    """Decisions below -709.78 are exactly 0 in scipy's expit; a row made only of such tiny sigmoids and one
    merely small one (-689) normalises to exactly [0, 0, 1, 0, 0], not 1 - 4e-9 (hypothesis found it)."""
    X, y, Xt = problem(2156, 12, 5)
    est = fitted(SGDClassifier(loss="log_loss", random_state=2156, max_iter=50), X, y)
    z = est.decision_function(Xt)
    assert ((z < -709.79).sum(axis=1) == 4).any()  # the case this test is about is present
    check(est, Xt, classifier=True)
    ref = est.predict_proba(Xt)
    assert (build(export(est)).predict(Xt)[ref == 0.0] == 0.0).all()


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n_features=st.integers(1, 8),
    hidden=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    activation=st.sampled_from(["identity", "logistic", "tanh", "relu"]),
    n_classes=st.integers(0, 4),  # 0: regressor
)
def test_mlp_parity(seed: int, n_features: int, hidden: list[int], activation: str, n_classes: int) -> None:
    X, y, Xt = problem(seed, n_features, max(n_classes, 2))
    kw = dict(hidden_layer_sizes=tuple(hidden), activation=activation, max_iter=15, random_state=seed)
    if n_classes:
        check(fitted(MLPClassifier(**kw), X, y), Xt, classifier=True)
    else:
        check(fitted(MLPRegressor(**kw), X, X[:, 0] * 2.0 + y), Xt, classifier=False)


@pytest.mark.slow
@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n_features=st.integers(1, 8),
    strategy=st.sampled_from(["mean", "median", "most_frequent", "constant"]),
    scaler=st.sampled_from(["none", "standard", "standard-nomean", "standard-nostd", "minmax", "minmax-clip"]),
    nan_rate=st.floats(0.0, 0.5),
    classifier=st.booleans(),
)
def test_pipeline_parity_with_missing_values(
    seed: int, n_features: int, strategy: str, scaler: str, nan_rate: float, classifier: bool
) -> None:
    X, y, Xt = problem(seed, n_features, 3)
    rng = np.random.default_rng(seed + 1)
    X[rng.random(X.shape) < nan_rate] = np.nan
    Xt[rng.random(Xt.shape) < nan_rate] = np.nan
    steps = [SimpleImputer(strategy=strategy, fill_value=0.5)]
    steps += {
        "none": [],
        "standard": [StandardScaler()],
        "standard-nomean": [StandardScaler(with_mean=False)],
        "standard-nostd": [StandardScaler(with_std=False)],
        "minmax": [MinMaxScaler(feature_range=(-1, 2))],
        "minmax-clip": [MinMaxScaler(clip=True)],
    }[scaler]
    est = make_pipeline(*steps, LogisticRegression() if classifier else Ridge())
    target = y if classifier else y * 1.5 + rng.normal(size=y.shape)
    check(fitted(est, X, target), Xt, classifier=classifier)
