"""Hooks over the fast lane: one ``lane`` call per lane must do exactly what one call per group did.

The same batch is scored twice through the fast lane: once with the shadow and drift hooks as they are (their
``lane`` methods), once with the same hooks behind a wrapper that hides ``lane``, so the scorer calls them per
group. Shadow messages, drift counts and held rows must come out the same.
"""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from scorer.monitor.drift import DriftConfig, DriftReference
from scorer.monitor.hooks import DriftHook, ShadowHook
from scorer.monitor.observer import DriftObserver
from scorer.stream.batch import Batch
from scorer.stream.cache import ModelCache, Target, assemble, prepare
from scorer.stream.scoring import BatchScorer, ScoredGroup
from trainers import export
from trainers.stats import feature_stats

NAMES = ["a", "b", "c"]
SEGMENTS = [f"S{i}" for i in range(12)]
SHADOWED = {"S1", "S4", "S5"}
REFERENCED = {"S0", "S1", "S2", "S7"}


class PerGroup:
    """A hook without a ``lane`` method: the scorer calls it once per group."""

    def __init__(self, hook: object) -> None:
        self.hook = hook

    def __call__(self, group: ScoredGroup) -> object:
        return self.hook(group)  # type: ignore[operator]


class Record:
    def __init__(self, i: int, value: bytes) -> None:
        self.key, self.value, self.offset, self.partition, self.timestamp = f"e-{i}".encode(), value, i, 0, 0


def fitted(seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    return export(LogisticRegression().fit(X, (X[:, seed % 3] > 0).astype(int)), feature_names=NAMES)


def scorer(lane: bool) -> tuple[BatchScorer, DriftObserver, ShadowHook]:
    cache = ModelCache(None, models=("m",), fallback_segment=None)
    rows = {}
    for k, segment in enumerate(SEGMENTS):
        versions = {1: prepare("m", segment, 1, fitted(k))}
        target = Target(1)
        if segment in SHADOWED:
            versions[2] = prepare("m", segment, 2, fitted(k + 50))
            target = Target(1, shadow_version=2)
        cache._install(("m", segment), assemble("m", segment, target, versions))
        rows[segment] = type("Row", (), {"version": 1, "canary_version": None, "canary_fraction": None,
                                         "shadow_version": 2 if segment in SHADOWED else None})()
    cache._rows["m"] = rows
    stats = feature_stats(np.random.default_rng(9).normal(size=(300, 3)), NAMES)
    observer = DriftObserver(lambda *key: (NAMES, stats), None, config=DriftConfig(every_events=10))  # type: ignore[arg-type]
    for segment in REFERENCED:
        observer.monitor.set_reference(("m", segment, 1), DriftReference.from_stats(NAMES, stats))
    shadow = ShadowHook("shadows")
    hooks = [shadow, DriftHook(observer)]
    return BatchScorer(cache, hooks=hooks if lane else [PerGroup(h) for h in hooks]), observer, shadow


def batch() -> Batch:
    rng = np.random.default_rng(3)
    records = []
    for i in range(300):
        features = dict(zip(NAMES, rng.normal(size=3).tolist(), strict=True))
        segment = SEGMENTS[int(rng.integers(len(SEGMENTS)))]
        records.append(Record(i, orjson.dumps({"id": f"e-{i}", "model": "m", "segment": segment,
                                               "features": features})))
    return Batch(records=records)


def run(lane: bool) -> tuple[list[tuple[str, bytes, dict]], DriftObserver, ShadowHook, list]:
    scorer_, observer, shadow = scorer(lane)
    b = batch()
    scorer_.decode(b)
    asyncio.run(scorer_.resolve(b))
    result = scorer_.score(b)
    extra = [(topic, key, {k: v for k, v in orjson.loads(value).items() if k != "scored_at"})
             for topic, key, value in result.extra]
    predictions = [(key, {k: v for k, v in orjson.loads(value).items() if k != "scored_at"})
                   for key, value, _ in result.predictions]
    return extra, observer, shadow, predictions


def test_lane_hooks_match_per_group_hooks() -> None:
    extra_lane, observer_lane, shadow_lane, predictions_lane = run(lane=True)
    extra_group, observer_group, shadow_group, predictions_group = run(lane=False)
    assert predictions_lane == predictions_group and len(predictions_lane) == 300
    # shadow messages: same events, same values, in the same order
    assert extra_lane == extra_group
    assert {topic for topic, _, _ in extra_lane} == {"shadows"}
    assert {m["segment"] for _, _, m in extra_lane} == SHADOWED
    assert shadow_lane.scored == shadow_group.scored == len(extra_lane)
    # drift: the same rows held (or binned) per key, the same unreferenced count and wanted keys
    assert observer_lane.monitor.unreferenced == observer_group.monitor.unreferenced > 0
    assert observer_lane._wanted == observer_group._wanted == {("m", s, 1) for s in SEGMENTS if s not in REFERENCED}
    assert observer_lane._held_rows == observer_group._held_rows
    for key, held in observer_lane._held.items():
        assert np.array_equal(np.concatenate(held), np.concatenate(observer_group._held[key]))
    assert observer_lane._held_total == observer_group._held_total
    # every_events=10: the referenced segments' windows closed; their statistics are of the same rows
    assert windows(observer_lane) == windows(observer_group)
    assert {w[1] for w in windows(observer_lane)} == {f"m/{s}/1".encode() for s in REFERENCED}


def windows(observer: DriftObserver) -> list[tuple[str, bytes, dict]]:
    """The drift windows the observer queued, without their clock readings."""
    out = []
    for topic, key, value in observer._pending:
        value = {k: v for k, v in value.items() if k != "at"}
        value["window"] = {k: v for k, v in value["window"].items() if k == "n"}
        out.append((topic, key, value))
    return out


def test_a_failing_lane_hook_costs_nothing_else() -> None:
    scorer_, observer, _ = scorer(lane=True)

    class Broken:
        def lane(self, lane: object) -> None:
            raise RuntimeError("boom")

        def __call__(self, group: ScoredGroup) -> None:
            raise RuntimeError("boom")

    scorer_.hooks.insert(0, Broken())
    b = batch()
    scorer_.decode(b)
    asyncio.run(scorer_.resolve(b))
    result = scorer_.score(b)
    assert len(result.predictions) == len(b.events) and not result.dead_letters
    assert {m[0] for m in result.extra} == {"shadows"}
    assert observer.monitor.unreferenced > 0
