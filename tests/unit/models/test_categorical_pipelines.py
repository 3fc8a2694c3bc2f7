"""ColumnTransformer pipelines with categorical columns: every architecture behind each encoder, rebuilt exactly."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder
from sklearn.tree import DecisionTreeRegressor

from scorer.errors import CategoryError, UnsupportedModel
from scorer.models import build
from trainers.export import export

LEVELS = ["a", "b", "c", "d", "rare"]


def frame(rng: np.random.Generator, n: int, unknown: float = 0.0, missing: float = 0.05) -> np.ndarray:
    X = np.empty((n, 5), dtype=object)
    X[:, 0] = rng.choice(LEVELS, n, p=[0.3, 0.3, 0.2, 0.19, 0.01])
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = rng.choice([3, 5, 7, 11], n)  # integer categories
    X[:, 3] = rng.normal(size=n)
    X[:, 4] = rng.choice(["u", "v"], n)
    X[rng.random(n) < missing, 0] = np.nan
    X[rng.random(n) < missing, 1] = np.nan
    if unknown:
        X[rng.random(n) < unknown, 0] = "never"
        X[rng.random(n) < unknown, 2] = 99
    return X


def target(X: np.ndarray) -> np.ndarray:
    return (((X[:, 0] == "a") | (X[:, 2] == 5)) ^ (np.nan_to_num(X[:, 1].astype(float)) > 1)).astype(int)


OHE = {
    "ignore": OneHotEncoder(handle_unknown="ignore"),
    "drop-first": OneHotEncoder(drop="first", handle_unknown="ignore"),
    "if-binary": OneHotEncoder(drop="if_binary", handle_unknown="ignore"),
    "min-frequency": OneHotEncoder(min_frequency=30, handle_unknown="infrequent_if_exist"),
    "max-categories": OneHotEncoder(max_categories=3, handle_unknown="infrequent_if_exist"),
}
ORD = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
ESTIMATORS = {
    "logistic": (LogisticRegression(max_iter=500), OHE),
    "ridge": (Ridge(), OHE),
    "linear": (LinearRegression(), {"drop-first": OHE["drop-first"]}),
    "mlp": (MLPClassifier(hidden_layer_sizes=(6,), max_iter=200, random_state=0), {"ignore": OHE["ignore"]}),
    "mlp-reg": (MLPRegressor(hidden_layer_sizes=(6,), max_iter=200, random_state=0), {"ignore": OHE["ignore"]}),
    "forest": (RandomForestClassifier(n_estimators=8, random_state=0), {"ordinal": ORD}),
    "extra": (ExtraTreesRegressor(n_estimators=5, random_state=0), {"ordinal": ORD}),
    "tree": (DecisionTreeRegressor(max_depth=6), {"ordinal": ORD}),
    "gbt": (GradientBoostingClassifier(n_estimators=10), {"ordinal": ORD}),
    "hgb-ordinal": (HistGradientBoostingClassifier(max_iter=10), {"ordinal": ORD}),
}
CASES = [(e, k, imp) for e, (_, encs) in ESTIMATORS.items() for k in encs for imp in (False, True)]


def _pipeline(est_name: str, enc_name: str, impute: bool):
    est, encs = ESTIMATORS[est_name]
    enc = copy.deepcopy(encs[enc_name])
    cat = make_pipeline(SimpleImputer(strategy="most_frequent"), enc) if impute else enc
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [1, 3]), ("cat", cat, [0, 2, 4])],
                           remainder="drop")
    return make_pipeline(ct, copy.deepcopy(est))


def _ref(p, X):
    return p.predict_proba(X) if hasattr(p, "predict_proba") else p.predict(X)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("est_name", "enc_name", "impute"), CASES)
def test_every_architecture_behind_each_encoder_matches_sklearn(est_name: str, enc_name: str, impute: bool) -> None:
    rng = np.random.default_rng(0)
    X = frame(rng, 1200)
    p = _pipeline(est_name, enc_name, impute).fit(X, target(X))
    model = build(export(p))
    Xt = frame(rng, 300, unknown=0.05)
    if enc_name != "ordinal" and not impute:  # NaN not seen in training is unknown: sklearn ignores it too
        pass
    ref = _ref(p, Xt)
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=0, atol=1e-9)
    for i in (0, 7, 99):
        np.testing.assert_allclose(model.predict(Xt[i : i + 1]), ref[i : i + 1], rtol=0, atol=1e-9)
    if est_name in ("logistic", "ridge", "linear"):
        assert model._folded is not None and model._layout.expand not in model._steps  # lookup, no dense one-hot


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), n_levels=st.integers(2, 30), min_frequency=st.sampled_from([None, 5, 0.05]),
       ints=st.booleans(), drop=st.sampled_from([None, "first", "if_binary"]))
def test_hypothesis_one_hot_logistic(seed: int, n_levels: int, min_frequency, ints: bool, drop) -> None:
    rng = np.random.default_rng(seed)
    levels = list(range(100, 100 + n_levels)) if ints else [f"k{i}" for i in range(n_levels)]
    n = 400
    X = np.empty((n, 2), dtype=object)
    X[:, 0] = rng.choice(levels, n, p=np.arange(1, n_levels + 1) / np.arange(1, n_levels + 1).sum())
    X[:, 1] = rng.normal(size=n)
    y = (np.isin(X[:, 0], levels[::2]) ^ (X[:, 1].astype(float) > 0)).astype(int)
    unknown = "infrequent_if_exist" if min_frequency else "ignore"
    if drop is not None and unknown == "ignore" and min_frequency is None:
        unknown = "ignore"
    enc = OneHotEncoder(handle_unknown=unknown, min_frequency=min_frequency, drop=drop)
    ct = ColumnTransformer([("c", enc, [0])], remainder="passthrough")
    try:
        p = make_pipeline(ct, LogisticRegression()).fit(X, y)
    except ValueError:
        return  # a combination scikit-learn itself refuses
    model = build(export(p))
    Xt = X[:100].copy()
    Xt[::9, 0] = (999 if ints else "unseen")
    np.testing.assert_allclose(model.predict(Xt), p.predict_proba(Xt), rtol=0, atol=1e-9)


def test_unknown_with_error_rule_and_type_mismatch_are_category_errors() -> None:
    rng = np.random.default_rng(3)
    X = frame(rng, 400, missing=0.0)
    ct = ColumnTransformer([("cat", OneHotEncoder(), [0, 2, 4])], remainder="passthrough")
    model = build(export(make_pipeline(ct, LogisticRegression(max_iter=300)).fit(X, target(X))))
    bad = X[:4].copy()
    bad[1, 0] = "zebra"
    with pytest.raises(CategoryError, match=r"feature 'x0' has unknown category 'zebra'") as info:
        model.predict(bad)
    assert info.value.row == 1 and info.value.kind == "unknown_category"
    bad = X[:4].copy()
    bad[2, 2] = "5"
    with pytest.raises(CategoryError, match=r"feature 'x2' takes integer categories; got str '5'"):
        model.predict(bad)
    codes, keep, errors = model.categorical.encode_rows(np.vstack([X[:3], bad]))
    assert keep.tolist() == [0, 1, 2, 3, 4, 6] and errors[0][0] == 5 and errors[0][2] == "category_type"


def test_float_array_with_integer_categories_and_dataframe() -> None:
    rng = np.random.default_rng(4)
    X = frame(rng, 500, missing=0.0)[:, [1, 2, 3]]
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [1])], remainder="passthrough")
    p = make_pipeline(ct, LogisticRegression()).fit(X.astype(float), (X[:, 1] == 5).astype(int))
    model = build(export(p))
    Xf = X.astype(float)
    Xf[3, 1] = 4.0  # unknown: ignored
    np.testing.assert_allclose(model.predict(Xf), p.predict_proba(Xf), rtol=0, atol=1e-12)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["n1", "c", "n2"])
    p = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(), ["c"])], remainder="passthrough"),
                      LogisticRegression()).fit(df, (X[:, 1] == 5).astype(int))
    model = build(export(p))
    np.testing.assert_allclose(model.predict(df[["n2", "c", "n1"]]), p.predict_proba(df), rtol=0, atol=1e-12)


def test_unsupported_steps_refused_with_what_is_supported() -> None:
    rng = np.random.default_rng(5)
    X = frame(rng, 300, missing=0.0)
    y = target(X)
    ct = ColumnTransformer([("cat", KBinsDiscretizer(n_bins=3), [1])], remainder="drop")
    with pytest.raises(UnsupportedModel, match=r"step KBinsDiscretizer; supported: ColumnTransformer .*OneHotEncoder"):
        export(make_pipeline(ct, LogisticRegression()).fit(X, y))
    ct = ColumnTransformer([("cat", OneHotEncoder(), [0]), ("again", OrdinalEncoder(), [0])], remainder="drop")
    with pytest.raises(UnsupportedModel, match="a column used by two branches"):
        export(make_pipeline(ct, LogisticRegression()).fit(X, y))
    late = ColumnTransformer([("cat", OneHotEncoder(), [0])], remainder="drop")
    with pytest.raises(UnsupportedModel, match="a ColumnTransformer after other steps .*; supported: "):
        export(make_pipeline(SimpleImputer(strategy="most_frequent"), late, LogisticRegression()).fit(X, y))
    ordinal = OrdinalEncoder(min_frequency=50, handle_unknown="use_encoded_value", unknown_value=-1)
    with pytest.raises(UnsupportedModel, match="OrdinalEncoder with min_frequency/max_categories; supported: "):
        export(make_pipeline(ColumnTransformer([("c", ordinal, [0])]), LogisticRegression()).fit(X, y))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("arch", ["logistic", "hgb-native", "forest-ordinal", "mlp"])
def test_palmerpenguins(arch: str) -> None:
    """A real data set with string categories and missing values (the palmerpenguins package's copy)."""
    penguins = pytest.importorskip("palmerpenguins")
    df = penguins.load_penguins()
    y = df.pop("species").to_numpy()
    df = df.drop(columns=["year"])
    num = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    cat = ["island", "sex"]
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    if arch == "hgb-native":
        p = HistGradientBoostingClassifier(categorical_features=cat, max_iter=20, random_state=0)
    else:
        enc = ORD if arch == "forest-ordinal" else OneHotEncoder(handle_unknown="ignore")
        est = {"logistic": LogisticRegression(max_iter=1000), "mlp": MLPClassifier((8,), max_iter=300, random_state=0),
               "forest-ordinal": RandomForestClassifier(10, random_state=0)}[arch]
        imputer = SimpleImputer(strategy="constant", fill_value="n/a")
        front = ColumnTransformer([("num", numeric, num), ("cat", make_pipeline(imputer, enc), cat)])
        p = make_pipeline(front, est)
    train = np.arange(len(df)) % 3 != 0
    p.fit(df[train], y[train])
    model = build(export(p))
    test = df[~train].copy()
    test.loc[test.index[:3], "island"] = "Atlantis"  # unknown island
    if arch == "forest-ordinal" or arch == "hgb-native" or arch in ("logistic", "mlp"):
        ref = p.predict_proba(test)
        np.testing.assert_allclose(model.predict(test), ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.predict(test.to_numpy(dtype=object)[:, [df.columns.get_loc(c) for c in
                                   model.feature_names]]), ref, rtol=0, atol=1e-9)
    assert set(model.categorical.levels()["island"]) == {"Biscoe", "Dream", "Torgersen"}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("impute", [False, True])
def test_target_encoder_as_a_lookup(task: str, impute: bool) -> None:
    rng = np.random.default_rng(8)
    X = frame(rng, 1000)
    hit = (X[:, 0] == "a").astype(int)
    y = {"binary": hit | (X[:, 2] == 5), "multiclass": hit + (X[:, 2] == 5),
         "regression": np.nan_to_num(X[:, 1].astype(float)) + hit}[task]
    enc = TargetEncoder(random_state=0)
    cat = make_pipeline(SimpleImputer(strategy="most_frequent"), enc) if impute else enc
    est = Ridge() if task == "regression" else LogisticRegression(max_iter=500)
    num = make_pipeline(SimpleImputer(), StandardScaler())
    p = make_pipeline(ColumnTransformer([("cat", cat, [0, 2]), ("num", num, [1, 3])]), est).fit(X, y)
    model = build(export(p))
    Xt = frame(rng, 300, unknown=0.05)  # unknown categories: the target mean, as scikit-learn
    np.testing.assert_allclose(model.predict(Xt), _ref(p, Xt), rtol=0, atol=1e-9)
    assert model._folded is not None


@pytest.mark.filterwarnings("ignore")
def test_dataframes_with_object_and_category_columns_score_like_arrays() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(9)
    X = frame(rng, 800)
    y = target(X)
    p = _pipeline("logistic", "ignore", True).fit(X, y)
    model = build(export(p))
    Xt = frame(rng, 200, unknown=0.05)
    df = pd.DataFrame(Xt, columns=model.feature_names)
    df["x1"] = df["x1"].astype(float)
    df["x3"] = df["x3"].astype(float)
    as_category = df.copy()
    as_category["x0"] = as_category["x0"].astype("category")
    ref = p.predict_proba(Xt)
    for frame_ in (df, as_category, df[list(reversed(df.columns))]):
        np.testing.assert_allclose(model.predict(frame_), ref, rtol=0, atol=1e-9)


def test_scalers_before_the_layout_fold_into_the_weights_exactly() -> None:
    rng = np.random.default_rng(11)
    X = frame(rng, 600, missing=0.0)
    num = make_pipeline(StandardScaler(), StandardScaler(with_mean=False), StandardScaler(with_std=False))
    front = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 2, 4]), ("num", num, [1, 3])])
    for est in (LogisticRegression(), Ridge()):
        p = make_pipeline(front, est).fit(X, target(X))
        model = build(export(p))
        assert model._folded is not None and not model._steps  # every scaler folded, nothing left to run
        Xt = frame(rng, 200, missing=0.0, unknown=0.05)
        np.testing.assert_allclose(model.predict(Xt), _ref(p, Xt), rtol=0, atol=1e-9)
