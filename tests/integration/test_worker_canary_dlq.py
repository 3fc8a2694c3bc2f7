"""Canary traffic split, fallback segment, and dead letters for every kind of bad event, with a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from support.store import logistic
from support.stream import Collector, WorkerProcess, event, make_topics, metric_value, produce_sync, workers

from scorer.config import Settings
from scorer.store import CassandraModelStore
from scorer.stream.cache import in_canary

pytestmark = pytest.mark.slow

MODEL = "delay"
FEATURES = {"f0": 0.5, "f1": -1.0, "f2": 2.0, "f3": 0.0}


def test_canary_scores_a_stable_fifth_of_a_segment(settings: Settings, bootstrap: str,
                                                    new_topic: Callable[..., str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish_many(MODEL, [("C", logistic(0, 4), None, None), ("__default__", logistic(2, 4), None, None)],
                           activate=True)
        store.publish(MODEL, "C", logistic(1, 4))
        store.canary(MODEL, "C", 2, 0.2, reason="test")
    topics = make_topics(new_topic)
    n = 5_000
    messages = [event(f"c-{i}", "C", FEATURES) for i in range(n)]
    messages += [event(f"f-{i}", "NO-SUCH-SEGMENT", FEATURES) for i in range(50)]
    produce_sync(bootstrap, topics.events, messages)
    expected = {f"c-{i}" for i in range(n) if in_canary(f"c-{i}", 0.2)}

    canaries = []
    for run in range(2):  # a second worker (another group, another output topic) picks the same ids
        out_topic = topics.predictions if run == 0 else new_topic("predictions2", 4)
        collector = Collector(bootstrap, [out_topic, topics.dlq]).start()
        worker = WorkerProcess(settings, topics, extra_args=["--output-topic", out_topic])
        with workers(worker.start()):
            worker.wait_ready()
            collector.wait_for(lambda c, t=out_topic: len(c.snapshot(t)) >= n + 50, timeout=120)
            state = worker.models()
            metrics = worker.metrics()
        collector.stop()
        outs = [o.value for o in collector.snapshot(out_topic)]
        assert collector.snapshot(topics.dlq) == []
        in_c = [o for o in outs if o["segment"] == "C"]
        assert len(in_c) == n
        chosen = {o["id"] for o in in_c if o["canary"]}
        assert all(o["version"] == (2 if o["canary"] else 1) for o in in_c)
        assert abs(len(chosen) / n - 0.2) <= 0.03, f"canary share {len(chosen) / n:.3f}"
        assert chosen == expected, "canary selection must be the stable hash of the id"
        canaries.append(chosen)
        fallback = [o for o in outs if o["segment"] == "NO-SUCH-SEGMENT"]
        assert len(fallback) == 50 and {o["version"] for o in fallback} == {1}  # the __default__ model
        assert {o.get("served_by") for o in fallback} == {"__default__"}  # named: the version is the fallback's
        assert all("served_by" not in o for o in in_c)
        entry = state["models"][MODEL]["C"]
        assert entry["version"] == 1 and entry["canary"]["version"] == 2 and entry["canary"]["fraction"] == 0.2
        assert metric_value(metrics, "scorer_events_total", segment="C", version="2", outcome="canary") == len(chosen)
    assert canaries[0] == canaries[1]


def bad_events() -> list[tuple[str, bytes | None, str]]:
    """(tag, raw message, expected dead-letter reason or its start) for each kind of bad input."""
    def ev(**fields: object) -> bytes:
        base = {"id": "x", "model": MODEL, "segment": "A", "features": FEATURES}
        base.update(fields)
        return orjson.dumps({k: v for k, v in base.items() if v is not ...})

    return [
        ("not-json", b"{this is not json", "not JSON: "),
        ("tombstone", None, "empty message (no value)"),
        ("array", b"[1, 2, 3]", "event must be a JSON object; got array"),
        ("string", b'"hello"', "event must be a JSON object; got string"),
        ("nan", b'{"id": "n", "model": "delay", "segment": "A", "features": {"f0": NaN}}',
         "not JSON: NaN and Infinity are not JSON numbers"),
        ("inf", b'{"id": "i", "model": "delay", "segment": "A", "features": {"f0": 1e999}}',
         "not JSON: a number is out of the float64 range"),
        ("no-id", ev(id=...), "missing field 'id'"),
        ("empty-id", ev(id=""), "field 'id' must be a non-empty string; got ''"),
        ("int-id", ev(id=12), "field 'id' must be a non-empty string; got number 12"),
        ("no-model", ev(id="nm", model=...), "missing field 'model'"),
        ("no-segment", ev(id="ns", segment=...), "missing field 'segment'"),
        ("features-list", ev(id="fl", features=[1, 2]), "field 'features' must be an object; got array"),
        ("string-feature", ev(id="sf", features={**FEATURES, "f1": "12"}),
         "feature 'f1' for delay/A v1 must be a number or null; got string '12'"),  # strings are categories
        ("bool-feature", ev(id="bf", features={**FEATURES, "f2": True}),
         "feature 'f2' must be a number, a string or null; got boolean True"),
        ("missing-feature", ev(id="mf", features={"f0": 1.0, "f1": 1.0, "f2": 1.0}),
         "missing feature 'f3' for delay/A v1 (model cannot impute)"),
        ("null-feature", ev(id="nf", features={**FEATURES, "f0": None}),
         "missing feature 'f0' for delay/A v1 (model cannot impute)"),
        ("too-many", ev(id="tm", features={f"x{i}": i for i in range(60)}), "60 features exceed the limit of 50"),
        ("too-big", ev(id="tb", padding="x" * 5000), "message of "),
        ("unknown-model", ev(id="um", model="nope"), "unknown model 'nope' (it has no active_models rows)"),
        ("unknown-segment", ev(id="us", segment="ZZZ"),
         "no model for delay/ZZZ (no active version, no fallback segment)"),
    ]


def test_malformed_events_get_specific_dead_letters_and_good_ones_are_scored(
        settings: Settings, bootstrap: str, new_topic: Callable[..., str]) -> None:
    with CassandraModelStore(settings) as store:
        store.publish(MODEL, "A", logistic(0, 4), activate=True)
    topics = make_topics(new_topic)
    topics.events = new_topic("events", 1)  # one partition: dead letter offsets are predictable
    bad = bad_events()
    messages: list[tuple[bytes | None, bytes | None]] = []
    expected: dict[int, tuple[str, str, bytes | None]] = {}
    for i, (tag, raw, reason) in enumerate(bad):
        messages.append((f"good-{i}".encode(), event(f"good-{i}", "A", FEATURES)[1]))
        expected[len(messages)] = (tag, reason, raw)
        messages.append((tag.encode(), raw))
    messages.append((b"good-last", event("good-last", "A", FEATURES)[1]))
    collector = Collector(bootstrap, [topics.predictions, topics.dlq]).start()
    # The faust agent (on faust's stock consumer) here, so that path stays covered; most tests use the direct
    # reader. --stock-consumer is still accepted, for scripts written when it chose between two faust paths.
    worker = WorkerProcess(settings, topics, extra_args=["--fallback-segment", "", "--max-message-bytes", "4096",
                                                         "--max-features", "50", "--consumer", "faust",
                                                         "--stock-consumer"])
    with workers(worker.start()):
        worker.wait_ready()
        produce_sync(bootstrap, topics.events, messages)  # type: ignore[arg-type]
        collector.wait_for(lambda c: len(c.snapshot()) >= len(messages), timeout=90)
        time.sleep(1.0)
        assert worker.alive(), worker.tail()
        assert worker.models()["worker"]["ready"]
        metrics = worker.metrics()
    collector.stop()

    scored = {o.value["id"] for o in collector.snapshot(topics.predictions)}
    assert scored == {f"good-{i}" for i in range(len(bad))} | {"good-last"}
    letters = {o.value["offset"]: o for o in collector.snapshot(topics.dlq)}
    assert sorted(letters) == sorted(expected)
    for offset, (tag, reason, raw) in expected.items():
        out = letters[offset]
        letter = out.value
        assert set(letter) == {"error", "raw", "topic", "partition", "offset"}
        assert letter["error"].startswith(reason), f"{tag}: {letter['error']!r} should start with {reason!r}"
        assert (letter["topic"], letter["partition"]) == (topics.events, 0)
        assert out.key == tag.encode()  # dead letters keep the input key
        assert letter["raw"] == ("" if raw is None else raw.decode())  # quoted in full up to --max-raw-chars
    assert metric_value(metrics, "scorer_dead_letters_total") == len(bad)
    assert metric_value(metrics, "scorer_dead_letters_total", reason="missing_feature") == 2
    assert metric_value(metrics, "scorer_events_total", outcome="dead_letter", segment="A") == 2
