"""Example estimators for the conformance suite (test_model_conformance.py), one list for every architecture.

Each architecture family adds its cases in its own ``<family>_cases.py`` module beside this one, defining
``CASES: list[Case]``; they are collected here automatically, so families never edit each other's lists.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

TASKS = ("binary", "multiclass", "multilabel", "regression", "poisson")


@dataclass(frozen=True)
class Case:
    """One estimator to put through every conformance check."""

    name: str  # test id
    make: Callable[[], Any]  # returns an unfitted estimator or Pipeline
    task: str  # one of TASKS
    arch: str  # the arch export must produce
    missing: bool = False  # NaN inputs are legal (pipeline imputes or estimator handles NaN); tested with NaN
    labels: str = "int"  # "int" or "str" class labels
    n_features: int = 5


def make_data(case: Case, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float64 inputs (with ~15% NaN when the case accepts missing values) and a learnable target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, case.n_features)) * rng.uniform(0.5, 3.0, size=case.n_features)
    signal = X @ rng.normal(size=case.n_features) + 0.5 * rng.normal(size=n)
    if case.task == "binary":
        y: np.ndarray = (signal > np.median(signal)).astype(int)
    elif case.task == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [0.33, 0.66]))
    elif case.task == "multilabel":
        y = np.c_[signal > 0, X[:, 0] > 0, X[:, 1] < 0].astype(int)
    elif case.task == "poisson":
        y = np.exp(signal / (3 * signal.std()))
    else:
        y = signal
    if case.labels == "str" and case.task in ("binary", "multiclass"):
        y = np.array(["no", "maybe", "yes"])[y]
    if case.missing:
        X[rng.random(X.shape) < 0.15] = np.nan
    return X, y


def fit(case: Case, seed: int = 0) -> Any:
    X, y = make_data(case, 240, seed)
    est = case.make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny random problems
        est.fit(X, y)
    return est


def _mlp_c(**kw: Any) -> Callable[[], Any]:
    return lambda: MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=60, random_state=0, **kw)


def _mlp_r(**kw: Any) -> Callable[[], Any]:
    return lambda: MLPRegressor(hidden_layer_sizes=(6,), max_iter=60, random_state=0, **kw)


CASES: list[Case] = [
    Case("linreg", LinearRegression, "regression", "linear"),
    Case("ridge", lambda: Ridge(alpha=2.0), "regression", "linear"),
    Case("lasso", lambda: Lasso(alpha=0.05), "regression", "linear"),
    Case("elasticnet", lambda: ElasticNet(alpha=0.05, l1_ratio=0.3), "regression", "linear"),
    Case("sgdreg", lambda: SGDRegressor(random_state=0), "regression", "linear"),
    Case("logreg-binary", LogisticRegression, "binary", "logistic"),
    Case("logreg-binary-str", LogisticRegression, "binary", "logistic", labels="str"),
    Case("logreg-multi", lambda: LogisticRegression(C=0.5), "multiclass", "logistic"),
    Case("logreg-multi-str", LogisticRegression, "multiclass", "logistic", labels="str"),
    Case("logregcv-multi", lambda: LogisticRegressionCV(Cs=3, cv=3), "multiclass", "logistic"),
    Case("sgd-log-binary", lambda: SGDClassifier(loss="log_loss", random_state=0), "binary", "logistic"),
    Case("sgd-log-multi", lambda: SGDClassifier(loss="log_loss", random_state=0), "multiclass", "logistic"),
    Case(
        "impute-mean-scale-logreg",
        lambda: make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression()),
        "binary",
        "logistic",
        missing=True,
    ),
    Case(
        "impute-median-minmax-ridge",
        lambda: make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler(clip=True), Ridge()),
        "regression",
        "linear",
        missing=True,
    ),
    Case(
        "impute-mostfrequent-logreg-multi",
        lambda: make_pipeline(SimpleImputer(strategy="most_frequent"), LogisticRegression()),
        "multiclass",
        "logistic",
        missing=True,
    ),
    Case(
        "impute-constant-scale-nomean-sgd",
        lambda: make_pipeline(
            SimpleImputer(strategy="constant", fill_value=-1.0),
            StandardScaler(with_mean=False),
            SGDClassifier(loss="log_loss", random_state=0),
        ),
        "multiclass",
        "logistic",
        missing=True,
    ),
    Case(
        "scale-then-impute-linreg",
        lambda: make_pipeline(
            StandardScaler(), MinMaxScaler(feature_range=(-2, 3)), SimpleImputer(), LinearRegression()
        ),
        "regression",
        "linear",
        missing=True,
    ),
    Case("mlp-relu-binary", _mlp_c(activation="relu"), "binary", "mlp"),
    Case("mlp-tanh-multi", _mlp_c(activation="tanh"), "multiclass", "mlp", labels="str"),
    Case("mlp-logistic-multilabel", _mlp_c(activation="logistic"), "multilabel", "mlp"),
    Case("mlp-identity-multi", _mlp_c(activation="identity"), "multiclass", "mlp"),
    Case("mlp-relu-reg", _mlp_r(activation="relu"), "regression", "mlp"),
    Case("mlp-logistic-reg", _mlp_r(activation="logistic"), "regression", "mlp"),
    Case(
        "mlp-tanh-poisson",
        lambda: MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", loss="poisson", max_iter=60, random_state=0),
        "poisson",
        "mlp",
    ),
    Case(
        "impute-scale-mlp",
        lambda: make_pipeline(
            SimpleImputer(), StandardScaler(), MLPClassifier(hidden_layer_sizes=(6,), max_iter=60, random_state=0)
        ),
        "multiclass",
        "mlp",
        missing=True,
    ),
]


def _collect() -> None:
    here = Path(__file__).parent
    for path in sorted(here.glob("*_cases.py")):
        if path.stem != "model_cases":
            CASES.extend(importlib.import_module(path.stem).CASES)
    names = [c.name for c in CASES]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise ValueError(f"duplicate conformance case names: {sorted(dups)}")


_collect()
