"""Tree ensembles (forest / boosted / hist_boosted): parity, input semantics, layouts and corrupt-tree refusals."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

import scorer.models.tree_layout as tree_layout
import scorer.models.trees as trees
from scorer.errors import InvalidWeights, UnsupportedModel
from scorer.models import ModelWeights, build
from trainers import export

TOL = 1e-9
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """HistGradientBoosting's OpenMP threads crawl on a busy shared machine; one thread keeps the suite fast."""
    with threadpool_limits(limits=1):
        yield


def data(seed: int, n: int = 120, n_features: int = 4, n_classes: int = 2, nan: float = 0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.5, 3.0, size=n_features)
    s = X @ rng.normal(size=n_features) + 0.3 * rng.normal(size=n)
    y = np.digitize(s, np.quantile(s, np.linspace(0, 1, n_classes + 1)[1:-1])) if n_classes else s
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, y


def proba(est: Any, X: np.ndarray) -> np.ndarray:
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def fitted(est: Any, X: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def with_arrays(w: ModelWeights, **changes: np.ndarray) -> ModelWeights:
    arrays = {k: np.array(v) for k, v in w.arrays.items()}
    arrays.update(changes)
    return ModelWeights(arch=w.arch, feature_names=w.feature_names, arrays=arrays, classes=w.classes,
                        metadata=dict(w.metadata))


@pytest.fixture(scope="module")
def rf() -> tuple[Any, ModelWeights]:
    X, y = data(0, n_classes=3, nan=0.1)
    est = fitted(RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0), X, y)
    return est, export(est)


@pytest.fixture(scope="module")
def gbt() -> tuple[Any, ModelWeights]:
    X, y = data(1, n_classes=3)
    est = fitted(GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0), X, y)
    return est, export(est)


# -- parity -----------------------------------------------------------------------------------------------
KINDS = ("tree", "forest", "extra", "gbt", "hgb")


def make(kind: str, n_classes: int, depth: int | None, n_estimators: int, seed: int) -> Any:
    clf = n_classes > 0
    if kind == "tree":
        return (DecisionTreeClassifier if clf else DecisionTreeRegressor)(max_depth=depth, random_state=seed)
    if kind == "forest":
        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(n_estimators=n_estimators, max_depth=depth, random_state=seed)
    if kind == "extra":
        cls = ExtraTreesClassifier if clf else ExtraTreesRegressor
        return cls(n_estimators=n_estimators, max_depth=depth, random_state=seed)
    if kind == "gbt":
        cls = GradientBoostingClassifier if clf else GradientBoostingRegressor
        return cls(n_estimators=n_estimators, max_depth=depth or 3, random_state=seed)
    cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
    return cls(max_iter=n_estimators, max_depth=depth, max_leaf_nodes=None if depth else 15, random_state=seed)


@SETTINGS
@given(
    kind=st.sampled_from(KINDS),
    n_classes=st.sampled_from([0, 2, 3, 5]),
    depth=st.sampled_from([None, 1, 2, 3, 5, 8]),
    n_estimators=st.integers(1, 6),
    n_features=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_parity_over_depths_sizes_and_classes(kind, n_classes, depth, n_estimators, n_features, seed) -> None:
    nan = 0.0 if kind == "gbt" else 0.15
    X, y = data(seed, n_features=n_features, n_classes=n_classes, nan=nan)
    est = fitted(make(kind, n_classes, depth, n_estimators, seed), X, y)
    model = build(ModelWeights.from_bytes(export(est).to_bytes()))
    Xt, _ = data(seed + 1, n=57, n_features=n_features, nan=nan)
    Xt[:5] *= 20.0
    ref = proba(est, Xt)
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict(Xt[3:4]), ref[3:4], rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_batches_are_bit_identical_to_sklearn(kind: str) -> None:
    """Summing trees in scikit-learn's order makes every score equal, not only close."""
    nan = 0.0 if kind == "gbt" else 0.2
    X, y = data(3, n=400, n_features=6, n_classes=3, nan=nan)
    est = fitted(make(kind, 3, None, 12, 0), X, y)
    model = build(export(est))
    Xt, _ = data(4, n=3000, n_features=6, nan=nan)
    np.testing.assert_array_equal(model.predict(Xt), proba(est, Xt))
    np.testing.assert_array_equal(model.predict(Xt[7:8]), proba(est, Xt[7:8]))


def test_inputs_at_and_around_thresholds_decide_like_sklearn() -> None:
    """Forests compare float32-rounded inputs, HistGradientBoosting float64 ones: probe each threshold."""
    X, y = data(5, n=300, n_features=3, n_classes=0)
    for est in (
        fitted(RandomForestRegressor(n_estimators=4, max_depth=6, random_state=0), X, y),
        fitted(GradientBoostingRegressor(n_estimators=4, random_state=0), X, y),
        fitted(HistGradientBoostingRegressor(max_iter=4), X, y),
    ):
        w = export(est)
        inner = w.arrays["feature"] >= 0
        probes = []
        for f, t in zip(w.arrays["feature"][inner], w.arrays["threshold"][inner], strict=True):
            t32 = np.float32(t)
            for v in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), float(t32),
                      float(np.nextafter(t32, np.float32(np.inf))), float(np.nextafter(t32, np.float32(-np.inf)))):
                row = X[len(probes) % len(X)].copy()
                row[f] = v
                probes.append(row)
        P = np.array(probes)
        np.testing.assert_array_equal(build(w).predict(P), est.predict(P))


def test_single_leaf_trees() -> None:
    X, _ = data(6)
    est = fitted(DecisionTreeRegressor(), X, np.full(len(X), 2.5))
    model = build(export(est))
    assert model._depth == 0
    np.testing.assert_array_equal(model.predict(X[:3]), [2.5, 2.5, 2.5])
    y = (X[:, 0] > 0).astype(int)
    gb = fitted(GradientBoostingClassifier(n_estimators=3, max_depth=1, init="zero"), X, y)
    np.testing.assert_allclose(build(export(gb)).predict(X), gb.predict_proba(X), rtol=0, atol=TOL)


@pytest.mark.parametrize(
    ("make_est", "nan"),
    [
        (lambda: RandomForestClassifier(n_estimators=6, max_depth=5, random_state=0), 0.1),
        (lambda: GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0), 0.0),
        (lambda: HistGradientBoostingClassifier(max_iter=4, max_depth=4), 0.1),
    ],
    ids=["forest", "gbt-depth2", "hgb"],
)
def test_both_layouts_and_compaction_agree(monkeypatch: pytest.MonkeyPatch, make_est, nan: float) -> None:
    """Padded and plain layouts, dense or stepwise first levels, with or without parking finished pairs:
    the same bytes as scikit-learn for big batches, small batches and single rows."""
    X, y = data(7, n=500, n_features=5, n_classes=3, nan=nan)
    est = fitted(make_est(), X, y)
    w = export(est)
    Xt, _ = data(8, n=2000, n_features=5, nan=nan)
    ref = est.predict_proba(Xt)
    padded = build(w)
    assert padded._complete
    monkeypatch.setattr(tree_layout, "_PAD_FACTOR", 0.0)
    monkeypatch.setattr(tree_layout, "_PAD_SLACK_BYTES", 0)
    plain = build(w)
    assert not plain._complete
    for model in (padded, plain):
        np.testing.assert_array_equal(model.predict(Xt), ref)  # dense first levels; compaction (plain)
        np.testing.assert_array_equal(model.predict(Xt[:7]), ref[:7])  # stepwise first levels
        np.testing.assert_array_equal(model.predict(Xt[11:12]), ref[11:12])
    monkeypatch.setattr(trees, "_COMPACT_MIN", 10**9)
    np.testing.assert_array_equal(plain.predict(Xt), ref)


def test_deep_unbalanced_trees_use_the_plain_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_layout, "_PAD_SLACK_BYTES", 0)  # decide by the padding ratio alone, as for big models
    X, y = data(9, n=600, n_features=3, n_classes=0, nan=0.1)
    est = fitted(HistGradientBoostingRegressor(max_iter=5, max_leaf_nodes=40, min_samples_leaf=2), X, y)
    model = build(export(est))
    assert not model._complete and model._depth > 8
    Xt, _ = data(10, n=1500, n_features=3, nan=0.1)
    np.testing.assert_array_equal(model.predict(Xt), est.predict(Xt))


def test_resident_size_is_close_to_the_arrays(rf) -> None:
    """No per-node Python objects: the traversal tables are a small multiple of the stored arrays."""
    X, y = data(11, n=2000, n_features=8, n_classes=2)
    est = fitted(RandomForestClassifier(n_estimators=10, random_state=0), X, y)
    w = export(est)
    model = build(w)
    stored = sum(a.nbytes for a in w.arrays.values())
    tables = [v for v in vars(model).values() if isinstance(v, np.ndarray)]
    for v in vars(model).values():
        if isinstance(v, list | tuple):
            tables.extend({id(a): a for a in v if isinstance(a, np.ndarray)}.values())
    assert sum(a.nbytes for a in tables) < 3 * stored


def test_stored_leaves_are_canonical(rf) -> None:
    _, w = rf
    leaf = w.arrays["left"] == -1
    assert (w.arrays["right"][leaf] == -1).all() and (w.arrays["feature"][leaf] == -1).all()
    assert (w.arrays["threshold"][leaf] == 0).all() and (w.arrays["missing_left"][leaf] == 0).all()
    assert w.arrays["offsets"][0] == 0 and w.arrays["offsets"][-1] == leaf.size


# -- NaN and inf ------------------------------------------------------------------------------------------
def test_forest_routes_nan_and_refuses_inf_like_sklearn(rf) -> None:
    est, w = rf
    model = build(w)
    assert model.accepts_missing and model.handles_missing
    X, _ = data(12, n=40, nan=0.3)
    np.testing.assert_array_equal(model.predict(X), est.predict_proba(X))
    X[2, 1] = np.inf
    with pytest.raises(ValueError):
        est.predict_proba(X)
    with pytest.raises(ValueError, match=r"inf in column\(s\) \['x1'\]"):
        model.predict(X)
    X[2, 1] = 1e39  # finite in float64, inf in float32: scikit-learn refuses it too
    with pytest.raises(ValueError):
        est.predict_proba(X)
    with pytest.raises(ValueError, match=r"\['x1'\] hold values beyond float32 range"):
        model.predict(X)


def test_gbt_refuses_nan_and_float32_overflow(gbt) -> None:
    est, w = gbt
    model = build(w)
    assert not model.accepts_missing
    X, _ = data(13, n=5)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(X)
    X[1, 2] = -1e300
    with pytest.raises(ValueError):
        est.predict_proba(X)
    with pytest.raises(ValueError, match="float32 range"):
        model.predict(X)


def test_hgb_accepts_nan_and_inf_like_sklearn() -> None:
    X, y = data(14, n=300, n_classes=2, nan=0.2)
    est = fitted(HistGradientBoostingClassifier(max_iter=10), X, y)
    model = build(export(est))
    Xt, _ = data(15, n=50, nan=0.3)
    Xt[::7, 0] = np.inf
    Xt[::5, 1] = -np.inf
    Xt[3] = np.nan
    np.testing.assert_array_equal(model.predict(Xt), est.predict_proba(Xt))


# -- exporter refusals ------------------------------------------------------------------------------------
def test_exporter_refusals() -> None:
    X, y = data(16, n=80, n_classes=2)
    Xc = X.copy()
    Xc[:, 0] = np.arange(len(X)) % 3 + 0.5  # fractional categories: no exact category list
    hgb = fitted(HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]), Xc, y)
    with pytest.raises(UnsupportedModel, match=r"categorical column 0 has category 0.5; supported: strings or"):
        export(hgb)
    gb = fitted(GradientBoostingClassifier(n_estimators=2, init=DummyClassifier(strategy="prior")), X, y)
    with pytest.raises(UnsupportedModel, match="init=DummyClassifier"):
        export(gb)
    multi = fitted(RandomForestRegressor(n_estimators=2), X, np.c_[y, y])
    with pytest.raises(UnsupportedModel, match="2 outputs"):
        export(multi)
    single = fitted(DecisionTreeClassifier(), X, np.zeros(len(X), dtype=int))
    with pytest.raises(UnsupportedModel, match="single class"):
        export(single)


# -- corrupt trees ----------------------------------------------------------------------------------------
def _first_internal(w: ModelWeights, tree: int = 0) -> tuple[int, int, int]:
    """(global index, local index, tree size) of an internal node of ``tree`` whose left child is internal."""
    off = w.arrays["offsets"]
    lo, hi = int(off[tree]), int(off[tree + 1])
    left = w.arrays["left"]
    for i in range(lo, hi):
        if left[i] != -1 and left[lo + left[i]] != -1:
            return i, i - lo, hi - lo
    raise AssertionError("no suitable node")


def _set(w: ModelWeights, name: str, index: int, value: Any) -> ModelWeights:
    a = np.array(w.arrays[name])
    a[index] = value
    return with_arrays(w, **{name: a})


def corruptions(w: ModelWeights) -> list[tuple[str, ModelWeights, str]]:
    i, local, size = _first_internal(w)
    child = int(w.arrays["left"][i])
    n = w.arrays["feature"].size
    out = [
        ("cycle to root", _set(w, "left", i + child, 0), "point forward"),
        ("self loop", _set(w, "left", i, local), "point forward"),
        ("child past tree", _set(w, "right", i, size), "point forward"),
        ("child far out", _set(w, "right", i, 2**30), "point forward"),
        ("negative child", _set(w, "left", i, -7), "point forward"),
        ("shared child", _set(w, "right", i, child), "parent"),
        ("feature too big", _set(w, "feature", i, 99), r"feature must be in \[0, 4\)"),
        ("feature negative", _set(w, "feature", i, -3), "feature must be in"),
        ("half leaf", _set(w, "left", i, -1), "both be -1"),
        ("leaf with feature", _set(w, "feature", int(np.flatnonzero(w.arrays["left"] == -1)[0]), 1), "feature -1"),
        ("nan threshold", _set(w, "threshold", i, np.nan), "threshold is NaN"),
        ("short threshold", with_arrays(w, threshold=w.arrays["threshold"][:-1]), "threshold"),
        ("long feature", with_arrays(w, feature=np.r_[w.arrays["feature"], 0].astype(np.int32)), "feature"),
        ("offsets past end", _set(w, "offsets", -1, n + 1), "shape"),
        ("offsets not from 0", _set(w, "offsets", 0, 1), "start at 0"),
        ("empty tree", _set(w, "offsets", 1, 0), "no empty tree"),
        ("feature dtype", with_arrays(w, feature=w.arrays["feature"].astype(np.int64)), "int32"),
    ]
    if w.arch == "forest":
        out += [
            ("inf value", _set(w, "value", (i, 0), np.inf), "non-finite"),
            ("value columns", with_arrays(w, value=w.arrays["value"][:, :2]), "classes"),
            ("missing_left 2", _set(w, "missing_left", i, 2), "0 or 1"),
        ]
    else:
        out += [
            ("baseline split", with_arrays(w, baseline=np.zeros(5)), "stages"),
            ("nan baseline", _set(w, "baseline", 0, np.nan), "non-finite"),
        ]
    return out


@pytest.mark.parametrize("which", ["rf", "gbt"])
def test_corrupt_trees_are_refused(which: str, request: pytest.FixtureRequest) -> None:
    _, w = request.getfixturevalue(which)
    build(w)
    for name, bad, match in corruptions(w):
        with pytest.raises(InvalidWeights, match=match):
            build(bad)
            pytest.fail(f"{name}: built")


def test_boosted_metadata_is_checked(gbt) -> None:
    _, w = gbt
    for link, match in (("probit", "valid:"), ("logit", "1 raw output"), ("identity", "logit, half_logit or")):
        bad = ModelWeights(arch=w.arch, feature_names=w.feature_names, arrays=dict(w.arrays), classes=w.classes,
                           metadata={**w.metadata, "link": link})
        with pytest.raises(InvalidWeights, match=match):
            build(bad)


def chain(depth: int) -> ModelWeights:
    """A hand-built single tree: a left-going chain of ``depth`` splits."""
    n = 2 * depth + 1
    feature = np.full(n, -1, dtype=np.int32)
    left = np.full(n, -1, dtype=np.int32)
    right = np.full(n, -1, dtype=np.int32)
    for d in range(depth):
        node = 2 * d
        feature[node], left[node], right[node] = 0, node + 2, node + 1
    value = np.arange(n, dtype=np.float64)[:, None]
    arrays = {"offsets": np.array([0, n]), "feature": feature, "threshold": -np.arange(n, dtype=np.float64),
              "left": left, "right": right, "missing_left": np.ones(n, dtype=np.uint8), "value": value}
    return ModelWeights(arch="forest", feature_names=("a",), arrays=arrays)


def test_depth_is_bounded() -> None:
    model = build(chain(trees.MAX_DEPTH))
    # x = -3.5: goes left (x <= -2k) while -3.5 <= -2k, i.e. through nodes 0, 2; exits right at node 4 -> leaf 5
    np.testing.assert_array_equal(model.predict(np.array([[-3.5], [np.nan], [1.0]])), [5.0, 2 * trees.MAX_DEPTH, 1])
    with pytest.raises(InvalidWeights, match="deeper than the supported"):
        build(chain(trees.MAX_DEPTH + 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["left", "right", "feature"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(-3, 40)), min_size=1, max_size=4),
)
def test_random_corruption_never_crashes_or_loops(rf, name: str, edits: list[tuple[int, int]]) -> None:
    """Whatever gets past build scores without an index error; everything else is InvalidWeights."""
    _, w = rf
    a = np.array(w.arrays[name])
    for pos, value in edits:
        a[pos % a.size] = value
    try:
        model = build(with_arrays(w, **{name: a}))
    except InvalidWeights:
        return
    X, _ = data(17, n=30, nan=0.2)
    out = model.predict(X)
    assert out.shape == (30, 3) and np.isfinite(out).all()
