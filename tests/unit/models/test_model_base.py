"""The Model base class and the registry, through a toy architecture registered for these tests only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from scorer.errors import InvalidWeights
from scorer.models import Model, ModelWeights, build, registry


class Dot(Model):
    """y = X @ w: enough to exercise validation, preprocessing and the input checks."""

    arch: ClassVar[str] = "test-dot"

    def _validate(self) -> None:
        self.w = self._array("w", shape=(self.n_inputs,))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.w


@pytest.fixture(autouse=True)
def dot_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, Dot.arch, Dot)


def weights(n: int = 3, preprocess: list | None = None, extra: dict | None = None, **over) -> ModelWeights:
    arrays = {"w": np.arange(1.0, n + 1)}
    arrays.update(extra or {})
    fields = dict(
        arch="test-dot",
        feature_names=tuple(f"f{i}" for i in range(n)),
        arrays=arrays,
        metadata={"estimator": "Toy", "preprocess": preprocess or []},
    )
    fields.update(over)
    return ModelWeights(**fields)


def test_registry_unknown_arch_lists_valid_ones() -> None:
    with pytest.raises(InvalidWeights, match=r"unknown model arch 'nope'; valid: .*test-dot"):
        build(weights(arch="nope"))
    with pytest.raises(InvalidWeights, match="unknown model arch"):
        registry.get("nope")
    assert "test-dot" in registry.archs()
    assert registry.get("test-dot") is Dot


def test_register_refuses_duplicates_and_missing_arch() -> None:
    class Other(Dot):
        arch: ClassVar[str] = "test-dot"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Other)

    class NoArch(Model):
        pass

    with pytest.raises(TypeError, match="arch"):
        registry.register(NoArch)


def test_build_refuses_non_weights() -> None:
    with pytest.raises(InvalidWeights, match="ModelWeights"):
        build({"arch": "test-dot"})  # type: ignore[arg-type]


def test_predict_basic_and_attributes() -> None:
    m = build(weights())
    assert m.feature_names == ("f0", "f1", "f2")
    assert m.n_features == 3 and not m.is_classifier and m.classes is None
    assert not m.accepts_missing
    np.testing.assert_array_equal(m.predict(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]])), [6.0, 6.0])


@pytest.mark.parametrize("X", [np.zeros(3), np.zeros((2, 4)), np.zeros((1, 2, 3))])
def test_predict_refuses_bad_shapes(X: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"2-D with 3 columns"):
        build(weights()).predict(X)


def test_predict_converts_without_mutating() -> None:
    extra = {"pre0.mean": np.ones(3), "pre0.scale": np.full(3, 2.0)}
    m = build(weights(preprocess=[{"kind": "standard_scaler"}], extra=extra))
    for X in (
        np.array([[1, 3, 5]], dtype=np.int64),
        np.array([[1.0, 3.0, 5.0]], dtype=np.float32),
        np.asfortranarray(np.array([[1.0, 3.0, 5.0], [1.0, 3.0, 5.0]])),
        [[1.0, 3.0, 5.0]],
    ):
        before = np.array(X, copy=True)
        out = m.predict(X)
        np.testing.assert_array_equal(np.asarray(X), before)
        assert out[0] == pytest.approx(0 * 1 + 1 * 2 + 2 * 3)


def test_predict_rejects_nan_without_imputer_and_names_the_column() -> None:
    m = build(weights())
    with pytest.raises(ValueError, match=r"NaN or inf in column\(s\) \['f1'\]"):
        m.predict(np.array([[1.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="f2"):
        m.predict(np.array([[1.0, 1.0, np.inf]]))


def test_dataframe_like_input_is_reordered_by_name() -> None:
    class Frame:
        def __init__(self, cols: list[str], values: np.ndarray) -> None:
            self.columns, self.values = cols, values

        def __getitem__(self, names: list[str]) -> np.ndarray:
            return self.values[:, [self.columns.index(n) for n in names]]

    m = build(weights())
    frame = Frame(["f2", "f0", "f1"], np.array([[3.0, 1.0, 2.0]]))
    np.testing.assert_array_equal(m.predict(frame), m.predict(np.array([[1.0, 2.0, 3.0]])))
    with pytest.raises(ValueError, match="lacks column"):
        m.predict(Frame(["f0", "f1"], np.zeros((1, 2))))


def test_impute_then_scale_matches_formula() -> None:
    fill = np.array([10.0, 20.0, 30.0])
    mean, scale = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 8.0])
    m = build(
        weights(
            preprocess=[{"kind": "impute"}, {"kind": "standard_scaler"}, {"kind": "minmax_scaler", "clip": True,
                                                                          "feature_range": [-1.0, 1.0]}],
            extra={
                "pre0.fill": fill, "pre1.mean": mean, "pre1.scale": scale,
                "pre2.scale": np.full(3, 0.5), "pre2.min": np.full(3, 0.1),
            },
        )
    )
    assert m.accepts_missing
    X = np.array([[np.nan, 2.0, 100.0], [1.0, np.nan, -100.0]])
    before = X.copy()
    Z = np.where(np.isnan(X), fill, X)
    Z = (Z - mean) / scale
    Z = np.clip(Z * 0.5 + 0.1, -1.0, 1.0)
    np.testing.assert_array_equal(m.predict(X), Z @ np.arange(1.0, 4.0))
    np.testing.assert_array_equal(X, before)


def test_impute_keep_drops_columns() -> None:
    m = build(
        weights(
            n=3,
            preprocess=[{"kind": "impute"}],
            extra={"pre0.fill": np.array([5.0, 0.0, 7.0]), "pre0.keep": np.array([0, 2]), "w": np.array([1.0, 10.0])},
        )
    )
    assert m.n_features == 3 and m.n_inputs == 2
    np.testing.assert_array_equal(m.predict(np.array([[np.nan, np.nan, 1.0]])), [5.0 + 10.0])


def test_scaler_first_never_mutates_input() -> None:
    for pre, extra in (
        ([{"kind": "standard_scaler"}], {"pre0.scale": np.full(3, 2.0)}),
        ([{"kind": "minmax_scaler", "clip": False, "feature_range": [0, 1]}],
         {"pre0.scale": np.full(3, 2.0), "pre0.min": np.zeros(3)}),
        ([{"kind": "standard_scaler"}], {}),
    ):
        X = np.ones((2, 3))
        build(weights(preprocess=pre, extra=extra)).predict(X)
        np.testing.assert_array_equal(X, np.ones((2, 3)))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(arrays={"w": np.array([1.0, np.nan, 2.0])}), "non-finite"),
        (dict(arrays={"w": np.ones(4)}), r"shape \[3\]"),
        (dict(arrays={"w": np.ones((3, 1))}), "1-D"),
        (dict(arrays={"w": np.ones(3, dtype=np.int64)}), "float64"),
        (dict(arrays={}), "missing array 'w'"),
        (dict(extra={"stray": np.ones(1)}), "unexpected arrays"),
        (dict(feature_names=("a", "a", "b")), "duplicate feature names"),
        (dict(feature_names=("a", "", "b")), "non-empty"),
        (dict(feature_names=()), "empty"),
        (dict(classes=(1,)), "at least 2 classes"),
        (dict(classes=(1, 1)), "distinct"),
        (dict(preprocess=[{"kind": "pca"}]), "kind 'pca'; valid: impute, standard_scaler, minmax_scaler"),
        (dict(preprocess=[{"kind": "impute"}]), "missing array 'pre0.fill'"),
        (dict(preprocess=[{"kind": "impute", "x": 1}], extra={"pre0.fill": np.zeros(3)}), "unknown keys"),
        (dict(preprocess=[{"kind": "impute"}], extra={"pre0.fill": np.zeros(3), "pre0.keep": np.array([2, 1])}),
         "increasing"),
        (dict(preprocess=[{"kind": "impute"}], extra={"pre0.fill": np.zeros(3), "pre0.keep": np.array([0, 3])}),
         "increasing"),
        (dict(preprocess=[{"kind": "standard_scaler"}], extra={"pre0.scale": np.zeros(3)}), "zeros"),
        (dict(preprocess=[{"kind": "standard_scaler"}], extra={"pre0.mean": np.zeros(2)}), "pre0.mean"),
        (dict(preprocess=[{"kind": "minmax_scaler", "clip": "yes"}],
              extra={"pre0.scale": np.ones(3), "pre0.min": np.zeros(3)}), "clip"),
        (dict(preprocess=[{"kind": "minmax_scaler", "feature_range": [1, 0]}],
              extra={"pre0.scale": np.ones(3), "pre0.min": np.zeros(3)}), "feature_range"),
        (dict(preprocess="impute"), "list"),
    ],
)
def test_invalid_weights_have_specific_messages(kw: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        build(weights(**kw))
