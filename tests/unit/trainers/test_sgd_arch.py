"""``--arch sgd``: a logistic/linear version that scores as usual and carries the learner state, from which
online learning continues exactly as scikit-learn's partial_fit on the fitted estimator would."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor

from scorer.errors import InvalidWeights
from scorer.learn.bank import Bank
from scorer.learn.sgd import encode_targets
from scorer.learn.state import checkpoint, learnable
from scorer.models import ModelWeights, build
from trainers import export
from trainers.segment import TrainConfig, fit_segment
from trainers.sgd import with_learner


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, X @ np.array([1.5, -1.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=n)


@pytest.mark.parametrize("classes", [2, 3])
def test_continuing_a_fitted_classifier_equals_partial_fit(classes):
    X, z = _data()
    y = np.digitize(z, np.quantile(z, np.linspace(0, 1, classes + 1)[1:-1]))
    est = SGDClassifier(loss="log_loss", random_state=0, alpha=1e-3).fit(X[:200], y[:200])
    weights = with_learner(export(est, feature_names=list("abcd")), est)
    learned = learnable(weights)
    assert not learned.warm and learned.state.t == est.t_
    est.set_params(shuffle=False)
    est.partial_fit(X[200:], y[200:])
    rows = 1 if classes == 2 else classes
    bank = Bank("log_loss", "l2", "optimal", 4)
    idx = bank.add(learned.params, learned.state)
    targets = encode_targets("log_loss", y[200:], rows)
    bank.learn(np.tile(idx, 200), np.repeat(X[200:], rows, axis=0), targets.ravel(), np.repeat(np.arange(200), rows))
    out = checkpoint(weights, type(learned)(learned.params, bank.state(idx)))
    model = build(out)
    np.testing.assert_allclose(np.asarray(out.arrays["coef"]), est.coef_, atol=1e-9, rtol=0)
    np.testing.assert_allclose(model.predict(X[:50]), est.predict_proba(X[:50]), atol=1e-9, rtol=0)


def test_train_arch_sgd_publishes_scorable_versions_with_state():
    X, z = _data()
    result = fit_segment(X, (z > 0).astype(int), TrainConfig(arch="sgd"), segment="A", feature_names=list("abcd"),
                         task="classification")
    w = result.weights
    assert w.arch == "logistic" and result.metrics["arch"] == "sgd"
    assert {"learn.coef", "learn.t"} <= set(w.arrays) and w.metadata["learner"]["kind"] == "sgd"
    assert build(w).predict(X[:3]).shape == (3, 2)
    reg = fit_segment(X, z, TrainConfig(arch="sgd", params={"average": 10}), segment="A",
                      feature_names=list("abcd"), task="regression")
    assert reg.weights.arch == "linear" and learnable(reg.weights).params.average == 10
    assert reg.metrics["r2"] > 0.8


def test_continuing_a_fitted_regressor_equals_partial_fit():
    X, z = _data()
    est = SGDRegressor(random_state=0, average=10).fit(X[:200], z[:200])
    weights = with_learner(export(est, feature_names=list("abcd")), est)
    learned = learnable(weights)
    est.set_params(shuffle=False)
    est.partial_fit(X[200:], z[200:])
    bank = Bank("squared_error", "l2", "invscaling", 4)
    idx = bank.add(learned.params, learned.state)
    bank.learn(np.repeat(idx, 200), X[200:], z[200:], np.arange(200))
    out = checkpoint(weights, type(learned)(learned.params, bank.state(idx)))
    np.testing.assert_allclose(np.asarray(out.arrays["coef"]), est.coef_, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.asarray(out.arrays["intercept"]), est.intercept_, atol=1e-9, rtol=0)


def test_state_arrays_are_checked_and_other_stray_arrays_still_refused():
    X, z = _data()
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X, z > 0)
    w = with_learner(export(est, feature_names=list("abcd")), est)
    bad = ModelWeights(arch=w.arch, feature_names=w.feature_names, classes=w.classes, metadata=w.metadata,
                       arrays={**w.arrays, "learn.t": np.array([0.0])})
    with pytest.raises(InvalidWeights, match="t must be >= 1"):
        learnable(bad)
    stray = ModelWeights(arch=w.arch, feature_names=w.feature_names, classes=w.classes, metadata=w.metadata,
                         arrays={**w.arrays, "extra": np.zeros(2)})
    with pytest.raises(InvalidWeights, match="unexpected arrays"):
        build(stray)


def test_a_plain_logistic_version_is_a_warm_start():
    X, z = _data()
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit(X, z > 0)
    learned = learnable(export(est, feature_names=list("abcd")))
    assert learned.warm and learned.state.t == 1.0
    np.testing.assert_array_equal(learned.state.coef, est.coef_)
