"""Bytes kept for a model's lifetime are as long as their JSON, not orjson's 4 KB working buffer."""

from __future__ import annotations

import tracemalloc

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from scorer.stream.cache import prepare
from scorer.stream.serving import kept_json
from trainers import export


def _traced_bytes_per(make, n: int = 400) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(n)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == n
    return (after - before) / n


def test_kept_json_is_the_json_and_no_more() -> None:
    for value in (0, "yes", 1.5, True, None, "ünïcode"):
        assert kept_json(value) == orjson.dumps(value)
    assert _traced_bytes_per(lambda i: kept_json(i)) < 200


def test_a_cached_binary_model_keeps_its_label_json_small() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    weights = export(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), feature_names=["a", "b", "c"])
    first = prepare("m", "s", 1, weights)
    assert first.label_json == (b"0", b"1")
    # Everything a LoadedModel holds but its predictor: a few hundred bytes, not the 8 KB two orjson results cost.
    per_model = _traced_bytes_per(lambda i: prepare("m", f"s{i}", 1, first.predictor))
    assert per_model < 3000, f"{per_model:.0f} bytes per LoadedModel"
