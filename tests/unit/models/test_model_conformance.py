"""Every architecture through the same checks: round trip, sklearn parity, no mutation, order, determinism.

Cases come from model_cases.py (plus every ``*_cases.py`` beside it).
"""

from __future__ import annotations

import numpy as np
import pytest
from model_cases import CASES, Case, fit, make_data

from scorer.models import ModelWeights, archs, build
from trainers import export

TOL = 1e-9


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def fitted(request: pytest.FixtureRequest) -> tuple[Case, object, ModelWeights]:
    case: Case = request.param
    est = fit(case)
    return case, est, export(est)


def reference(case: Case, est: object, X: np.ndarray) -> np.ndarray:
    return est.predict_proba(X) if case.task in ("binary", "multiclass", "multilabel") else est.predict(X)


def test_every_registered_arch_has_a_case() -> None:
    assert set(archs()) <= {c.arch for c in CASES}


def test_export_gives_expected_arch_and_classes(fitted) -> None:
    case, est, w = fitted
    assert w.arch == case.arch
    assert w.feature_names == tuple(f"x{i}" for i in range(case.n_features))
    model = build(w)
    assert model.n_features == case.n_features
    assert model.accepts_missing is case.missing or model.handles_missing
    if case.task in ("regression", "poisson"):
        assert w.classes is None and not model.is_classifier
    else:
        assert model.is_classifier
        assert w.classes == tuple(np.asarray(est.classes_).tolist())


def test_round_trip_bytes_and_npz_bit_identical(fitted, tmp_path) -> None:
    case, _, w = fitted
    blob = w.to_bytes()
    back = ModelWeights.from_bytes(blob)
    assert back.to_bytes() == blob and back.checksum() == w.checksum()
    path = tmp_path / f"{case.name}.npz"
    w.save(path)
    loaded = ModelWeights.load(path)
    assert loaded.to_bytes() == blob
    X, _ = make_data(case, 64, seed=7)
    expected = build(w).predict(X)
    for again in (back, loaded):
        got = build(again).predict(X)
        assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("seed", [1, 2])
def test_parity_with_sklearn(fitted, seed: int) -> None:
    case, est, w = fitted
    X, _ = make_data(case, 200, seed=seed)
    X[:5] *= 10.0  # some inputs far outside the training range
    model = build(w)
    got, ref = model.predict(X), reference(case, est, X)
    assert got.shape == ref.shape
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    rows = np.concatenate([model.predict(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(rows, ref[:10], rtol=0, atol=TOL)


def test_output_shape_and_probabilities(fitted) -> None:
    case, _, w = fitted
    model = build(w)
    X, _ = make_data(case, 33, seed=3)
    out = model.predict(X)
    if model.is_classifier:
        assert out.shape == (33, len(model.classes))
        assert np.all((out >= 0) & (out <= 1))
        if case.task != "multilabel":
            np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    else:
        assert out.shape == (33,)
    assert model.predict(X[:0]).shape == (0, *out.shape[1:])


def test_input_not_mutated(fitted) -> None:
    case, _, w = fitted
    X, _ = make_data(case, 20, seed=4)
    before = X.copy()
    build(w).predict(X)
    build(w).predict(X[:1])
    np.testing.assert_array_equal(X, before)
    assert X.flags.writeable


def test_feature_order_respected(fitted) -> None:
    case, est, _ = fitted
    names = [f"f_{chr(97 + i)}" for i in range(case.n_features)][::-1]
    w = export(est, feature_names=names)
    assert w.feature_names == tuple(names)
    model = build(w)
    X, _ = make_data(case, 25, seed=5)
    perm = np.random.default_rng(0).permutation(case.n_features)

    class Frame:  # the minimal DataFrame protocol Model.predict understands
        columns = [names[i] for i in perm]

        def __getitem__(self, cols: list[str]) -> np.ndarray:
            return X[:, perm][:, [self.columns.index(c) for c in cols]]

    np.testing.assert_array_equal(model.predict(Frame()), model.predict(X))
    if not np.allclose(model.predict(X[:, ::-1]), model.predict(X), equal_nan=True):
        return
    pytest.fail("reversing the columns did not change the scores; the case cannot detect ordering bugs")


def test_deterministic(fitted) -> None:
    case, _, w = fitted
    again = export(fit(case))
    assert again.to_bytes() == w.to_bytes()
    X, _ = make_data(case, 40, seed=6)
    model = build(w)
    assert model.predict(X).tobytes() == model.predict(X).tobytes() == build(again).predict(X).tobytes()


def test_wrong_width_refused(fitted) -> None:
    case, _, w = fitted
    model = build(w)
    with pytest.raises(ValueError, match=f"{case.n_features} columns"):
        model.predict(np.zeros((2, case.n_features + 1)))


def test_nan_handling(fitted) -> None:
    case, est, w = fitted
    model = build(w)
    X, _ = make_data(case, 30, seed=8)
    X[3, 1] = np.nan
    if model.accepts_missing:
        np.testing.assert_allclose(model.predict(X), reference(case, est, X), rtol=0, atol=TOL)
    else:
        with pytest.raises(ValueError, match="NaN"):
            model.predict(X)
        with pytest.raises(ValueError, match="NaN"):
            model.predict(X[3:4])
