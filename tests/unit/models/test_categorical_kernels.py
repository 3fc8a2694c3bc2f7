"""The batch kernels of categorical inputs: the fast paths give what the general (row by row) path gives.

Integer categories in a float batch are scored straight from the values (``onehot.Direct``), codes are
folded in whole-array passes (``onehot.Folded``), dense integer categories are encoded in one gather
(``categorical.DenseCodes``), strings in one dict pass. Each is checked against scikit-learn and against the
general path on batches with unknown, missing, fractional, negative and out-of-range values.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from scorer.errors import CategoryError
from scorer.models import build
from scorer.models.linear import _direct
from trainers.export import export

LEVELS_A = [0, 2, 5, 7]
LEVELS_B = list(range(1, 13))
ENCODERS = {
    "ignore": lambda: OneHotEncoder(handle_unknown="ignore"),
    "drop-first": lambda: OneHotEncoder(drop="first", handle_unknown="ignore"),
    "min-frequency": lambda: OneHotEncoder(min_frequency=40, handle_unknown="infrequent_if_exist"),
    "error": lambda: OneHotEncoder(),
}


def floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Columns: numeric, category A, numeric, category B, numeric."""
    X = rng.normal(size=(n, 5))
    X[:, 1] = rng.choice(LEVELS_A, n, p=[0.5, 0.3, 0.15, 0.05])
    X[:, 3] = rng.choice(LEVELS_B, n)
    return X


def fit(rng: np.random.Generator, enc: str, est: str = "logistic"):
    X = floats(rng, 600)
    y = ((X[:, 1] == 2) ^ (X[:, 0] > 0.3)).astype(int) + (est == "multi") * (X[:, 3] > 8)
    ct = ColumnTransformer([("cat", ENCODERS[enc](), [1, 3]), ("num", StandardScaler(), [0, 2, 4])])
    model = {"ridge": Ridge(), "logistic": LogisticRegression(max_iter=500), "multi": LogisticRegression(max_iter=500)}
    p = make_pipeline(ct, model[est]).fit(X, y)
    return p, build(export(p))


def ref(p, X):
    return p.predict_proba(X) if hasattr(p, "predict_proba") else p.predict(X)


def row_by_row(model, X):
    """The one-row path (plain Python encoding, the general fold): what every fast path must agree with."""
    return np.concatenate([model.predict(X[i : i + 1]) for i in range(X.shape[0])])


@pytest.mark.parametrize("enc", list(ENCODERS))
@pytest.mark.parametrize("est", ["logistic", "multi", "ridge"])
def test_direct_path_on_clean_float_batches(enc: str, est: str) -> None:
    rng = np.random.default_rng(1)
    p, model = fit(rng, enc, est)
    X = floats(rng, 300)
    assert model._direct is not None and _direct(model, X) is not None  # the fast path is the one taken
    got = model.predict(X)
    np.testing.assert_allclose(got, ref(p, X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, row_by_row(model, X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, model.predict_encoded(model.categorical.encode(X)), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Found unknown categories")
@pytest.mark.parametrize("enc", ["ignore", "drop-first", "min-frequency"])
@pytest.mark.parametrize("value", [3.0, 99.0, -4.0, -0.5, 2.5, 1e300, 2.0**63, np.inf])
def test_values_that_are_not_categories_leave_the_fast_path_and_score_as_sklearn(enc: str, value: float) -> None:
    rng = np.random.default_rng(2)
    p, model = fit(rng, enc)
    X = floats(rng, 200)
    X[[5, 77, 150], 1] = value
    assert _direct(model, X) is None
    got = model.predict(X)
    np.testing.assert_allclose(got, row_by_row(model, X), rtol=0, atol=1e-12)
    if np.isfinite(value):
        np.testing.assert_allclose(got, ref(p, X), rtol=0, atol=1e-9)


def test_unknown_with_error_rule_names_the_same_row_and_value_as_before() -> None:
    rng = np.random.default_rng(3)
    _, model = fit(rng, "error")
    X = floats(rng, 200)
    X[40, 3], X[90, 1] = 13.0, 3.0  # both unknown: the first categorical input's row is named first
    with pytest.raises(CategoryError, match=r"feature 'x1' has unknown category 3\.0") as info:
        model.predict(X)
    assert info.value.row == 90 and info.value.kind == "unknown_category"
    with pytest.raises(CategoryError, match=r"feature 'x1' has unknown category 3\.0") as one:
        model.predict(X[90:91])  # the one-row path says the same
    assert one.value.row == 0 and one.value.detail == info.value.detail
    codes, keep, errors = model.categorical.encode_rows(X)
    assert [e[0] for e in errors] == [90, 40] and keep.size == 198


def test_missing_values_follow_the_missing_rule_and_nan_numbers_are_refused_as_before() -> None:
    rng = np.random.default_rng(4)
    p, model = fit(rng, "ignore")
    X = floats(rng, 100)
    X[7, 1] = np.nan
    assert _direct(model, X) is None
    np.testing.assert_allclose(model.predict(X), row_by_row(model, X), rtol=0, atol=1e-12)
    X = floats(rng, 100)
    X[9, 0] = np.nan  # a numeric input with no imputer
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict(X)
    X[9, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict(X)


def test_other_layouts_of_the_input_fall_back_and_agree() -> None:
    rng = np.random.default_rng(5)
    p, model = fit(rng, "ignore")
    X = floats(rng, 120)
    for other in (X.astype(np.float32), np.asfortranarray(X), X.astype(object), X[:, :].T.copy().T):
        # (float32 rows are read as float64, as scikit-learn would if given them so)
        np.testing.assert_allclose(model.predict(other), ref(p, other.astype(np.float64)), rtol=0, atol=1e-9)
    assert _direct(model, np.asfortranarray(X)) is None and _direct(model, X[:16]) is None


def test_dense_codes_encode_like_each_column_alone() -> None:
    rng = np.random.default_rng(6)
    _, model = fit(rng, "ignore")
    cat = model.categorical
    X = floats(rng, 400)
    odd = rng.random(400) < 0.1
    X[odd, 1] = rng.choice([3.0, -1.0, -0.5, 2.5, np.nan, 1e20, -np.inf, 7.0000001], odd.sum())
    X[rng.random(400) < 0.1, 3] = np.nan
    X[::37, 3] = 0.0  # out of range below the first level
    got = cat.encode(X)
    want = X.copy()
    for c in cat.columns:
        want[:, c.index] = c.encode_numbers(X[:, c.index].copy(), "m")
    np.testing.assert_array_equal(got, want)
    clean = floats(rng, 50)
    assert cat._dense.encode(clean) == {1, 3}
    assert set(np.unique(clean[:, 1]).tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_folded_codes_fast_path_equals_the_general_fold() -> None:
    rng = np.random.default_rng(7)
    _, model = fit(rng, "ignore")
    folded = model._folded
    X = model.categorical.encode(floats(rng, 64))
    assert folded._fast(X) is not None
    for code in (np.nan, -1.0, -0.5, 4.0, 3.5, 5.0, 12.0, 1e300):
        Y = X.copy()
        Y[[3, 30], 1] = code
        in_range = 0 <= code < folded.n_codes[0]  # 3.5 reads as code 3 (and 4 is the unknown's), as before
        assert (folded._fast(Y) is None) != in_range
        batch = folded(Y)
        rows = np.vstack([folded(Y[i : i + 1]) for i in range(Y.shape[0])])
        np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-12)


def _strings(rng: np.random.Generator, n: int) -> np.ndarray:
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = rng.choice(["red", "green", "blue"], n)
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = rng.choice(["s", "m", "l", "xl"], n)
    return X


@pytest.mark.filterwarnings("ignore:Found unknown categories")
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("handle", ["ignore", "error"])
def test_string_batches_with_unknown_missing_and_wrong_types(handle: str, scale: bool) -> None:
    rng = np.random.default_rng(8)
    X = _strings(rng, 400)
    X[:, 1] = X[:, 1] * 3 + 5
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown=handle), [0, 2])],
                           remainder=StandardScaler() if scale else "passthrough")
    p = make_pipeline(ct, LogisticRegression(max_iter=300)).fit(X, (X[:, 0] == "red").astype(int))
    model = build(export(p))
    Xt = _strings(rng, 100)
    assert _direct(model, Xt) is not None  # object rows with string categories: scored without encoding
    np.testing.assert_allclose(model.predict(Xt), p.predict_proba(Xt), rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.predict(Xt), row_by_row(model, Xt), rtol=0, atol=1e-12)
    Y = Xt.copy()
    Y[5, 1] = "1.5"  # a numeric string converts (offline, not strict) on either path, as scikit-learn reads it
    np.testing.assert_allclose(model.predict(Y), row_by_row(model, Y), rtol=0, atol=1e-12)
    Y[5, 1] = None
    assert _direct(model, Y) is None
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict(Y)
    if handle == "ignore":
        Xt[[4, 60], 0] = "purple"
        assert _direct(model, Xt) is None
        Xt[11, 2] = None
        np.testing.assert_allclose(model.predict(Xt), row_by_row(model, Xt), rtol=0, atol=1e-12)
        Xt[11, 2] = "xxl"
        np.testing.assert_allclose(model.predict(Xt), p.predict_proba(Xt), rtol=0, atol=1e-9)
    else:
        Xt[60, 0] = "purple"
        with pytest.raises(CategoryError, match="unknown category 'purple'") as info:
            model.predict(Xt)
        assert info.value.row == 60
    for wrong, row in ((3, 20), (True, 21), (2.5, 22)):
        Y = _strings(rng, 100)
        Y[row, 2] = wrong
        with pytest.raises(CategoryError, match="takes string categories") as info:
            model.predict(Y)
        assert info.value.row == row and info.value.kind == "category_type"


@pytest.mark.filterwarnings("ignore:Found unknown categories")
@pytest.mark.parametrize("handle", ["ignore", "error"])
def test_arrow_backed_string_columns_match_object_columns(handle: str) -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(9)
    X = _strings(rng, 400)
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown=handle), [0, 2])], remainder="passthrough")
    p = make_pipeline(ct, LogisticRegression(max_iter=300)).fit(X, (X[:, 0] == "red").astype(int))
    model = build(export(p))
    Xt = _strings(rng, 100)
    for dtype in (pd.StringDtype("pyarrow"), pd.ArrowDtype(pa.string()), pd.ArrowDtype(pa.large_string()), object):
        df = pd.DataFrame({"x0": pd.Series(Xt[:, 0], dtype=dtype), "x1": Xt[:, 1].astype(float),
                           "x2": pd.Series(Xt[:, 2], dtype=dtype)})
        np.testing.assert_allclose(model.predict(df), p.predict_proba(Xt), rtol=0, atol=1e-9)
        odd = df.copy()
        odd.loc[7, "x0"], odd.loc[8, "x2"] = "purple", None
        if handle == "error":
            with pytest.raises(CategoryError, match="unknown category 'purple'") as info:
                model.predict(odd)
            assert info.value.row == 7
        else:
            np.testing.assert_allclose(model.predict(odd), row_by_row(model, odd.to_numpy(dtype=object, na_value=None)),
                                       rtol=0, atol=1e-12)


def test_strict_numeric_checks_refuse_text_and_booleans_and_accept_numbers_of_any_kind() -> None:
    from decimal import Decimal

    rng = np.random.default_rng(10)
    X = _strings(rng, 300)
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 2])], remainder="passthrough")
    model = build(export(make_pipeline(ct, LogisticRegression()).fit(X, (X[:, 0] == "red").astype(int))))
    Xt = _strings(rng, 60)
    Xt[[1, 2, 3, 4], 1] = [np.float32(0.5), np.int64(3), 7, None]
    codes, keep, errors = model.categorical.encode_rows(Xt)
    assert not errors and keep.size == 60 and np.isnan(codes[4, 1]) and codes[2, 1] == 3.0
    for bad, kind in (("1.5", "str"), (True, "bool"), (Decimal("2"), "Decimal"), (np.bool_(False), "bool")):
        Y = Xt.copy()
        Y[[9, 30], 1] = bad
        codes, keep, errors = model.categorical.encode_rows(Y)
        assert [e[0] for e in errors] == [9, 30] and keep.size == 58
        assert errors[0][2] == "category_type" and f"takes numbers; got {kind}" in errors[0][1]
        codes_plain = model.categorical.encode(Y[:8])  # not strict (offline): numpy's conversion, as before
        assert codes_plain.shape == (8, 3)
