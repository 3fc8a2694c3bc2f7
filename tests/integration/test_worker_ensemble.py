"""Ensemble versions on the real servers: published with ``scorer ensemble``, swapped in and out by raw CQL while
a worker scores a stream, protected from ``scorer prune``, and refused while a member is corrupt.

An ensemble's live scores must equal the combination of its members' offline scores, every event must end with
exactly one prediction, and a member failing its checksum must leave the old version serving (logged, counted).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest
from cassandra.cluster import Session
from support.store import logistic
from support.stream import Collector, WorkerProcess, event, make_topics, metric_value, produce_sync, run_cli, workers

from scorer.config import Settings
from scorer.ensemble import load_model
from scorer.models import build
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = ["A", "B", "C"]
N_EVENTS = 6_000


def publish_members(settings: Settings) -> None:
    """v1 live for A, B, C and __global__; v2 published (not live) for B."""
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(seg, logistic(i, 4), None, None)
                                   for i, seg in enumerate([*SEGMENTS, "__global__"])], activate=True)
        store.publish(MODEL, "B", logistic(7, 4))


def features(i: int) -> dict[str, float]:
    rng = np.random.default_rng(i)
    return {f"f{j}": float(v) for j, v in enumerate(rng.normal(size=4).round(4))}


def test_swap_a_segment_to_an_ensemble_and_back_mid_stream(settings: Settings, cassandra: Session, bootstrap: str,
                                                           new_topic: Callable[..., str]) -> None:
    publish_members(settings)
    done = run_cli(settings, "ensemble", MODEL, "A", "--member", "A:1", "--member", "B:2", "--member",
                   f"{MODEL}/__global__:1", "--weights", "1,2,1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"published {MODEL}/A version 2"
    shown = run_cli(settings, "show", MODEL, "A", "2")
    assert shown.returncode == 0, shown.stderr
    assert f"{MODEL}/B version 2" in shown.stdout and "weight 2" in shown.stdout and "mean" in shown.stdout

    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="ensemble").start()
    swaps: list[tuple[int, float]] = []

    def mid_stream(count: int) -> None:
        if count in (2_000, 4_000):
            version = 2 if count == 2_000 else 1
            cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = %s WHERE model = %s "
                              "AND segment = 'A'", (version, MODEL))
            swaps.append((version, time.time()))

    with workers(worker):
        worker.wait_ready()
        produce_sync(bootstrap, topics.events, (event(f"e-{i}", SEGMENTS[i % 3], features(i))
                                                for i in range(N_EVENTS)),
                     rate=1_000, every=1_000, on_count=mid_stream)
        collector.wait_for(lambda c: len(c.snapshot()) >= N_EVENTS, timeout=120, what=f"{N_EVENTS} outputs")
        time.sleep(1.5)
        metrics = worker.metrics()
        assert worker.alive(), worker.tail()
    collector.stop()

    predictions = collector.snapshot(topics.predictions)
    assert collector.snapshot(topics.dlq) == []
    counts: dict[str, int] = defaultdict(int)
    for out in predictions:
        counts[out.value["id"]] += 1
    assert set(counts) == {f"e-{i}" for i in range(N_EVENTS)} and max(counts.values()) == 1

    a = [o for o in predictions if o.value["segment"] == "A"]
    assert {o.value["version"] for o in a} == {1, 2}
    for partition in {o.partition for o in a}:
        seq = [o.value["version"] for o in sorted(a, key=lambda o: o.offset) if o.partition == partition]
        changes = [v for i, v in enumerate(seq) if i == 0 or v != seq[i - 1]]
        assert changes in ([1, 2, 1], [1, 2], [2, 1], [2], [1]), f"partition {partition}: {changes}"
    assert {o.value["version"] for o in predictions if o.value["segment"] != "A"} == {1}

    # Live ensemble scores equal the combination of the members' offline scores.
    with CassandraModelStore(settings) as store:
        ensemble = load_model(store, MODEL, "A", 2)
        members = [build(store.load(MODEL, s, v)) for s, v in (("A", 1), ("B", 2), ("__global__", 1))]
    on_ensemble = [o for o in a if o.value["version"] == 2]
    X = np.array([list(features(int(o.value["id"][2:])).values()) for o in on_ensemble])
    live = np.array([o.value["prediction"] for o in on_ensemble])
    offline = np.average([m.predict(X)[:, 1] for m in members], axis=0, weights=[1, 2, 1])
    np.testing.assert_allclose(live, offline, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ensemble.predict(X)[:, 1], offline, rtol=0, atol=1e-12)
    assert metric_value(metrics, "scorer_events_total", model=MODEL, segment="A", version="2", outcome="scored") \
        == len(on_ensemble)
    assert metric_value(metrics, "scorer_swaps_total", model=MODEL, result="ok") == 2


def test_cli_refusals_pointer_moves_and_prune_refusal(settings: Settings, cassandra: Session) -> None:
    publish_members(settings)
    with CassandraModelStore(settings) as store:
        store.publish(MODEL, "B", logistic(8, 4))  # B v3
        store.publish(MODEL, "X", logistic(9, 3))  # other features
    before = cassandra.execute(f"SELECT count(*) FROM {settings.keyspace}.model_versions").one()[0]
    for args, text in [
        (["--member", "A:1", "--member", "X:1"], "members have different feature lists"),
        (["--member", "A:1", "--member", "B:9"], f"member {MODEL}/B version 9 does not exist"),
        (["--member", "A:1", "--member", "B:2", "--weights", "1,2,3"], "3 weights for 2 members"),
        (["--member", "A:1", "--member", "B"], "must be [MODEL/]SEGMENT:VERSION"),
    ]:
        done = run_cli(settings, "ensemble", MODEL, "A", *args)
        assert done.returncode == 1 and done.stderr.strip().splitlines() == [f"error: {done.stderr.strip()[7:]}"]
        assert text in done.stderr, done.stderr
    assert cassandra.execute(f"SELECT count(*) FROM {settings.keyspace}.model_versions").one()[0] == before

    done = run_cli(settings, "ensemble", MODEL, "A", "--member", "A:1", "--member", "B:2", "--combine",
                   "soft-vote", "--activate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"published {MODEL}/A version 2"
    with CassandraModelStore(settings) as store:
        assert store.active(MODEL)["A"].version == 2
        store.activate(MODEL, "B", 3)  # a member's own pointer moves: the ensemble keeps B v2
        store.publish(MODEL, "B", logistic(10, 4))  # B v4: neither live nor referenced
        store.publish(MODEL, "B", logistic(11, 4))  # B v5: the newest, kept
        info = store.version_info(MODEL, "A", 2)
        assert [m["version"] for m in info.metadata["members"]] == [1, 2]
    pruned = run_cli(settings, "prune", MODEL, "--keep", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert f"B: kept 2, referenced by live ensemble {MODEL}/A version 2" in pruned.stdout
    with CassandraModelStore(settings) as store:
        assert store.version_info(MODEL, "B", 2) is not None  # referenced: kept
        assert store.version_info(MODEL, "B", 4) is None  # neither live nor referenced: pruned
        store.rollback(MODEL, "A")  # the ensemble is no longer live ...
        store.shadow(MODEL, "A", 2)  # ... but a shadow is live too
        assert store.prune(MODEL, "B", keep=1) == []
        store.shadow(MODEL, "A", None)
        assert store.prune(MODEL, "B", keep=1) == [("B", 2)]


def test_a_corrupt_member_keeps_the_old_version_serving(settings: Settings, cassandra: Session, bootstrap: str,
                                                        new_topic: Callable[..., str]) -> None:
    ks = settings.keyspace
    publish_members(settings)
    with CassandraModelStore(settings) as store:
        from scorer.ensemble import compose

        ensemble = compose(store, MODEL, "A", [(MODEL, "A", 1), (MODEL, "B", 2)])
    row = cassandra.execute(f"SELECT chunk, data FROM {ks}.model_chunks WHERE model = %s AND segment = 'B' "
                            "AND version = 2", (MODEL,)).one()
    original = bytes(row.data)
    flipped = original[:100] + bytes([original[100] ^ 0xFF]) + original[101:]

    def set_chunk(data: bytes) -> None:
        cassandra.execute(f"UPDATE {ks}.model_chunks SET data = %s WHERE model = %s AND segment = 'B' AND version = 2 "
                          "AND chunk = %s", (data, MODEL, row.chunk))

    set_chunk(flipped)
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="ensemble-corrupt").start()
    with workers(worker):
        worker.wait_ready()
        cassandra.execute(f"UPDATE {ks}.active_models SET version = %s WHERE model = %s AND segment = 'A'",
                          (ensemble, MODEL))
        produce_sync(bootstrap, topics.events, (event(f"e-{i}", "A", features(i)) for i in range(300)), rate=200)
        time.sleep(2.5)
        state = worker.models()["models"][MODEL]["A"]
        metrics = worker.metrics()
        set_chunk(original)  # repaired in place: the next poll's retry loads the ensemble
        deadline = time.monotonic() + 15
        while worker.version_of(MODEL, "A") != ensemble and time.monotonic() < deadline:
            time.sleep(0.3)
        assert worker.version_of(MODEL, "A") == ensemble, worker.tail()
        collector.wait_for(lambda c: len(c.snapshot()) >= 300, timeout=60, what="300 outputs")
        log_text = worker.log_path.read_text(errors="replace")
    collector.stop()
    assert state["version"] == 1 and state["pending"]["version"] == ensemble
    error = state["errors"][str(ensemble)]
    assert error.startswith("ChecksumMismatch") and f"member {MODEL}/B version 2" in error, error
    assert metric_value(metrics, "scorer_swap_failures_total", model=MODEL, error="ChecksumMismatch") >= 1
    assert {o.value["version"] for o in collector.snapshot(topics.predictions)} == {1}
    assert collector.snapshot(topics.dlq) == []
    assert sum(f"cannot serve {MODEL}/A v{ensemble}" in line for line in log_text.splitlines()) == 1
