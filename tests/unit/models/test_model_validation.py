"""build() refuses bad linear/logistic/mlp weights with specific messages; export refuses what it cannot mirror."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor

from scorer.errors import InvalidWeights, UnsupportedModel
from scorer.models import ModelWeights, build
from trainers import export


def edited(w: ModelWeights, *, drop: tuple[str, ...] = (), meta: dict | None = None, **arrays) -> ModelWeights:
    new = {k: v for k, v in w.arrays.items() if k not in drop}
    new.update(arrays)
    metadata = dict(w.metadata)
    metadata.update(meta or {})
    return ModelWeights(w.arch, w.feature_names, new, w.classes, metadata)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 4))
    return X, (X[:, 0] > 0).astype(int), np.digitize(X[:, 1], [-0.4, 0.4])


@pytest.fixture(scope="module")
def logistic(data) -> ModelWeights:
    X, _, y3 = data
    return export(LogisticRegression().fit(X, y3))


@pytest.fixture(scope="module")
def linear(data) -> ModelWeights:
    X, yb, _ = data
    return export(LinearRegression().fit(X, X @ [1.0, 2.0, 3.0, 4.0]))


@pytest.fixture(scope="module")
def mlp(data) -> ModelWeights:
    X, _, y3 = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export(MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=20, random_state=0).fit(X, y3))


def test_valid_fixtures_build(logistic, linear, mlp) -> None:
    for w in (logistic, linear, mlp):
        build(w)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(coef=np.full((3, 4), np.nan)), "non-finite"),
        (dict(coef=np.ones((3, 5))), r"coef' must have shape \[3, 4\]"),
        (dict(coef=np.ones(4)), "2-D"),
        (dict(intercept=np.ones(2)), r"intercept' must have shape \[3\]"),
        (dict(intercept=np.array([0.0, np.inf, 1.0])), "non-finite"),
        (dict(coef=np.ones((2, 4)), intercept=np.ones(2)), "3 classes|3\\+ classes|2 outputs"),
        (dict(meta={"proba": "sigmoid"}), "proba.*valid: binary, binary-softmax, softmax, ovr"),
        (dict(meta={"proba": "binary"}), "1 row"),
        (dict(drop=("intercept",)), "missing array 'intercept'"),
        (dict(extra=np.ones(1)), "unexpected arrays"),
    ],
)
def test_logistic_invalid(logistic, change: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        build(edited(logistic, **change))


def test_logistic_classes_must_match(logistic) -> None:
    w = logistic
    with pytest.raises(InvalidWeights, match="3 outputs but there are 4 classes"):
        build(ModelWeights(w.arch, w.feature_names, w.arrays, (0, 1, 2, 3), w.metadata))
    with pytest.raises(InvalidWeights, match="classes=None"):
        build(ModelWeights(w.arch, w.feature_names, w.arrays, None, w.metadata))


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(coef=np.array([1.0, np.nan, 0.0, 0.0])), "non-finite"),
        (dict(coef=np.ones(3)), r"shape \[4\]"),
        (dict(intercept=np.ones(2)), r"shape \[1\]"),
        (dict(coef=np.ones(4, dtype=np.float32)), "float64"),
    ],
)
def test_linear_invalid(linear, change: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        build(edited(linear, **change))


def test_linear_with_classes_refused(linear) -> None:
    w = linear
    with pytest.raises(InvalidWeights, match="no classes"):
        build(ModelWeights(w.arch, w.feature_names, w.arrays, (0, 1), w.metadata))


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(meta={"activation": "gelu"}), "unknown activation 'gelu'; valid: identity, logistic, tanh, relu"),
        (dict(meta={"out_activation": "sigmoid"}), "unknown out_activation 'sigmoid'; valid: identity, exp"),
        (dict(meta={"out_activation": "identity"}), "logistic or softmax"),
        (dict(meta={"activation": 3}), "activation' must be str"),
        (dict(coef1=np.ones((6, 4))), r"coef1 has shape \[6, 4\] but layer 1 receives 5"),
        (dict(intercept1=np.ones(3)), r"intercept1' must have shape \[4\]"),
        (dict(coef0=np.full((4, 5), np.inf)), "non-finite"),
        (dict(drop=("coef2", "intercept2")), "the last layer \\(4 softmax units\\).*3 classes"),
        (dict(drop=("coef1",)), "5 softmax units"),
        (dict(drop=("coef1", "intercept0")), "missing array 'intercept0'"),
        (dict(drop=("coef0",)), "coef0"),
        (dict(coef3=np.ones((4, 3)), intercept3=np.ones(3)), r"coef3 has shape \[4, 3\] but layer 3 receives 3"),
        (dict(coef4=np.ones((3, 3)), intercept4=np.ones(3)), r"unexpected arrays \['coef4', 'intercept4'\]"),
    ],
)
def test_mlp_invalid(mlp, change: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        build(edited(mlp, **change))


def test_mlp_regressor_shape_rules(data) -> None:
    X, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = export(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(X, X[:, 0]))
    build(w)
    with pytest.raises(InvalidWeights, match="regressor needs 1 output"):
        build(edited(w, coef1=np.ones((3, 2)), intercept1=np.ones(2)))
    with pytest.raises(UnsupportedModel, match="2 outputs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5).fit(X, X[:, :2]))


def test_export_refusals(data) -> None:
    X, yb, _ = data
    with pytest.raises(UnsupportedModel, match="loss='hinge'.*only loss='log_loss'"):
        export(SGDClassifier().fit(X, yb))
    with pytest.raises(UnsupportedModel, match="2-D target"):
        export(LinearRegression().fit(X, X[:, :2]))
    with pytest.raises(UnsupportedModel, match="has 2 names but the estimator takes 4"):
        export(LinearRegression().fit(X, yb), feature_names=["a", "b"])
    w = export(LinearRegression().fit(X, yb), feature_names=["a", "b", "c", "d"])
    assert w.feature_names == ("a", "b", "c", "d")
    assert w.metadata["estimator"] == "LinearRegression" and w.metadata["preprocess"] == []


def test_imputer_dropping_empty_columns_matches_sklearn(data) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    X, yb, _ = data
    X = X.copy()
    X[:, 2] = np.nan  # empty at fit time: scikit-learn drops the column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, yb)
        model = build(export(pipe))
        Xt = np.random.default_rng(0).normal(size=(20, 4))
        Xt[::3, 0] = np.nan
        ref = pipe.predict_proba(Xt)
    assert model.n_features == 4 and model.n_inputs == 3
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=0, atol=1e-12)
    kept = make_pipeline(SimpleImputer(keep_empty_features=True), LogisticRegression()).fit(X, yb)
    np.testing.assert_allclose(build(export(kept)).predict(Xt), kept.predict_proba(Xt), rtol=0, atol=1e-12)


def test_logistic_extreme_decisions_stay_finite(logistic) -> None:
    binary = ModelWeights(
        "logistic", ("a",), {"coef": np.array([[1.0]]), "intercept": np.zeros(1)}, (0, 1), {"proba": "binary"}
    )
    m = build(binary)
    X = np.array([[-1000.0], [-40.0], [0.0], [40.0], [1000.0]])
    out = m.predict(X)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 1], [0.0, np.exp(-40.0), 0.5, 1.0, 1.0], rtol=1e-12, atol=1e-300)
    for i in range(len(X)):
        np.testing.assert_allclose(m.predict(X[i : i + 1]), out[i : i + 1], rtol=1e-12, atol=1e-300)
    multi = build(edited(logistic, coef=np.eye(3, 4) * 1000))
    assert np.isfinite(multi.predict(np.array([[1e3, -1e3, 5.0, 0.0]]))).all()


def test_overflowing_finite_inputs_are_scored_not_refused() -> None:
    w = ModelWeights(
        "logistic", ("a", "b"), {"coef": np.array([[1.0, 1.0]]), "intercept": np.zeros(1)}, (0, 1), {"proba": "binary"}
    )
    m = build(w)
    X = np.array([[1e308, 1e308], [-1e308, -1e308]])
    with np.errstate(all="ignore"):  # the decisions overflow to +-inf, as in scikit-learn
        np.testing.assert_allclose(m.predict(X), [[0.0, 1.0], [1.0, 0.0]], rtol=0, atol=1e-300)
        np.testing.assert_allclose(m.predict(X[:1]), [[0.0, 1.0]], rtol=0, atol=1e-300)
    with pytest.raises(ValueError, match=r"column\(s\) \['b'\]"):
        m.predict(np.array([[1.0, np.inf], [0.0, 0.0]]))
