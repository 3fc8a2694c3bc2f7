"""String-valued events scored by models with categorical inputs: codes, dead letters naming feature and value."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from scorer.models import build
from scorer.stream.batch import Batch
from scorer.stream.cache import ModelCache, Target, assemble, prepare
from scorer.stream.scoring import BatchScorer
from trainers import export

NAMES = ["carrier", "distance"]


def _model(unknown: str):
    rng = np.random.default_rng(0)
    X = np.empty((300, 2), dtype=object)
    X[:, 0] = rng.choice(["AA", "UA", "DL"], 300)
    X[:, 1] = rng.normal(size=300)
    y = ((X[:, 0] == "UA") ^ (X[:, 1] > 0.5)).astype(int)
    ct = ColumnTransformer([("c", OneHotEncoder(handle_unknown=unknown), [0])], remainder="passthrough")
    return export(make_pipeline(ct, LogisticRegression()).fit(X, y), feature_names=NAMES)


def _score(weights, events):
    cache = ModelCache(None, fallback_segment=None, max_models=10)
    cache._rows.setdefault("m", {})["S"] = None  # type: ignore[assignment]
    cache._install(("m", "S"), assemble("m", "S", Target(1), {1: prepare("m", "S", 1, weights)}))
    cache._served["m"] = None
    values = [orjson.dumps({"id": f"e-{i}", "model": "m", "segment": "S", "features": f}) for i, f in
              enumerate(events)]
    records = [type("R", (), {"key": None, "value": v, "topic": "t", "partition": 0, "offset": i})()
               for i, v in enumerate(values)]
    scorer = BatchScorer(cache)
    batch = Batch(records)
    scorer.decode(batch)
    asyncio.run(scorer.resolve(batch))
    return scorer.score(batch)


def test_string_categories_scored_and_bad_ones_dead_lettered_with_reasons() -> None:
    weights = _model("error")
    model = build(weights)
    events = [{"carrier": "UA", "distance": 1.0}, {"carrier": "ZZ", "distance": 0.0},
              {"carrier": 3, "distance": 0.0}, {"carrier": "AA", "distance": "far"},
              {"carrier": "DL", "distance": -1.0, "unused": "text"}, {"carrier": None, "distance": 1.0}]
    result = _score(weights, events)
    reasons = {i: orjson.loads(v)["error"] for _, v, i in result.dead_letters}
    assert "feature 'carrier' has unknown category 'ZZ'" in reasons[1]
    assert "feature 'carrier' takes string categories; got int 3" in reasons[2]
    assert "feature 'distance' takes numbers; got str 'far'" in reasons[3]
    assert "unknown category None" in reasons[5]  # missing, not seen in training: unknown, and the rule is error
    assert result.reasons == {"unknown_category": 2, "category_type": 2}
    got = {orjson.loads(v)["id"]: orjson.loads(v)["prediction"] for _, v, _ in result.predictions}
    assert set(got) == {"e-0", "e-4"}
    want = model.predict(np.array([["UA", 1.0], ["DL", -1.0]], dtype=object))[:, 1]
    assert got["e-0"] == want[0] and got["e-4"] == want[1]


def test_unknown_ignored_when_the_encoder_ignores_and_numeric_models_refuse_strings() -> None:
    result = _score(_model("ignore"), [{"carrier": "ZZ", "distance": 0.0}, {"carrier": None, "distance": 2.0}])
    assert not result.dead_letters and len(result.predictions) == 2
    numeric = export(LogisticRegression().fit(np.random.default_rng(1).normal(size=(40, 2)), [0, 1] * 20),
                     feature_names=NAMES)
    result = _score(numeric, [{"carrier": "UA", "distance": 1.0}, {"carrier": 1.0, "distance": 1.0}])
    assert len(result.predictions) == 1
    (_, value, _), = result.dead_letters
    assert orjson.loads(value)["error"] == "feature 'carrier' for m/S v1 must be a number or null; got string 'UA'"


def test_an_encoder_failure_dead_letters_its_events_and_spares_the_batch(monkeypatch) -> None:
    from scorer.models.categorical import CategoricalInputs

    def broken(self, X, what=None):
        raise RuntimeError("simulated")

    monkeypatch.setattr(CategoricalInputs, "encode_rows", broken)
    result = _score(_model("ignore"), [{"carrier": "UA", "distance": 1.0}])
    (_, value, _), = result.dead_letters
    assert "could not encode the events: RuntimeError: simulated" in orjson.loads(value)["error"]
    assert result.reasons == {"model_error": 1}
