"""Per-segment training end to end (no services): results, skips, metrics, stats, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.models import build
from trainers.data import TrainingData
from trainers.segment import SkipSegment, TrainConfig, fit_segment, train_segments


def make_data(rng: np.random.Generator, sizes: dict[str, int], *, regression: bool = False,
              n_features: int = 3) -> TrainingData:
    segments, xs, ys = [], [], []
    for i, (name, n) in enumerate(sizes.items()):
        X = rng.normal(size=(n, n_features))
        w = np.linspace(1.0, -1.0, n_features) * (1 + i)
        score = X @ w
        y = score + rng.normal(scale=0.1, size=n) if regression else (score + rng.logistic(size=n) > 0).astype(int)
        segments += [name] * n
        xs.append(X)
        ys.append(y)
    X = np.vstack(xs)
    X[rng.random(X.shape) < 0.05] = np.nan
    order = rng.permutation(X.shape[0])  # interleave segments like a real file
    return TrainingData.from_arrays(np.array(segments)[order], X[order], np.concatenate(ys)[order],
                                    [f"f{j}" for j in range(n_features)])


def test_trains_each_segment_and_skips_small_ones(rng: np.random.Generator) -> None:
    data = make_data(rng, {"ORD": 200, "JFK": 120, "tiny": 10})
    report = train_segments(data, TrainConfig(min_rows=50, seed=1))
    assert report.task == "classification" and report.arch == "logistic"
    assert [r.segment for r in report.results] == ["JFK", "ORD"]
    assert [(s.segment, s.n_rows, s.reason) for s in report.skipped] == [("tiny", 10, "10 rows < min_rows 50")]
    ord_result = report.results[1]
    assert ord_result.n_rows == 200
    assert ord_result.weights.feature_names == ("f0", "f1", "f2")
    assert ord_result.weights.classes == (0, 1)
    m = ord_result.metrics
    assert m["n_train"] == 160 and m["n_holdout"] == 40
    assert 0.7 < m["roc_auc"] <= 1.0 and 0 < m["log_loss"] < 0.7 and 0.5 < m["accuracy"] <= 1.0
    stats = ord_result.stats
    assert stats["n_rows"] == 160 and list(stats["features"]) == ["f0", "f1", "f2"]
    f0 = stats["features"]["f0"]
    assert 0 < f0["missing_rate"] < 0.15 and sum(f0["hist"]) == pytest.approx(1.0)
    assert len(f0["edges"]) == 11


def test_metrics_are_those_of_the_served_model(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 150})
    result = fit_segment(data.X, data.y, TrainConfig(min_rows=10), segment="A", feature_names=data.feature_names)
    model = build(result.weights)
    assert model.accepts_missing
    proba = model.predict(data.X)
    assert proba.shape == (150, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_regression_metrics_and_auto_task(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 300, "B": 300}, regression=True)
    report = train_segments(data, TrainConfig(min_rows=50, seed=0))
    assert report.task == "regression" and report.arch == "linear"
    for result in report.results:
        assert set(result.metrics) >= {"rmse", "mae", "r2"}
        assert result.metrics["r2"] > 0.9 and result.metrics["rmse"] < 0.5
        assert result.weights.classes is None
        assert set(result.stats["target"]) == {"n", "mean", "std", "min", "max"}


def test_single_class_segment_is_skipped_with_reason(rng: np.random.Generator) -> None:
    X = rng.normal(size=(60, 2))
    with pytest.raises(SkipSegment, match=r"only one class \(1\) in 60 rows"):
        fit_segment(X, np.ones(60, dtype=int), TrainConfig(min_rows=10), task="classification")
    data = TrainingData.from_arrays(["a"] * 60 + ["b"] * 60, np.vstack([X, X]),
                                    np.r_[np.ones(60, int), rng.integers(0, 2, 60)], ["p", "q"])
    report = train_segments(data, TrainConfig(min_rows=10))
    assert [r.segment for r in report.results] == ["b"]
    assert report.skipped[0].segment == "a" and "only one class" in report.skipped[0].reason


def test_multiclass_string_labels(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 2))
    y = np.array(["low", "mid", "high"])[np.digitize(X[:, 0] + 0.3 * rng.normal(size=300), [-0.5, 0.5])]
    result = fit_segment(X, y, TrainConfig(min_rows=10), segment="s", feature_names=["a", "b"])
    assert result.weights.classes == ("high", "low", "mid")
    assert result.metrics["roc_auc"] > 0.8
    assert result.stats["target"]["classes"] == ["high", "low", "mid"]


def test_same_seed_same_bytes_whatever_the_other_segments(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 120, "B": 90, "C": 80})
    config = TrainConfig(min_rows=20, seed=7, arch="forest", params={"n_estimators": 5})
    first = train_segments(data, config)
    second = train_segments(data, config)
    assert [r.weights.checksum() for r in first.results] == [r.weights.checksum() for r in second.results]
    assert [r.metrics for r in first.results] == [r.metrics for r in second.results]
    assert [r.stats for r in first.results] == [r.stats for r in second.results]
    # Segment A alone trains to the same bytes as within the whole file.
    rows = data.segments == "A"
    alone = TrainingData.from_arrays(data.segments[rows], data.X[rows], data.y[rows], data.feature_names)
    assert train_segments(alone, config).results[0].weights.checksum() == first.results[0].weights.checksum()
    other_seed = train_segments(data, TrainConfig(min_rows=20, seed=8, arch="forest", params={"n_estimators": 5}))
    assert other_seed.results[0].weights.checksum() != first.results[0].weights.checksum()


def test_progress_is_called_once_per_segment(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 60, "B": 5, "C": 60})
    calls: list[tuple[int, int, str]] = []
    train_segments(data, TrainConfig(min_rows=20), progress=lambda *args: calls.append(args))
    assert calls == [(1, 3, "A"), (2, 3, "B"), (3, 3, "C")]


def test_no_holdout_leaves_metrics_empty(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 60})
    result = train_segments(data, TrainConfig(min_rows=20, test_size=0.0)).results[0]
    assert result.metrics["n_holdout"] == 0 and result.metrics["roc_auc"] is None
    assert result.stats["n_rows"] == 60


def test_feature_missing_in_a_whole_segment_keeps_its_slot(rng: np.random.Generator) -> None:
    data = make_data(rng, {"A": 100})
    X = data.X.copy()
    X[:, 1] = np.nan
    result = fit_segment(X, data.y, TrainConfig(min_rows=10), segment="A", feature_names=data.feature_names)
    assert result.weights.feature_names == data.feature_names
    assert result.stats["features"]["f1"]["missing_rate"] == 1.0
    assert build(result.weights).predict(X).shape == (100, 2)
