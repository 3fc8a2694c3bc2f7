"""Every --arch trains, exports and serves for its tasks, with missing values in the input."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.models import build
from trainers.segment import ARCHS, TrainConfig, fit_segment, make_estimator, prepare_target

SMALL = {"forest": {"n_estimators": 5}, "extra-trees": {"n_estimators": 5}, "gbt": {"n_estimators": 10},
         "hgb": {"max_iter": 10}, "mlp": {"max_iter": 300}}
CASES = [(arch, task) for arch in ARCHS for task in ("classification", "regression")
         if (arch, task) not in {("logistic", "regression"), ("linear", "classification")}]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("arch", "task"), CASES)
def test_arch_trains_to_a_servable_model_matching_sklearn(arch: str, task: str, rng: np.random.Generator) -> None:
    X = rng.normal(size=(240, 4))
    signal = X[:, 0] - 0.5 * X[:, 1]
    y = (signal + 0.3 * rng.normal(size=240) > 0).astype(int) if task == "classification" else signal
    X[rng.random(X.shape) < 0.1] = np.nan
    names = ["a", "b", "c", "d"]
    config = TrainConfig(arch=arch, task=task, min_rows=20, seed=4, params=SMALL.get(arch, {}))
    result = fit_segment(X, prepare_target(y, task), config, segment="S", feature_names=names)
    assert result.metrics["arch"] == arch and result.metrics["task"] == task
    model = build(result.weights)
    assert model.feature_names == tuple(names) and model.accepts_missing
    assert model.is_classifier == (task == "classification")
    # The served model reproduces a pipeline refitted the same way, rows with NaN included.
    from trainers.segment import holdout_split, segment_seed

    seed = segment_seed(4, "S")
    train, _ = holdout_split(y, 0.2, seed, stratify=task == "classification")
    reference = make_estimator(arch, task, seed, SMALL.get(arch, {})).fit(X[train], y[train])
    expected = reference.predict_proba(X) if task == "classification" else reference.predict(X)
    # XGBoost sums its trees in float32: agreement to about 1e-6 (LightGBM and scikit-learn: exact)
    np.testing.assert_allclose(model.predict(X), expected, rtol=0, atol=1e-5 if arch == "xgboost" else 1e-9)
    if task == "classification":
        assert result.metrics["roc_auc"] > 0.7
    else:
        assert result.metrics["r2"] > 0.3


def test_convergence_warnings_are_recorded_in_the_metrics(rng: np.random.Generator) -> None:
    X = rng.normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    result = fit_segment(X, y, TrainConfig(arch="mlp", min_rows=10, params={"max_iter": 2}), segment="S")
    assert any(w.startswith("ConvergenceWarning") for w in result.metrics["warnings"])
