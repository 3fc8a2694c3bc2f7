"""Real weights for store tests (fitted scikit-learn models through trainers.export) and raw-CQL snapshots."""

from __future__ import annotations

import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from cassandra.cluster import Session

from scorer.models import ModelWeights
from trainers import export

# The models conformance cases: one list of example estimators covering every registered architecture.
_CASES_DIR = Path(__file__).resolve().parents[2] / "unit" / "models"
if str(_CASES_DIR) not in sys.path:
    sys.path.insert(0, str(_CASES_DIR))

import model_cases  # noqa: E402

STORE_TABLES = ("active_models", "model_versions", "version_claims", "model_chunks", "model_segments", "activations")


@cache
def weights_for_arch(arch: str) -> ModelWeights:
    """Weights of the first conformance case exporting to ``arch`` (fails loudly if no case covers it)."""
    for case in model_cases.CASES:
        if case.arch == arch:
            return export(model_cases.fit(case))
    raise AssertionError(f"no conformance case in tests/unit/models exports arch {arch!r}")


@cache
def logistic(seed: int = 0, n_features: int = 4) -> ModelWeights:
    """A small fitted LogisticRegression; different seeds give different weights."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, n_features))
    y = (X @ rng.normal(size=n_features) > 0).astype(int)
    return export(LogisticRegression().fit(X, y), feature_names=[f"f{i}" for i in range(n_features)])


@cache
def big_mlp() -> ModelWeights:
    """About 10.6 MB of weights: an MLP with hidden layers (1300, 1000) on 20 features."""
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(64, 20))
    y = X @ rng.normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration does not converge, on purpose
        est = MLPRegressor(hidden_layer_sizes=(1300, 1000), max_iter=1, random_state=0).fit(X, y)
    return export(est)


def snapshot(session: Session, keyspace: str, model: str) -> dict[str, list[Any]]:
    """Every row of every store table for ``model``, for asserting that a refused call wrote nothing."""
    return {table: sorted(map(repr, session.execute(f"SELECT * FROM {keyspace}.{table} WHERE model = %s "
                                                    "ALLOW FILTERING", (model,))))
            for table in STORE_TABLES}
