"""The parts of per-segment training that need no exporter: grouping, splits, task, config, estimators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import is_regressor

from scorer.errors import ConfigError
from trainers.segment import (
    ARCHS,
    TrainConfig,
    group_rows,
    holdout_split,
    make_estimator,
    prepare_target,
    resolve_task,
    segment_seed,
)


def test_group_rows_sorts_segments_and_keeps_row_order() -> None:
    segments = np.array(["b", "a", "b", "c", "a", "b"])
    groups = group_rows(segments)
    assert [name for name, _ in groups] == ["a", "b", "c"]
    assert [rows.tolist() for _, rows in groups] == [[1, 4], [0, 2, 5], [3]]
    assert group_rows(np.array([], dtype=str)) == []


def test_group_rows_covers_every_row_once(rng: np.random.Generator) -> None:
    segments = rng.integers(0, 500, size=20_000).astype(str)
    groups = group_rows(segments)
    rows = np.concatenate([r for _, r in groups])
    assert np.array_equal(np.sort(rows), np.arange(20_000))
    for name, members in groups:
        assert np.all(segments[members] == name)
        assert np.all(np.diff(members) > 0)


def test_stratified_holdout_keeps_every_class_in_training() -> None:
    y = np.array([0] * 50 + [1] * 10 + [2] * 1)
    train, test = holdout_split(y, 0.2, seed=3, stratify=True)
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == y.size
    assert set(y[train]) == {0, 1, 2}  # the single '2' stays in training
    assert np.count_nonzero(y[test] == 0) == 10 and np.count_nonzero(y[test] == 1) == 2
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_holdout_is_deterministic_per_seed_and_handles_edges() -> None:
    y = np.arange(100, dtype=float)
    a = holdout_split(y, 0.25, seed=7, stratify=False)
    b = holdout_split(y, 0.25, seed=7, stratify=False)
    c = holdout_split(y, 0.25, seed=8, stratify=False)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    assert a[1].size == 25
    train, test = holdout_split(y, 0.0, seed=1, stratify=False)
    assert train.size == 100 and test.size == 0
    train, test = holdout_split(y[:2], 0.9, seed=1, stratify=False)
    assert train.size == 1 and test.size == 1


def test_segment_seed_depends_only_on_run_seed_and_name() -> None:
    assert segment_seed(0, "ORD") == segment_seed(0, "ORD")
    assert segment_seed(0, "ORD") != segment_seed(1, "ORD")
    assert segment_seed(0, "ORD") != segment_seed(0, "JFK")
    assert 0 <= segment_seed(5, "x") < 2**32


@pytest.mark.parametrize(("y", "task", "arch", "expected"), [
    (np.array(["a", "b"]), "auto", None, "classification"),
    (np.array([True, False]), "auto", None, "classification"),
    (np.array([0, 1, 1, 0]), "auto", None, "classification"),
    (np.array([0.0, 1.0, 2.0]), "auto", None, "classification"),
    (np.arange(50), "auto", None, "regression"),
    (np.array([0.5, 1.0]), "auto", None, "regression"),
    (np.arange(50), "auto", "logistic", "classification"),
    (np.array([0, 1]), "auto", "linear", "regression"),
    (np.array([0, 1]), "regression", "forest", "regression"),
])
def test_resolve_task(y: np.ndarray, task: str, arch: str | None, expected: str) -> None:
    assert resolve_task(y, task, arch) == expected


def test_prepare_target() -> None:
    assert prepare_target(np.array([1.0, 0.0]), "classification").dtype == np.int64
    assert prepare_target(np.array([1, 2]), "regression").dtype == np.float64
    with pytest.raises(ConfigError, match="target 'y' has non-integer values"):
        prepare_target(np.array([0.5, 1.0]), "classification", "y")
    with pytest.raises(ConfigError, match="regression needs a numeric target; 'y' holds"):
        prepare_target(np.array(["a", "b"]), "regression", "y")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "svm"}, "unknown arch 'svm'; choose one of logistic, linear, tree"),
    ({"task": "ranking"}, "unknown task 'ranking'"),
    ({"arch": "logistic", "task": "regression"}, "arch logistic is a classifier"),
    ({"arch": "linear", "task": "classification"}, "arch linear is a regressor"),
    ({"min_rows": 1}, "min_rows must be an integer >= 2"),
    ({"test_size": 0.95}, "test_size must be between 0 and 0.9"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"n_bins": 0}, "n_bins must be an integer in 1..1000"),
    ({"threads": 0}, "threads must be a positive integer or None"),
])
def test_config_refuses_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_builds_a_pipeline_with_the_agreed_preprocessing(arch: str) -> None:
    task = "regression" if arch == "linear" else "classification"
    pipeline = make_estimator(arch, task, seed=1)
    steps = [name for name, _ in pipeline.steps]
    scaled = ["impute", "scale", "model"]
    expected = {"hgb": ["model"], "lightgbm": ["model"], "xgboost": ["model"], "logistic": scaled, "linear": scaled,
                "mlp": scaled, "sgd": scaled}
    assert steps == expected.get(arch, ["impute", "model"])
    if arch in ("tree", "forest", "extra-trees", "gbt", "hgb", "mlp", "sgd", "lightgbm", "xgboost"):
        assert pipeline[-1].random_state == 1
        assert is_regressor(make_estimator(arch, "regression", seed=1))


def test_params_override_and_unknown_params_are_refused() -> None:
    assert make_estimator("forest", "classification", params={"n_estimators": 7})[-1].n_estimators == 7
    with pytest.raises(ConfigError, match="unknown parameter 'trees' for RandomForestClassifier"):
        make_estimator("forest", "classification", params={"trees": 7})
