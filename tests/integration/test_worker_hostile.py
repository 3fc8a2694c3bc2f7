"""Hostile events through a real worker: every bad message gets its own specific dead letter, good events
around them (unicode segments included) are scored, and the worker never stops.

The decoder is fuzzed with hypothesis in tests/unit/stream/test_events_hostile.py; this sends the worst of
those cases (and seeded random bytes) through Kafka to a ``scorer worker`` subprocess with configured limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import orjson
import pytest
from support.store import logistic
from support.stream import Collector, WorkerProcess, event, make_topics, metric_value, produce_sync, workers

from scorer.config import Settings
from scorer.store import CassandraModelStore

pytestmark = pytest.mark.slow

MODEL = "delay"
SEGMENTS = ["A", "São Paulo", "東京"]
FEATURES = {"f0": 0.5, "f1": -1.0, "f2": 2.0, "f3": 0.0}
MAX_BYTES = 600_000
MAX_FEATURES = 64


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def ev(event_id: str, **fields: object) -> bytes:
    return orjson.dumps({"id": event_id, "model": MODEL, "segment": "A", "features": FEATURES, **fields})


def raw_event(id_json: str = '"r"', features_json: str | None = None) -> bytes:
    features = features_json or orjson.dumps(FEATURES).decode()
    return f'{{"id":{id_json},"model":"{MODEL}","segment":"A","features":{features}}}'.encode()


def hostile() -> list[tuple[str, bytes | None, tuple[str, ...]]]:
    """(tag, message, accepted starts of its dead letter's error)."""
    one_mb = ev("mb", padding="p" * 1_000_000)[:1_000_000]  # cut: 1,000,000 bytes, not even JSON any more
    cases: list[tuple[str, bytes | None, tuple[str, ...]]] = [
        ("deep-10000", nested(10_000).encode(), ("not JSON: ",)),
        ("deep-1000-feature", raw_event(features_json='{"f0":' + nested(1000) + "}"),
         ("feature 'f0' must be a number, a string or null; got array",)),
        ("deep-1000-id", raw_event(id_json=nested(1000)), ("field 'id' must be a non-empty string; got array",)),
        ("huge-id", ev("i" * 300), ("field 'id' is 300 characters long; the limit is 256",)),
        ("huge-segment", ev("hs", segment="s" * 100_000), ("field 'segment' is 100000 characters long",)),
        ("huge-value", ev("hv", features={**FEATURES, "f0": "v" * 200_000}),
         ("feature 'f0' for delay/A v1 must be a number or null; got string 'vvvv",)),
        ("huge-name", ev("hn", features={"n" * 200_000: ["x"]}), ("feature 'nnnnnnnn",)),
        ("nan", raw_event(features_json='{"f0":NaN,"f1":1,"f2":1,"f3":1}'),
         ("not JSON: NaN and Infinity are not JSON numbers",)),
        ("infinity", raw_event(features_json='{"f0":Infinity,"f1":1,"f2":1,"f3":1}'),
         ("not JSON: NaN and Infinity are not JSON numbers",)),
        ("minus-infinity", raw_event(features_json='{"f0":-Infinity,"f1":1,"f2":1,"f3":1}'),
         ("not JSON: NaN and Infinity are not JSON numbers",)),
        ("1e400", raw_event(features_json='{"f0":1e400,"f1":1,"f2":1,"f3":1}'),
         ("not JSON: a number is out of the float64 range",)),
        ("features-list", ev("fl", features=[1, 2]), ("field 'features' must be an object; got array",)),
        ("id-object", ev("x", id={"a": 1}), ("field 'id' must be a non-empty string; got object",)),
        ("model-number", ev("mn", model=7), ("field 'model' must be a non-empty string; got number 7",)),
        ("bool-feature", ev("bf", features={**FEATURES, "f1": False}),
         ("feature 'f1' must be a number, a string or null; got boolean False",)),
        ("too-many", ev("tm", features={f"x{i}": i for i in range(MAX_FEATURES + 1)}),
         (f"{MAX_FEATURES + 1} features exceed the limit of {MAX_FEATURES}",)),
        ("one-mb", one_mb, (f"message of 1000000 bytes exceeds the limit of {MAX_BYTES} bytes",)),
        ("tombstone", None, ("empty message (no value)",)),
        ("bad-utf8", b'{"id":"u","model":"delay","segment":"\xff\xfe","features":{}}', ("not JSON: ",)),
        ("nfd-segment", ev("nfd", segment="Sa\u0303o Paulo"),
         ("no model for delay/Sa\u0303o Paulo (no active version, no fallback segment)",)),
    ]
    rng = np.random.default_rng(7)
    for i in range(40):
        blob = rng.integers(0, 256, size=int(rng.integers(1, 3_000)), dtype=np.uint8).tobytes()
        cases.append((f"random-{i}", blob, ("not JSON: ", "event must be a JSON object")))
    return cases


def test_hostile_events_get_specific_dead_letters_and_good_ones_are_scored(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [(seg, logistic(i, 4), None, None) for i, seg in enumerate(SEGMENTS)],
                           activate=True)
    topics = make_topics(new_topic)
    topics.events = new_topic("events", 1)  # one partition: a dead letter's offset says which message it was
    bad = hostile()
    messages: list[tuple[bytes | None, bytes | None]] = []
    expected: dict[int, tuple[str, tuple[str, ...]]] = {}
    good: dict[str, str] = {}
    for i, (tag, raw, starts) in enumerate(bad):
        segment = SEGMENTS[i % len(SEGMENTS)]
        good[f"g-{i}"] = segment
        messages.append(event(f"g-{i}", segment, FEATURES))
        expected[len(messages)] = (tag, starts)
        messages.append((tag.encode(), raw))
    big_ok = ev("big-but-allowed", padding="p" * 500_000)  # under --max-message-bytes: scored
    good["big-but-allowed"] = "A"
    messages.append((b"big-but-allowed", big_ok))
    messages.append(event("g-last", "東京", FEATURES))
    good["g-last"] = "東京"

    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="hostile", extra_args=[
        "--fallback-segment", "", "--max-message-bytes", str(MAX_BYTES), "--max-features", str(MAX_FEATURES)])
    with workers(worker.start()):
        worker.wait_ready()
        produce_sync(bootstrap, topics.events, messages)  # type: ignore[arg-type]
        collector.wait_for(lambda c: len(c.snapshot()) >= len(messages), timeout=90, what="one output per message")
        time.sleep(1.0)
        assert worker.alive() and worker.starts == 1, worker.tail()
        metrics = worker.metrics()
        log_text = worker.log_path.read_text(errors="replace")
    collector.stop()

    predictions = {o.value["id"]: o.value for o in collector.snapshot(topics.predictions)}
    assert set(predictions) == set(good), set(good) ^ set(predictions)
    for event_id, segment in good.items():
        assert predictions[event_id]["segment"] == segment and predictions[event_id]["version"] == 1
    letters = {o.value["offset"]: o.value for o in collector.snapshot(topics.dlq)}
    assert sorted(letters) == sorted(expected), "one dead letter per hostile message, none for good ones"
    for offset, (tag, starts) in expected.items():
        letter = letters[offset]
        assert letter["error"].startswith(starts), f"{tag}: {letter['error'][:120]!r} should start with {starts}"
        assert len(letter["error"]) <= 400, f"{tag}: the reason is {len(letter['error'])} characters"
        assert len(letter["raw"]) <= 16 * 1024 + 40, f"{tag}: the quoted message is not cut"
    assert metric_value(metrics, "scorer_dead_letters_total") == len(bad)
    assert metric_value(metrics, "scorer_events_total", outcome="scored") == len(good)
    assert "Traceback" not in log_text, log_text[log_text.find("Traceback"):][:2000]


def test_random_segment_names_served_by_the_fallback_keep_metrics_bounded(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str]) -> None:
    """Segment names come from events: thousands of made-up ones (unicode too) are scored by the fallback model,
    each prediction names its own segment, and the worker's metrics do not grow a label per name."""
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [("A", logistic(0, 4), None, None), ("__default__", logistic(1, 4), None, None)],
                           activate=True)
    topics = make_topics(new_topic)
    rng = np.random.default_rng(3)
    alphabet = list("abcxyzÅßçøé東京大阪서울القاهرة🚕")
    names = {"".join(rng.choice(alphabet, size=int(rng.integers(3, 12)))) for _ in range(3_000)}
    names.discard("A")
    messages = [event(f"r-{i}", name, FEATURES) for i, name in enumerate(sorted(names))]
    messages += [event(f"a-{i}", "A", FEATURES) for i in range(100)]
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    worker = WorkerProcess(settings, topics, name="hostile-segments")
    with workers(worker.start()):
        worker.wait_ready()
        baseline = len(worker.metrics())
        produce_sync(bootstrap, topics.events, messages)
        collector.wait_for(lambda c: len(c.snapshot()) >= len(messages), timeout=90, what="one output per event")
        metrics = worker.metrics()
        state = worker.models()
        assert worker.alive(), worker.tail()
    collector.stop()

    assert collector.snapshot(topics.dlq) == []
    outputs = {o.value["id"]: o.value for o in collector.snapshot(topics.predictions)}
    by_segment = {v["segment"]: v["version"] for v in outputs.values()}
    assert set(by_segment) == names | {"A"}, "each prediction names the event's own segment"
    labels = {line.split('segment="', 1)[1].split('"', 1)[0] for line in metrics.splitlines()
              if line.startswith("scorer_events_total{")}
    assert labels == {"A", "__default__"}, f"{len(labels)} segment labels, e.g. {sorted(labels)[:5]}"
    assert metric_value(metrics, "scorer_events_total", segment="__default__", outcome="scored") == len(names)
    assert len(metrics) < baseline + 20_000, f"/metrics grew from {baseline} to {len(metrics)} bytes"
    assert state["segments_loaded"] == 2  # the fallback's entry serves every made-up name
