"""The id join: any arrival order, each part emitted once, bounded by TTL and by a hard cap."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from scorer.monitor.accuracy import BINARY, LiveMetrics, MetricsConfig
from scorer.monitor.join import LabelJoin


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_parts_meet_their_label_in_any_order() -> None:
    join = LabelJoin(ttl=60, max_entries=100, clock=Clock())
    assert join.add_event("e1", b"raw") == []
    assert join.add_prediction("e1", 1, {"p": 0.8}) == []
    out = join.add_label("e1", 1)
    assert {(j.kind, j.label) for j in out} == {("event", 1), ("prediction", 1)}
    # a late shadow prediction still meets the label; a redelivered one does not count twice
    (late,) = join.add_prediction("e1", 2, {"p": 0.6})
    assert late.part == {"p": 0.6}
    assert join.add_prediction("e1", 2, {"p": 0.6}) == [] and join.stats.duplicates == 1
    # label first
    assert join.add_label("e2", 0) == []
    (joined,) = join.add_prediction("e2", 1, {"p": 0.1})
    assert joined.id == "e2" and joined.label == 0
    assert join.stats.joined_predictions == 3 and join.stats.joined_events == 1


def test_slots_expire_after_the_ttl() -> None:
    clock = Clock()
    join = LabelJoin(ttl=10, max_entries=100, clock=clock)
    join.add_prediction("old", 1, "p")
    clock.now = 5
    join.add_prediction("young", 1, "p")
    clock.now = 10.5
    assert join.add_label("old", 1) == []  # the old slot expired first: the label starts a new one
    assert join.stats.expired == 1
    assert len(join.add_label("young", 1)) == 1


def test_cap_evicts_oldest_first() -> None:
    join = LabelJoin(ttl=1e9, max_entries=3, clock=Clock())
    for i in range(5):
        join.add_prediction(f"e{i}", 1, i)
    assert len(join) == 3 and join.stats.evicted == 2
    assert join.add_label("e0", 1) == []
    assert len(join.add_label("e4", 1)) == 1


@pytest.mark.slow
def test_memory_stays_bounded_with_10000_segments_and_missing_labels() -> None:
    """60,000 predictions over 10,000 segments, a label for only one in three: state stays under its caps."""
    clock = Clock()
    cap = 5_000
    join = LabelJoin(ttl=300, max_entries=cap, clock=clock)
    live = LiveMetrics(MetricsConfig(window=200, max_keys=10_000))
    rng = np.random.default_rng(0)
    for i in range(10_000):  # every segment already has a rolling window
        live.add(("m", f"s{i}", 1), BINARY, 0.5, 1.0)
    tracemalloc.start()
    peak_after_warmup = None
    for i in range(60_000):
        clock.now = i * 0.001
        event_id = f"e-{i}"
        segment = f"s{i % 10_000}"
        join.add_event(event_id, b'{"id": "e-%d", "features": {"x": 1.0}}' % i)
        join.add_prediction(event_id, 1, ("m", segment, 1, float(rng.random())))
        if i % 3 == 0 and i >= 50:  # labels arrive 50 events late, and for a third of the events only
            for joined in join.add_label(f"e-{i - 50}", 1):
                if joined.kind == "prediction":
                    model, seg, version, p = joined.part
                    live.add((model, seg, version), BINARY, p, 1.0)
        assert len(join) <= cap
        if i == 20_000:
            peak_after_warmup = tracemalloc.get_traced_memory()[0]
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(join) == cap and join.stats.evicted > 0
    assert len(live) <= 10_000 and live.nbytes <= 10_000 * 200 * 16
    assert peak_after_warmup is not None
    # after warm-up the state no longer grows with the number of events (allow 25% slack for allocator noise)
    assert current < peak_after_warmup * 1.25, (current, peak_after_warmup)
