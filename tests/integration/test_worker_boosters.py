"""LightGBM and XGBoost versions on the real servers: a LightGBM version swapped for an XGBoost one mid-stream
by a raw CQL update, every event scored exactly once, each prediction equal to its version's offline score."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest
from cassandra.cluster import Session
from support.stream import Collector, WorkerProcess, event, make_topics, produce_sync, workers

from scorer.config import Settings
from scorer.models import build
from scorer.store import CassandraModelStore
from trainers.export import export

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = ["A", "B"]
N_EVENTS = 4_000
NAMES = ["code", "x", "y"]


def features(i: int) -> dict[str, float | None]:
    rng = np.random.default_rng(i)
    code = int(rng.integers(0, 12))
    x, y = rng.normal(size=2).round(4).tolist()
    return {"code": code, "x": None if i % 13 == 0 else x, "y": y}


def training(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 12, 800), rng.normal(size=800), rng.normal(size=800)]).astype(float)
    X[rng.random(800) < 0.05, 1] = np.nan
    y = (np.isin(X[:, 0], [1, 4, 7]) ^ (np.nan_to_num(X[:, 1]) > 0.2)).astype(int)
    return X, y


def test_lightgbm_version_swapped_for_xgboost_by_raw_cql(settings: Settings, cassandra: Session, bootstrap: str,
                                                          new_topic: Callable[..., str]) -> None:
    X, y = training(0)
    light = lgb.LGBMClassifier(n_estimators=60, num_leaves=15, min_data_per_group=5, verbose=-1, n_jobs=1)
    light.fit(X, y, categorical_feature=[0])
    boost = xgb.XGBClassifier(n_estimators=60, max_depth=5, tree_method="hist", enable_categorical=True,
                              feature_types=["c", "q", "q"], max_cat_to_onehot=1, n_jobs=1).fit(X, y)
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(seg, export(light, NAMES), None, None) for seg in SEGMENTS], activate=True)
        v2 = store.publish(MODEL, "A", export(boost, NAMES))
        offline = {1: build(store.load(MODEL, "A", 1)), v2: build(store.load(MODEL, "A", v2))}
    assert v2 == 2

    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="boosters").start()

    def mid_stream(count: int) -> None:
        if count == N_EVENTS // 2:
            cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s "
                              "AND segment = 'A'", (MODEL,))

    with workers(worker):
        worker.wait_ready()
        produce_sync(bootstrap, topics.events, (event(f"e-{i}", SEGMENTS[i % 2], features(i))
                                                for i in range(N_EVENTS)), rate=800, every=500, on_count=mid_stream)
        collector.wait_for(lambda c: len(c.snapshot()) >= N_EVENTS, timeout=120, what=f"{N_EVENTS} outputs")
        time.sleep(1.0)
        assert worker.alive(), worker.tail()
    collector.stop()

    assert collector.snapshot(topics.dlq) == []
    predictions = collector.snapshot(topics.predictions)
    counts: dict[str, int] = defaultdict(int)
    for out in predictions:
        counts[out.value["id"]] += 1
    assert set(counts) == {f"e-{i}" for i in range(N_EVENTS)} and max(counts.values()) == 1  # nothing lost
    a = [o for o in predictions if o.value["segment"] == "A"]
    assert {o.value["version"] for o in a} == {1, 2}
    for partition in {o.partition for o in a}:
        seq = [o.value["version"] for o in sorted(a, key=lambda o: o.offset) if o.partition == partition]
        assert seq == sorted(seq), f"partition {partition} went back to LightGBM after XGBoost"
    for out in predictions:
        i = int(out.value["id"][2:])
        row = np.array([[np.nan if v is None else v for v in features(i).values()]])
        want = offline[out.value["version"]].predict(row)[0, 1]
        assert out.value["prediction"] == pytest.approx(want, abs=1e-12), out.value
    # the XGBoost version agrees with xgboost's own predict to float32 precision
    rows = np.array([[np.nan if v is None else v for v in features(i).values()] for i in range(200)])
    np.testing.assert_allclose(offline[2].predict(rows), boost.predict_proba(rows), rtol=0, atol=1e-6)
