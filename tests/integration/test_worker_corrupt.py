"""Corrupt stored data seen by a running worker: each bad pointer is refused, the old model keeps serving.

While a stream runs, four segments are pointed (raw CQL, as a bad restore or a hand edit would) at versions
the worker must not serve: one that does not exist, one whose last chunk is truncated, one whose chunk has a
flipped byte, one whose version row carries a checksum that does not match its bytes. A fifth segment gets a
normal swap at the same moment. The worker must log one clear line per refused version (not one per poll),
count each refusal in /metrics by error kind, keep scoring those segments with v1, show the pending pointer
and its error in /models, and follow as soon as each is fixed (pointer moved to a good version, or the
chunk repaired in place) without a restart. No event is lost and none is dead-lettered.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable

import pytest
from cassandra.cluster import Session
from support.faults import SteadyProducer, account, read_topic
from support.store import logistic
from support.stream import Collector, WorkerProcess, event, make_topics, metric_value, workers

from scorer.config import Settings
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
N_FEATURES = 100  # about 1.7 kB of weights: two chunks of 1 kB, so a chunk can be cut off
MISSING, TRUNCATED, ALTERED, BAD_SUM, CONTROL = "MISSING", "TRUNCATED", "ALTERED", "BAD-SUM", "CONTROL"
SEGMENTS = [MISSING, TRUNCATED, ALTERED, BAD_SUM, CONTROL]
FEATURES = {f"f{j}": ((j % 7) - 3) / 10 for j in range(N_FEATURES)}


def make_event(i: int) -> tuple[bytes, bytes]:
    return event(f"e-{i}", SEGMENTS[i % len(SEGMENTS)], FEATURES)


def test_corrupt_pointers_are_refused_and_the_old_model_keeps_serving(
        settings: Settings, cassandra: Session, bootstrap: str, new_topic: Callable[..., str]) -> None:
    ks = settings.keyspace
    with CassandraModelStore(settings, chunk_size=1024) as store:
        for seed in (0, 1, 2):  # v1 live, v2 and v3 published
            store.publish_many(MODEL, [(seg, logistic(seed, N_FEATURES), None, None) for seg in SEGMENTS],
                               activate=seed == 0)
        assert store.version_info(MODEL, TRUNCATED, 2).n_chunks == 2

    def chunks(segment: str, version: int) -> list[tuple[int, bytes]]:
        rows = cassandra.execute(f"SELECT chunk, data FROM {ks}.model_chunks WHERE model = %s AND segment = %s "
                                 "AND version = %s", (MODEL, segment, version))
        return [(row.chunk, bytes(row.data)) for row in rows]

    def set_chunk(segment: str, version: int, number: int, data: bytes) -> None:
        cassandra.execute(f"UPDATE {ks}.model_chunks SET data = %s WHERE model = %s AND segment = %s "
                          "AND version = %s AND chunk = %s", (data, MODEL, segment, version, number))

    def point(segment: str, version: int) -> None:
        cassandra.execute(f"UPDATE {ks}.active_models SET version = %s WHERE model = %s AND segment = %s",
                          (version, MODEL, segment))

    topics = make_topics(new_topic)
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="corrupt")
    producer = SteadyProducer(bootstrap, topics.events, make_event, rate=250)
    with workers(worker.start()):
        worker.wait_ready()
        producer.start()
        collector.wait_for(lambda c: len(c.snapshot()) >= 1_000, timeout=60, what="outputs before the damage")

        last_chunk, tail = chunks(TRUNCATED, 2)[-1]
        set_chunk(TRUNCATED, 2, last_chunk, tail[: len(tail) // 2])
        number, original = chunks(ALTERED, 2)[0]
        set_chunk(ALTERED, 2, number, bytes([original[0] ^ 0xFF]) + original[1:])  # same length, one byte flipped
        cassandra.execute(f"UPDATE {ks}.model_versions SET checksum = %s WHERE model = %s AND segment = %s "
                          "AND version = 2", (hashlib.sha256(b"not these weights").hexdigest(), MODEL, BAD_SUM))
        point(MISSING, 99)
        for segment in (TRUNCATED, ALTERED, BAD_SUM, CONTROL):
            point(segment, 2)
        damaged_at = time.time()

        def swapped_control(c: Collector) -> bool:
            return any(o.value.get("segment") == CONTROL and o.value.get("version") == 2
                       for o in c.snapshot(topics.predictions))

        collector.wait_for(swapped_control, timeout=30, what="the control segment's normal swap")
        time.sleep(4.0)  # several polls: each retries the refused versions
        state = worker.models()
        metrics = worker.metrics()
        log_text = worker.log_path.read_text(errors="replace")
        refused_until = time.time()

        # Fixes: a good version for three of them, and the altered chunk repaired in place (pointer unchanged).
        set_chunk(ALTERED, 2, number, original)
        for segment in (MISSING, TRUNCATED, BAD_SUM):
            point(segment, 3)
        fixed_at = time.time()

        def all_fixed(c: Collector) -> bool:
            latest = {}
            for o in c.snapshot(topics.predictions):
                if o.received > fixed_at:
                    latest[o.value["segment"]] = o.value["version"]
            return latest == {MISSING: 3, TRUNCATED: 3, BAD_SUM: 3, ALTERED: 2, CONTROL: 2}

        collector.wait_for(all_fixed, timeout=30, what="every segment on its fixed version")
        time.sleep(2.0)
        producer.stop()
        expected = {f"e-{i}" for i in producer.acked}
        collector.wait_for(lambda c: expected <= c.ids(topics.predictions) | c.ids(topics.dlq), timeout=60)
        time.sleep(1.0)
        after_state = worker.models()
        after_metrics = worker.metrics()
        assert worker.alive() and worker.starts == 1, worker.tail()
    collector.stop()

    outputs = collector.snapshot()
    acc = account([k.decode() for k, _ in read_topic(bootstrap, topics.events) if k is not None], outputs)
    assert acc.lost == [] and acc.dead_letters == 0, (acc.lost[:5], acc.dead_letters)

    # While damaged: every refused segment kept serving v1; the pointer it wants and why are in /models.
    served = state["models"][MODEL]
    expected_errors = {
        MISSING: (99, "NotFound", f"{MODEL}/{MISSING} version 99 does not exist"),
        TRUNCATED: (2, "ChecksumMismatch", "stored weights are"),
        ALTERED: (2, "ChecksumMismatch", "hash to sha256"),
        BAD_SUM: (2, "ChecksumMismatch", "hash to sha256"),
    }
    for segment, (version, kind, text) in expected_errors.items():
        entry = served[segment]
        assert entry["version"] == 1, (segment, entry)
        assert entry["pending"]["version"] == version, (segment, entry)
        error = entry["errors"][str(version)]
        assert error.startswith(kind) and text in error, (segment, error)
        # One log line per refused version, however many polls retried it.
        lines = [line for line in log_text.splitlines()
                 if re.search(rf"cannot serve {MODEL}/{re.escape(segment)} v{version}\b", line)]
        assert len(lines) == 1, (segment, lines)
        assert "WARNING" in lines[0] and "the previous model keeps serving" in lines[0] and kind in lines[0]
    assert served[CONTROL]["version"] == 2 and served[CONTROL]["pending"] is None
    assert metric_value(metrics, "scorer_swap_failures_total", model=MODEL, error="NotFound") >= 1
    assert metric_value(metrics, "scorer_swap_failures_total", model=MODEL, error="ChecksumMismatch") >= 3
    assert metric_value(metrics, "scorer_swaps_blocked") == 4
    assert metric_value(metrics, "scorer_swaps_total", model=MODEL, result="failed") >= 4
    assert metric_value(metrics, "scorer_swaps_total", model=MODEL, result="ok") == 1
    assert metric_value(metrics, "scorer_store_up") == 1  # bad data is not an outage

    predictions = [o for o in outputs if "id" in o.value]
    window = [o for o in predictions if damaged_at + 2 < o.received < refused_until]
    for segment in expected_errors:
        versions = {o.value["version"] for o in window if o.value["segment"] == segment}
        assert versions == {1}, f"{segment} served {versions} while its pointer was bad"

    # After the fixes: every segment follows, nothing is blocked, and versions never went back.
    for segment, version in {MISSING: 3, TRUNCATED: 3, BAD_SUM: 3, ALTERED: 2, CONTROL: 2}.items():
        entry = after_state["models"][MODEL][segment]
        assert entry["version"] == version and entry["pending"] is None, (segment, entry)
        # In scoring order: outputs of consecutive batches land on different partitions, which the collector
        # may read in either order, so its receive time is not the order the worker served them in.
        seq = [o.value["version"] for o in sorted(predictions, key=lambda o: (o.value["scored_at"], o.received))
               if o.value["segment"] == segment]
        assert seq == sorted(seq), f"{segment} went back to an older version"
    assert metric_value(after_metrics, "scorer_swaps_blocked") == 0
    assert metric_value(after_metrics, "scorer_swaps_total", model=MODEL, result="ok") == 5
    follow = {segment: round(min(o.received for o in predictions if o.received > fixed_at
                                 and o.value["segment"] == segment and o.value["version"] == version) - fixed_at, 2)
              for segment, version in {MISSING: 3, TRUNCATED: 3, BAD_SUM: 3, ALTERED: 2}.items()}
    print(f"\ncorrupt pointers: {acc.inputs} events, {acc.duplicates} duplicates, 0 lost; seconds from the fix "
          f"to the first prediction on the fixed version: {follow}")
