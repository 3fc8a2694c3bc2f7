"""The bulk prediction encoder and the fast lane write exactly the bytes the per-event path writes."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression

import scorer.stream.scoring as scoring
from scorer.stream.batch import Batch, PredictionEncoder, Scored, format_outputs, prediction_values
from scorer.stream.cache import ModelCache, Target, assemble, prepare
from scorer.stream.events import Event
from scorer.stream.scoring import BatchScorer
from trainers import export

NAMES = ["a", "b", "c"]
STAMP = "2026-12-04T09:00:00.000Z"


def fitted(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 3))
    z = X @ rng.normal(size=3)
    if kind == "linear":
        return export(LinearRegression().fit(X, z + seed), feature_names=NAMES)
    y = {"int": (z > 0).astype(int), "bool": z > 0, "str": np.where(z > 0, "yes", 'n"o,')}[kind]
    return export(LogisticRegression().fit(X, y), feature_names=NAMES)


def per_event(loaded, segment, events, output, served_by=None) -> list[bytes]:
    values, labels = format_outputs(loaded, output)
    head = Scored(loaded.model, segment, loaded.version, False, STAMP, served_by=served_by)
    return prediction_values(head, events, values, labels)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30),
       st.sampled_from(["int", "bool", "str", "linear"]), st.integers(0, 3))
def test_encode_rows_matches_one_dumps_per_message(ids: list[str], kind: str, seed: int) -> None:
    loaded = prepare("m", "S,1\"", 3, fitted(kind, seed))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(ids), 3)) * 10
    output = loaded.predictor.predict(X)
    if kind == "linear" and len(ids) > 1:
        output[0] = np.nan  # written as null either way
    events = [Event(event_id, "m", "S,1\"", {}, i) for i, event_id in enumerate(ids)]
    encoder = PredictionEncoder()
    head = encoder.head("m", "S,1\"", 3, False)
    got = encoder.encode([(head, encoder.tail(STAMP, None), loaded, events, output)])
    assert got == per_event(loaded, "S,1\"", events, output)
    fallback = encoder.encode([(head, encoder.tail(STAMP, "S0"), loaded, events, output)])
    assert fallback == per_event(loaded, "S,1\"", events, output, served_by="S0")


def scorer_over(kinds: list[str]) -> ModelCache:
    cache = ModelCache(None, fallback_segment=None, max_models=100)
    for s, kind in enumerate(kinds):
        seg = f"S{s}"
        cache._rows.setdefault("m", {})[seg] = None  # type: ignore[assignment]
        cache._install(("m", seg), assemble("m", seg, Target(1), {1: prepare("m", seg, 1, fitted(kind, s))}))
    cache._served["m"] = None
    return cache


@pytest.mark.parametrize("kinds", [["int"] * 6, ["int", "bool", "str"] * 2, ["linear"] * 5, ["int", "linear"] * 3],
                         ids=["same-labels", "mixed-labels", "regression", "two-kernels"])
def test_the_fast_lane_writes_what_the_general_path_writes(kinds: list[str], monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(scoring, "utc_stamp", lambda: STAMP)
    rng = np.random.default_rng(3)
    values = []
    for i in range(300):
        features = dict(zip(NAMES, (rng.normal(size=3) * 5).round(3).tolist(), strict=True))
        event_id = f'e-{i}' if i % 7 else f'e,"{i}\\ é'
        values.append(orjson.dumps({"id": event_id, "model": "m", "segment": f"S{rng.integers(0, len(kinds))}",
                                    "features": features}))
    records = [type("R", (), {"key": None, "value": v, "topic": "t", "partition": 0, "offset": i})()
               for i, v in enumerate(values)]
    lane_calls: list[bool] = []
    real_lane = scoring.score_lane
    outputs = []
    for use_lane in (True, False):
        def lane(*args, use_lane=use_lane, **kwargs):
            out = real_lane(*args, **kwargs) if use_lane else None
            lane_calls.append(out is not None)
            return out

        monkeypatch.setattr(scoring, "score_lane", lane)
        seen: list[tuple] = []

        def hook(group, seen=seen) -> list[tuple[str, bytes | None, bytes]]:
            seen.append((group.model, group.segment, group.scored_by.version, group.canary,
                         [e.id for e in group.events], group.X.tolist(), group.output.tolist()))
            return [("drift", None, group.segment.encode())]

        scorer = BatchScorer(scorer_over(kinds), hooks=[hook])
        batch = Batch(records)
        scorer.decode(batch)
        asyncio.run(scorer.resolve(batch))
        result = scorer.score(batch)
        outputs.append((result.predictions, result.counts, result.dead_letters, result.extra, seen))
    assert lane_calls[0] is (len(set(kinds) - {"bool", "str"}) == 1)  # two kernels: no lane
    assert outputs[0] == outputs[1]
    assert len(outputs[0][0]) == 300 and len(outputs[0][4]) == len(kinds)
