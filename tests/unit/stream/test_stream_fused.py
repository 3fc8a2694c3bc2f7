"""Fused kernels: one call scoring rows of many linear/logistic segments gives what each model's predict gives."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from scorer.models import ModelWeights, build
from scorer.models.linear import LogisticModel
from scorer.stream.batch import Batch
from scorer.stream.cache import ModelCache, Target, assemble, prepare
from scorer.stream.scoring import BatchScorer
from trainers import export

NAMES = ["a", "b", "c", "d"]


def logistic(seed: int, proba: str = "binary") -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4))
    y = (X @ rng.normal(size=4) > 0).astype(int)
    weights = export(LogisticRegression().fit(X, y), feature_names=NAMES)
    return dataclasses.replace(weights, metadata={**weights.metadata, "proba": proba})


def linear(seed: int, scaled: bool = False) -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4))
    y = X @ rng.normal(size=4) + seed
    est = make_pipeline(StandardScaler(), LinearRegression()) if scaled else LinearRegression()
    return export(est.fit(X, y), feature_names=NAMES)


@pytest.mark.parametrize("make", [lambda s: logistic(s), lambda s: logistic(s, "binary-softmax"),
                                  lambda s: linear(s)], ids=["logistic", "binary-softmax", "linear"])
def test_predict_fused_matches_each_models_predict(make) -> None:
    models = [build(make(seed)) for seed in range(7)]
    assert len({m.fuse_key() for m in models}) == 1 and models[0].fuse_key() is not None
    rng = np.random.default_rng(42)
    owner = rng.integers(0, len(models), size=500)
    X = rng.normal(size=(500, 4)) * 3
    fused = type(models[0]).predict_fused(models, X, owner)
    for i, model in enumerate(models):
        np.testing.assert_allclose(fused[owner == i], model.predict(X[owner == i]), rtol=1e-12, atol=1e-15)


def test_scalers_fold_and_fuse_but_many_classes_do_not() -> None:
    # a scaler is folded into the weights at build time, so a scaled model fuses with plain ones
    assert build(linear(0, scaled=True)).fuse_key() == build(linear(1)).fuse_key() is not None
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    clipped = make_pipeline(MinMaxScaler(clip=True), LinearRegression()).fit(X, X @ rng.normal(size=4))
    assert build(export(clipped, feature_names=NAMES)).fuse_key() is None  # clipping cannot be folded
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = np.argmax(X[:, :3], axis=1)
    assert build(export(LogisticRegression().fit(X, y), feature_names=NAMES)).fuse_key() is None
    # different widths or proba modes are different kernels
    assert build(logistic(0)).fuse_key() != build(logistic(0, "binary-softmax")).fuse_key()


def test_a_batch_over_many_segments_scores_the_same_fused_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 logistic segments, 5 scaled linear ones (scaler folded), a NaN row and a canary: outputs per event
    equal the serving model's own predict."""
    cache = ModelCache(None, fallback_segment=None, max_models=100)
    served = {}
    for s in range(25):
        seg = f"S{s}"
        weights = logistic(s) if s < 20 else linear(s, scaled=True)
        loaded = {1: prepare("m", seg, 1, weights)}
        target = Target(1)
        if s == 3:
            loaded[2] = prepare("m", seg, 2, logistic(99))
            target = Target(1, 2, 0.5)
        cache._rows.setdefault("m", {})[seg] = None  # type: ignore[assignment]
        cache._install(("m", seg), assemble("m", seg, target, loaded))
        served[seg] = loaded
    cache._served["m"] = None
    rng = np.random.default_rng(5)
    values, expected = [], {}
    for i in range(600):
        seg = f"S{rng.integers(0, 25)}"
        row = rng.normal(size=4).round(3)
        features = dict(zip(NAMES, row.tolist(), strict=True))
        if i == 300:
            features["c"] = None  # missing for a model without an imputer: a dead letter, neighbours unaffected
        values.append(orjson.dumps({"id": f"e-{i}", "model": "m", "segment": seg, "features": features}))
        expected[f"e-{i}"] = (seg, row)
    records = [type("R", (), {"key": None, "value": v, "topic": "t", "partition": 0, "offset": i})()
               for i, v in enumerate(values)]
    calls: list[int] = []
    kernel = LogisticModel.predict_fused.__func__  # type: ignore[attr-defined]

    def spy(cls, models, X, owner):
        calls.append(len(models))
        return kernel(cls, models, X, owner)

    monkeypatch.setattr(LogisticModel, "predict_fused", classmethod(spy))
    scorer = BatchScorer(cache)
    batch = Batch(records)
    scorer.decode(batch)
    asyncio.run(scorer.resolve(batch))
    result = scorer.score(batch)
    assert len(result.dead_letters) == 1 and b"e-300" in records[result.dead_letters[0][2]].value
    assert len(result.predictions) == 599
    assert calls == [21]  # every logistic segment and the canary version in one call; scaled linear ones alone
    for _, value, _ in result.predictions:
        out = orjson.loads(value)
        seg, row = expected[out["id"]]
        model = served[seg][out["version"]].predictor
        want = model.predict(row.reshape(1, -1))[0]
        got = out["prediction"]
        if model.is_classifier:
            assert got == pytest.approx(float(want[1]), rel=1e-12, abs=1e-15)
            assert out["label"] == int(want[1] > want[0])
        else:
            assert got == pytest.approx(float(want), rel=1e-12, abs=1e-12)
