"""A worker subprocess scoring 20,000 events over 50 segments while two segments are swapped mid-stream.

One swap is a raw CQL UPDATE of active_models (seen by the poll), the other ``scorer activate`` (which also
publishes a model-changes notice). Every event must end with exactly one output, each segment's version must
change once and never go back, and the raw swap must be served within poll interval + 1 s.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from cassandra.cluster import Session
from support.store import logistic
from support.stream import (
    Collector,
    WorkerProcess,
    event,
    make_topics,
    metric_value,
    produce_sync,
    run_cli,
    workers,
)

from scorer.config import Settings
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = [f"S{i:02d}" for i in range(50)]
N_EVENTS = 20_000
POLL = 1.0


def publish_two_versions(settings: Settings, segments: list[str]) -> None:
    """v1 (live) and v2 (published, not live) for every segment."""
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(seg, logistic(0, 4), None, None) for seg in segments], activate=True)
        store.publish_many(MODEL, [(seg, logistic(1, 4), None, None) for seg in segments])


def stream_of(n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).round(4)
    return [event(f"e-{i}", SEGMENTS[i % len(SEGMENTS)], {f"f{j}": float(X[i, j]) for j in range(4)})
            for i in range(n)]


def test_twenty_thousand_events_with_two_swaps_mid_stream(settings: Settings, cassandra: Session, bootstrap: str,
                                                          new_topic: Callable[..., str]) -> None:
    publish_two_versions(settings, SEGMENTS)
    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics).start()
    raw_segment, cli_segment = "S07", "S13"
    swaps: dict[str, float] = {}

    def mid_stream(count: int) -> None:
        if count == 6_000:
            cassandra.execute(
                f"UPDATE {settings.keyspace}.active_models SET version = 2 WHERE model = %s AND segment = %s",
                (MODEL, raw_segment))
            swaps[raw_segment] = time.time()
        elif count == 12_000:
            done = run_cli(settings, "activate", MODEL, cli_segment, "2", "--reason", "test swap",
                           changes=topics.changes)
            assert done.returncode == 0, done.stderr
            swaps[cli_segment] = time.time()  # the pointer changed while the command ran; count from its end

    with workers(worker):
        state = worker.wait_ready()
        assert state["segments_loaded"] == 50, state  # preloaded at start, before any event
        produce_sync(bootstrap, topics.events, stream_of(N_EVENTS), rate=2_000, every=2_000, on_count=mid_stream)
        collector.wait_for(lambda c: len(c.snapshot()) >= N_EVENTS, timeout=120, what=f"{N_EVENTS} outputs")
        time.sleep(1.5)  # anything extra (a duplicate) would show up now
        metrics = worker.metrics()
        assert worker.alive(), worker.tail()
    collector.stop()

    predictions = collector.snapshot(topics.predictions)
    dead = collector.snapshot(topics.dlq)
    assert dead == [], f"valid events were dead-lettered: {[d.value['error'] for d in dead[:5]]}"
    counts: dict[str, int] = defaultdict(int)
    for out in predictions:
        counts[out.value["id"]] += 1
    assert set(counts) == {f"e-{i}" for i in range(N_EVENTS)}
    assert max(counts.values()) == 1, "an event was scored twice without any crash"
    for out in predictions:
        assert out.key == out.value["id"].encode()
        assert out.value["model"] == MODEL and out.value["canary"] is False
        assert 0.0 <= out.value["prediction"] <= 1.0 and out.value["label"] in (0, 1)

    by_segment: dict[str, list] = defaultdict(list)
    for out in predictions:
        by_segment[out.value["segment"]].append(out)
    for segment, outs in by_segment.items():
        versions = {o.value["version"] for o in outs}
        if segment not in swaps:
            assert versions == {1}, f"{segment} was never swapped but served {versions}"
            continue
        assert versions == {1, 2}, f"{segment} should have moved from v1 to v2 mid-stream; served {versions}"
        # Changes once, never goes back: per output partition (processing order) v1...v1 v2...v2, and every v1
        # was scored no later than the first v2.
        for partition in {o.partition for o in outs}:
            seq = [o.value["version"] for o in sorted(outs, key=lambda o: o.offset) if o.partition == partition]
            assert seq == sorted(seq), f"{segment} went back to v1 on partition {partition}: {seq}"
        last_v1 = max(o.value["scored_at"] for o in outs if o.value["version"] == 1)
        first_v2 = min(o.value["scored_at"] for o in outs if o.value["version"] == 2)
        assert last_v1 <= first_v2, f"{segment}: v1 scored at {last_v1} after v2 at {first_v2}"
        first_v2_received = min(o.received for o in outs if o.value["version"] == 2)
        delay = first_v2_received - swaps[segment]
        assert delay <= POLL + 1.0, f"{segment} served v2 {delay:.2f} s after the swap (limit {POLL + 1.0} s)"

    assert metric_value(metrics, "scorer_events_total", model=MODEL, segment=raw_segment, version="2",
                        outcome="scored") > 0
    assert metric_value(metrics, "scorer_events_total", outcome="scored") == N_EVENTS
    assert metric_value(metrics, "scorer_swaps_total", model=MODEL, result="ok") == 2
    assert metric_value(metrics, "scorer_e2e_latency_seconds_count") == N_EVENTS
    assert metric_value(metrics, "scorer_models_loaded") == 50


def test_exactly_once_a_swap_is_committed_at_once_not_at_the_commit_interval(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str]) -> None:
    """Commits 60 s apart on a stream that never leaves the reader idle (200 events/s, a fetch waits up to 1 s
    for data, so no empty fetch commits early either): nothing is visible until a model swapped in by
    ``scorer activate`` scores, and then at once (the reader commits as soon as a batch scored by it is in its
    transaction); ``/models`` says where the swap's time went."""
    import threading

    segments = SEGMENTS[:4]
    publish_two_versions(settings, segments)
    stop = threading.Event()

    def endless() -> Iterator[tuple[bytes, bytes]]:
        i = 0
        while not stop.is_set():
            yield event(f"e-{i}", segments[i % 4], {"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4})
            i += 1

    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, extra_args=["--guarantee", "exactly-once", "--commit-interval", "60",
                                                         "--batch-window-ms", "1000"])
    feed = threading.Thread(target=produce_sync, args=(bootstrap, topics.events, endless()), kwargs={"rate": 200},
                            daemon=True)
    with workers(worker.start()):
        worker.wait_ready()
        feed.start()
        try:
            time.sleep(4.0)
            assert collector.snapshot() == [], "committed before the interval without any swap"
            done = run_cli(settings, "activate", MODEL, "S01", "2", "--reason", "test swap", changes=topics.changes)
            assert done.returncode == 0, done.stderr
            swapped = time.time()
            collector.wait_for(lambda c: any(o.value["version"] == 2 for o in c.snapshot()), timeout=20,
                               what="an output of the new version (commit interval 60 s)")
        finally:
            stop.set()
            feed.join(10)
        new = [o for o in collector.snapshot() if o.value["version"] == 2]
        assert {o.value["segment"] for o in new} == {"S01"}
        assert new[0].received - swapped < 20
        (trace,) = [t for t in worker.models()["recent_swaps"] if t["segment"] == "S01"]
        assert trace["version"] == 2 and trace["outcome"] == "installed"
        assert trace["trigger"] in ("notice", "poll")
        assert trace["triggered_at"] <= trace["read_at"] <= trace["loaded_at"] <= trace["installed_at"]
    collector.stop()


def test_a_notifier_closed_while_it_connects_leaves_nothing_pending(settings: Settings,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A command whose pointer write fails closes the notice producer mid-connect: no 'Task was destroyed but
    it is pending' on its stderr (the CLI's contract is one error line)."""
    import gc
    import logging

    from scorer.kafka.notices import announce

    caplog.set_level(logging.ERROR, logger="asyncio")
    for i in range(24):
        with announce(settings):
            time.sleep((i % 8) * 0.002)
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
