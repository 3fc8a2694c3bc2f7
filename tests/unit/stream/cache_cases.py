"""Small published models the cache's unit tests swap between."""

from __future__ import annotations

from functools import cache

import numpy as np
from sklearn.linear_model import LogisticRegression

from scorer.models import ModelWeights
from trainers import export

M = "rides"


@cache
def weights(seed: int) -> ModelWeights:
    """A small logistic model; different seeds give different coefficients (so versions are told apart)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=80) > 0).astype(int)
    return export(LogisticRegression().fit(X, y), feature_names=["a", "b", "c"])
