"""Categorical inputs end to end on the real servers: ``scorer train --categorical`` publishes per-segment models
over string and integer categories, a worker scores string-valued events from Kafka, a raw CQL update swaps to a
version whose category set differs, unknown categories are dead-lettered naming the feature and the value, and
every prediction equals its version's offline score."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from cassandra.cluster import Session
from support.stream import Collector, WorkerProcess, event, make_topics, produce_sync, run_cli, workers

from scorer.config import Settings
from scorer.models import build
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "cancel"
SEGMENTS = ["ORD", "SFO"]
N_EVENTS = 3_000
CARRIERS_V1 = ["AA", "DL", "UA"]
CARRIERS_V2 = ["AA", "UA", "WN"]
STREAM = ["AA", "DL", "UA", "WN", "ZZ"]


def write_training(path: Path, carriers: list[str], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n = 1_200
    carrier = rng.choice(carriers, n).tolist()
    day = rng.integers(1, 8, n)
    dist = rng.normal(size=n).round(3)
    label = ((np.array(carrier) == "UA") ^ (dist > 0.3) ^ (day > 5)).astype(int)
    pacsv.write_csv(pa.table({"city": rng.choice(SEGMENTS, n), "carrier": carrier, "day": day, "dist": dist,
                              "cancelled": label}), path)
    return path


def features(i: int) -> dict[str, object]:
    rng = np.random.default_rng(i)
    return {"carrier": STREAM[int(rng.integers(0, len(STREAM)))] if i % 17 else None,
            "day": int(rng.integers(1, 8)), "dist": round(float(rng.normal()), 3)}


def test_string_categories_stream_swap_and_dead_letters(settings: Settings, cassandra: Session, bootstrap: str,
                                                        new_topic: Callable[..., str], tmp_path: Path) -> None:
    for carriers, seed, arch in ((CARRIERS_V1, 1, "logistic"), (CARRIERS_V2, 2, "forest")):
        data = write_training(tmp_path / f"train{seed}.csv", carriers, seed)
        done = run_cli(settings, "train", "--data", str(data), "--model", MODEL, "--segment-col", "city",
                       "--target", "cancelled", "--categorical", "carrier,day", "--arch", arch,
                       *(["--activate"] if seed == 1 else []), timeout=180)
        assert done.returncode == 0, done.stderr
    shown = run_cli(settings, "show", MODEL, "ORD", "2")
    assert shown.returncode == 0, shown.stderr
    assert "carrier: 4 levels (AA, UA, WN, (missing)); unknown refused" in shown.stdout, shown.stdout
    with CassandraModelStore(settings) as store:
        offline = {(seg, v): build(store.load(MODEL, seg, v)) for seg in SEGMENTS for v in (1, 2)}

    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="categorical").start()

    def mid_stream(count: int) -> None:
        if count == N_EVENTS // 2:
            cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s "
                              "AND segment = 'ORD'", (MODEL,))

    with workers(worker):
        worker.wait_ready()
        produce_sync(bootstrap, topics.events, (event(f"e-{i}", SEGMENTS[i % 2], features(i), model=MODEL)
                                                for i in range(N_EVENTS)), rate=600, every=500, on_count=mid_stream)
        collector.wait_for(lambda c: len(c.snapshot()) >= N_EVENTS, timeout=120, what=f"{N_EVENTS} outputs")
        time.sleep(1.0)
        assert worker.alive(), worker.tail()
    collector.stop()

    predictions = collector.snapshot(topics.predictions)
    dead = collector.snapshot(topics.dlq)
    seen: dict[str, int] = defaultdict(int)
    for out in predictions:
        seen[out.value["id"]] += 1
    for out in dead:
        seen[orjson.loads(out.value["raw"])["id"]] += 1
    assert set(seen) == {f"e-{i}" for i in range(N_EVENTS)} and max(seen.values()) == 1  # nothing lost

    versions = {o.value["version"] for o in predictions if o.value["segment"] == "ORD"}
    assert versions == {1, 2}
    for out in predictions:
        f = features(int(out.value["id"][2:]))
        model = offline[(out.value["segment"], out.value["version"])]
        known = set(model.categorical.levels()["carrier"])
        assert f["carrier"] is None or f["carrier"] in known
        want = model.predict(np.array([[f["carrier"], f["day"], f["dist"]]], dtype=object))[0, 1]
        assert out.value["prediction"] == pytest.approx(want, abs=1e-12)
    reasons = [out.value["error"] for out in dead]
    assert reasons and all("feature 'carrier' has unknown category" in r for r in reasons), reasons[:3]
    assert any("'ZZ'" in r for r in reasons) and any("'WN'" in r for r in reasons)  # v1 never saw WN
    assert any("'DL'" in r and f"{MODEL}" in r for r in reasons)  # ORD v2 never saw DL
