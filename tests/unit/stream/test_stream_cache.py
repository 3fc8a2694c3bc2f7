"""Pure parts of the model cache and the batch scorer: canary selection, LRU, targets, lookups, grouping.

No store is involved: entries are installed directly (the cache against the real Cassandra store is tested in
tests/integration/test_stream_cache.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache

import numpy as np
import orjson
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline

from scorer.models import ModelWeights
from scorer.stream.batch import Batch, format_outputs
from scorer.stream.cache import (
    LRU,
    ModelCache,
    Serving,
    Target,
    Unservable,
    assemble,
    canary_point,
    in_canary,
    missing_versions,
    prepare,
    target_of,
)
from scorer.stream.events import MISSING_FEATURE, MODEL_ERROR, UNKNOWN_MODEL, UNKNOWN_SEGMENT
from scorer.stream.scoring import BatchScorer
from trainers import export

# ------------------------------------------------------------------------------------------ canary


def test_canary_point_is_stable_and_in_unit_interval() -> None:
    points = [canary_point(f"e-{i}") for i in range(1000)]
    assert all(0.0 <= p < 1.0 for p in points)
    assert points == [canary_point(f"e-{i}") for i in range(1000)]
    # Pinned values: the same ids go to the canary on every machine, run and worker.
    assert round(canary_point("e-0"), 12) == round(canary_point("e-0"), 12)
    assert canary_point("e-1") != canary_point("e-2")


def test_canary_point_pinned() -> None:
    import hashlib

    expected = int.from_bytes(hashlib.blake2b(b"abc", digest_size=8).digest(), "big") / 2**64
    assert canary_point("abc") == expected


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_canary_fraction_is_respected(fraction: float) -> None:
    chosen = sum(in_canary(f"e-{i}", fraction) for i in range(5000))
    assert abs(chosen / 5000 - fraction) < 0.03


def test_canary_edges() -> None:
    assert not any(in_canary(f"x{i}", 0.0) for i in range(200))
    assert all(in_canary(f"x{i}", 1.0) for i in range(200))
    assert in_canary("\ud800 surrogate", 0.999999) in (True, False)  # odd ids do not raise


# ------------------------------------------------------------------------------------------ LRU


def test_lru_evicts_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    assert lru.put("a", 1) == []
    assert lru.put("b", 2) == []
    assert lru.get("a") == 1  # a is now the most recent
    assert lru.put("c", 3) == [("b", 2)]
    assert lru.keys() == ["a", "c"]
    assert lru.peek("a") == 1 and lru.keys() == ["a", "c"]  # peek does not touch recency
    assert lru.put("d", 4) == [("a", 1)]
    assert "c" in lru and "a" not in lru and len(lru) == 2
    with pytest.raises(ValueError):
        LRU(0)


# ------------------------------------------------------------------------------------------ targets


@dataclass
class Row:
    version: int | None
    canary_version: int | None = None
    canary_fraction: float | None = None
    shadow_version: int | None = None


def test_target_of_rows() -> None:
    assert target_of(None) is None
    assert target_of(Row(None, 2, 0.5)) is None
    assert target_of(Row(3)) == Target(3)
    assert target_of(Row(3, 4, 0.2)) == Target(3, 4, 0.2)
    assert target_of(Row(3, 4, None)) == Target(3)  # a canary needs a fraction
    assert target_of(Row(3, 4, 1.0)) == Target(3)  # ... strictly between 0 and 1
    assert target_of(Row(3, 3, 0.5)) == Target(3)  # ... and another version
    assert target_of(Row(3, None, None, 5)) == Target(3, shadow_version=5)
    assert Target(3, 4, 0.2, 4).versions() == (3, 4)
    assert Target(3, None, 0.0, 5).versions() == (3, 5)


# ------------------------------------------------------------------------------------------ models


@cache
def binary_weights(seed: int = 0) -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return export(LogisticRegression().fit(X, y), feature_names=["a", "b", "c"])


@cache
def multiclass_weights() -> ModelWeights:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 2))
    y = np.array(["x", "y", "z"])[np.argmax(np.c_[X, -X.sum(axis=1)], axis=1)]
    return export(LogisticRegression().fit(X, y), feature_names=["a", "b"])


@cache
def regression_weights(imputing: bool = False) -> ModelWeights:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 2))
    y = X @ np.array([2.0, -1.0]) + 0.5
    est = make_pipeline(SimpleImputer(), LinearRegression()) if imputing else LinearRegression()
    return export(est.fit(X, y), feature_names=["a", "b"])


def test_prepare_builds_warms_and_describes() -> None:
    binary = prepare("m", "s", 1, binary_weights())
    assert (binary.kind, binary.labels, binary.feature_names) == ("binary", (0, 1), ("a", "b", "c"))
    assert binary.what == "m/s v1" and not binary.accepts_missing
    multi = prepare("m", "s", 2, multiclass_weights())
    assert (multi.kind, multi.labels) == ("multiclass", ("x", "y", "z"))
    reg = prepare("m", "s", 3, regression_weights(imputing=True))
    assert (reg.kind, reg.labels, reg.accepts_missing) == ("regression", None, True)


def test_missing_versions_and_assemble() -> None:
    v1, v2 = prepare("m", "s", 1, binary_weights(0)), prepare("m", "s", 2, binary_weights(1))
    serving = assemble("m", "s", Target(1), {1: v1})
    assert serving.primary is v1 and serving.canary is None and serving.canary_fraction == 0.0
    assert missing_versions(serving, Target(1, 2, 0.3)) == [2]
    assert missing_versions(serving, Target(1)) == []
    assert missing_versions(None, Target(1, 2, 0.3, 7)) == [1, 2, 7]
    with_canary = assemble("m", "s", Target(1, 2, 0.3), {1: v1, 2: v2})
    assert with_canary.canary is v2 and with_canary.canary_fraction == 0.3
    assert with_canary.loaded() == {1: v1, 2: v2}


# ------------------------------------------------------------------------------------------ lookups


def cache_with(entries: dict[tuple[str, str], Serving], rows: dict[str, dict[str, Row]],
               models: tuple[str, ...] | None = None, fallback: str | None = "__default__",
               max_models: int = 100) -> ModelCache:
    """A cache whose state is set directly (no store calls happen in these tests)."""
    c = ModelCache(None, models=models, fallback_segment=fallback, max_models=max_models)
    c._rows.update(rows)
    for model in rows:
        c._served[model] = None
    for key, serving in entries.items():
        c._install(key, serving)
    return c


def test_lookup_resolves_own_segment_fallback_and_unknowns() -> None:
    v1 = prepare("m", "A", 1, binary_weights())
    default = prepare("m", "__default__", 4, binary_weights(1))
    rows = {"m": {"A": Row(1), "__default__": Row(4), "B": Row(None)}}
    c = cache_with({("m", "A"): assemble("m", "A", Target(1), {1: v1}),
                    ("m", "__default__"): assemble("m", "__default__", Target(4), {4: default})}, rows)
    assert c.lookup("m", "A").primary is v1
    assert c.lookup("m", "B").primary is default  # a row without a version falls back
    assert c.lookup("m", "ZZZ").primary is default
    assert c.lookup("other", "A") is None  # not read yet: must be loaded first

    no_fallback = cache_with({("m", "A"): assemble("m", "A", Target(1), {1: v1})}, {"m": {"A": Row(1)}},
                             fallback=None)
    answer = no_fallback.lookup("m", "ZZZ")
    assert isinstance(answer, Unservable) and answer.kind == UNKNOWN_SEGMENT
    assert answer.reason == "no model for m/ZZZ (no active version, no fallback segment)"

    served_only = cache_with({}, {"m": {"A": Row(1)}}, models=("m",))
    answer = served_only.lookup("x", "A")
    assert isinstance(answer, Unservable) and answer.kind == UNKNOWN_MODEL
    assert answer.reason == "unknown model 'x': this worker serves m"


def test_installing_beyond_max_models_evicts_and_counts() -> None:
    rows = {"m": {s: Row(1) for s in "ABC"}}
    c = cache_with({}, rows, max_models=2)
    for seg in "ABC":
        c._install(("m", seg), assemble("m", seg, Target(1), {1: prepare("m", seg, 1, binary_weights())}))
    assert c._entries.keys() == [("m", "B"), ("m", "C")]
    assert c.metrics.evictions._value.get() == 1
    assert c.metrics.segments_loaded._value.get() == 2
    assert c.lookup("m", "A") is None  # evicted: reloaded lazily by the next batch that needs it


# ------------------------------------------------------------------------------------------ scoring


@dataclass
class Msg:
    key: bytes | None
    value: bytes | None
    topic: str = "events"
    partition: int = 0
    offset: int = 0


def event(i: int, segment: str, **features: object) -> bytes:
    return orjson.dumps({"id": f"e-{i}", "model": "m", "segment": segment, "features": features})


def run_batch(scorer: BatchScorer, records: list) -> object:
    """decode -> resolve -> score, as the worker runs a batch."""
    batch = Batch(records)
    scorer.decode(batch)
    asyncio.run(scorer.resolve(batch))
    return scorer.score(batch)


def score(c: ModelCache, values: list[bytes], hooks: tuple = ()) -> tuple[list[dict], list[dict], BatchScorer, object]:
    records = [Msg(None, v, offset=i) for i, v in enumerate(values)]
    scorer = BatchScorer(c, hooks=hooks)
    result = run_batch(scorer, records)
    preds = [orjson.loads(v) for _, v, _ in result.predictions]
    dead = [orjson.loads(v) for _, v, _ in result.dead_letters]
    return preds, dead, scorer, result


def test_batch_groups_by_segment_and_version_with_canary_split() -> None:
    v1, v2 = prepare("m", "A", 1, binary_weights(0)), prepare("m", "A", 2, binary_weights(1))
    b1 = prepare("m", "B", 7, multiclass_weights())
    rows = {"m": {"A": Row(1, 2, 0.5), "B": Row(7)}}
    c = cache_with({("m", "A"): assemble("m", "A", Target(1, 2, 0.5), {1: v1, 2: v2}),
                    ("m", "B"): assemble("m", "B", Target(7), {7: b1})}, rows, fallback=None)
    calls: list[tuple[str, int, int]] = []
    values = [event(i, "A", a=0.1 * i, b=-0.2, c=1.0) for i in range(40)]
    values += [event(100 + i, "B", a=i / 10, b=1.0) for i in range(5)]
    values += [event(200, "Z", a=1.0), b"garbage", event(201, "A", a=1.0, b=None, c=2.0)]
    preds, dead, scorer, result = score(c, values, hooks=(
        lambda g: calls.append((g.segment, g.scored_by.version, len(g.events))),))

    by_id = {p["id"]: p for p in preds}
    assert len(by_id) == 45
    for i in range(40):
        p = by_id[f"e-{i}"]
        expect_canary = in_canary(f"e-{i}", 0.5)
        assert p["canary"] is expect_canary
        assert p["version"] == (2 if expect_canary else 1)
        model = v2 if expect_canary else v1
        proba = model.predictor.predict(np.array([[0.1 * i, -0.2, 1.0]]))[0]
        assert p["prediction"] == pytest.approx(float(proba[1]))
        assert p["label"] == int(np.argmax(proba))
        assert p["segment"] == "A" and p["model"] == "m" and p["scored_at"].endswith("Z")
    multi = by_id["e-100"]
    assert multi["version"] == 7 and multi["canary"] is False
    assert isinstance(multi["prediction"], list) and len(multi["prediction"]) == 3
    assert multi["label"] in ("x", "y", "z")
    assert list(multi) == ["id", "model", "segment", "version", "canary", "prediction", "label", "scored_at"]

    reasons = {d["raw"][:40]: d["error"] for d in dead}
    assert len(dead) == 3
    assert any(e.startswith("not JSON") for e in reasons.values())
    assert "no model for m/Z (no active version, no fallback segment)" in reasons.values()
    assert "missing feature 'b' for m/A v" in " ".join(reasons.values())
    assert all(set(d) == {"error", "raw", "topic", "partition", "offset"} for d in dead)
    assert result.reasons == {"not_json": 1, UNKNOWN_SEGMENT: 1, MISSING_FEATURE: 1}
    # one predict per (segment, version): A v1, A v2, B v7
    assert sorted((s, v) for s, v, _ in calls) == [("A", 1), ("A", 2), ("B", 7)]
    assert sum(n for _, _, n in calls) == 45  # 40 + 5: e-201 was dropped for its missing feature


def test_regression_with_imputer_scores_missing_values() -> None:
    reg = prepare("m", "R", 3, regression_weights(imputing=True))
    c = cache_with({("m", "R"): assemble("m", "R", Target(3), {3: reg})}, {"m": {"R": Row(3)}})
    preds, dead, _, _ = score(c, [event(1, "R", a=1.0, b=2.0), event(2, "R", a=None), event(3, "R")])
    assert dead == []
    assert [p["label"] for p in preds] == [None, None, None]
    assert preds[0]["prediction"] == pytest.approx(float(reg.predictor.predict(np.array([[1.0, 2.0]]))[0]))
    assert all(isinstance(p["prediction"], float) for p in preds)


class Exploding:
    """A predictor that raises, to check that the batch is retried and, at the end, dead-lettered."""

    feature_names = ("a",)
    accepts_missing = True

    def predict(self, X: np.ndarray) -> np.ndarray:
        raise FloatingPointError("boom")


def test_a_failing_model_is_reported_then_dead_lettered_on_the_last_attempt() -> None:
    import dataclasses

    good = prepare("m", "R", 3, regression_weights(imputing=True))
    bad = dataclasses.replace(good, predictor=Exploding(), feature_names=("a",))
    c = cache_with({("m", "R"): assemble("m", "R", Target(3), {3: bad})}, {"m": {"R": Row(3)}})
    values = [event(1, "R", a=1.0), event(2, "R", a=2.0)]
    records = [Msg(None, v) for v in values]
    scorer = BatchScorer(c)
    batch = Batch(records)
    scorer.decode(batch)
    asyncio.run(scorer.resolve(batch))
    first = scorer.score(batch)
    assert first.predictions == [] and first.dead_letters == []
    assert len(first.failures) == 1 and first.failures[0].indices == [0, 1]
    last = scorer.score(batch, final_attempt=True)
    assert last.failures == [] and len(last.dead_letters) == 2
    assert orjson.loads(last.dead_letters[0][1])["error"] == (
        "model m/R v3 failed to score: FloatingPointError: boom")
    assert last.reasons == {MODEL_ERROR: 2}


def test_binary_labels_follow_argmax_including_ties() -> None:
    model = prepare("m", "s", 1, binary_weights())
    values, labels = format_outputs(model, np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]))
    assert values == [0.5, 0.8, 0.1]
    assert labels == [0, 1, 0]  # a tie goes to the first class, as with argmax


def test_events_served_by_the_fallback_are_counted_under_it() -> None:
    default = prepare("m", "__default__", 4, binary_weights(1))
    c = cache_with({("m", "__default__"): assemble("m", "__default__", Target(4), {4: default})},
                   {"m": {"__default__": Row(4)}})
    preds, dead, scorer, result = score(c, [event(i, f"random-{i}", a=1.0, b=2.0, c=3.0) for i in range(3)])
    assert dead == [] and [p["segment"] for p in preds] == ["random-0", "random-1", "random-2"]
    assert result.counts == {("m", "__default__", "4", "scored"): 3}  # no metric series per event segment
    scorer.record_metrics(result)
    assert c.metrics.events.labels("m", "__default__", "4", "scored")._value.get() == 3
