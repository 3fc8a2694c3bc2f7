"""The model cache's swap decisions against the in-memory ModelStore: no servers, no private attributes.

Every store change goes through the store's public API (or ``set_pointer``, what a raw CQL UPDATE does), and
every answer is read through the cache's public API (``start``, ``ensure``, ``lookup``, ``refresh``,
``wait_swaps``) and its metrics. The same behaviours run against the real Cassandra in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from cache_cases import M, weights

from scorer.errors import StoreUnavailable
from scorer.store import ModelStore
from scorer.store.memory import MemoryModelStore
from scorer.stream.cache import ModelCache, Serving, Unservable
from scorer.stream.events import UNKNOWN_SEGMENT


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def serving_versions(entry: Serving | Unservable | None) -> tuple[int | None, int | None, int | None]:
    assert isinstance(entry, Serving), entry
    return (entry.primary.version, entry.canary.version if entry.canary else None,
            entry.shadow.version if entry.shadow else None)


def metric(cache_: ModelCache, name: str, **labels: str) -> float:
    value = cache_.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


@pytest.fixture
def store() -> MemoryModelStore:
    store = MemoryModelStore()
    for segment in ("SFO", "ATL", "__default__"):
        store.publish(M, segment, weights(1), activate=True)
    return store


def test_memory_store_satisfies_the_protocol(store: MemoryModelStore) -> None:
    assert isinstance(store, ModelStore)
    assert store.load(M, "SFO") == weights(1)


def test_preload_sets_the_gauges_once_for_every_entry_and_canary() -> None:
    """The gauges are summed once per load (not per installed entry): they must still count every version."""
    store = MemoryModelStore()
    store.publish_many(M, [(f"s{i:03d}", weights(i % 3), None, None) for i in range(40)], activate=True)
    store.publish(M, "s000", weights(5))
    store.canary(M, "s000", 2, 0.1)

    async def scenario() -> None:
        c = ModelCache(store, models=[M], max_models=30)
        await c.start()
        assert metric(c, "scorer_segments_loaded") == 30
        assert metric(c, "scorer_models_loaded") == 31  # s000 serves a canary too
        await c.ensure([(M, "s039")])  # past max_models: loaded by the batch that needs it, evicting s000 (LRU)
        assert metric(c, "scorer_segments_loaded") == 30
        assert metric(c, "scorer_models_loaded") == 30
        assert metric(c, "scorer_evictions_total") == 1

    run(scenario())


def test_start_preloads_active_segments_and_a_new_segment_loads_lazily(store: MemoryModelStore) -> None:
    async def scenario() -> None:
        c = ModelCache(store, models=[M], poll_interval=0.01)
        await c.start()
        assert serving_versions(c.lookup(M, "SFO")) == (1, None, None)
        assert c.lookup(M, "NYC").segment == "__default__"  # no row of its own: the fallback serves it
        store.publish(M, "NYC", weights(2), activate=True)
        await asyncio.sleep(0.02)
        answer = (await c.ensure([(M, "NYC")]))[(M, "NYC")]
        assert answer.segment == "NYC" and serving_versions(answer) == (1, None, None)
        assert answer.primary.predictor.weights == weights(2)

    run(scenario())


def test_activate_canary_shadow_and_rollback_swap_on_refresh(store: MemoryModelStore) -> None:
    v2 = store.publish(M, "SFO", weights(2))
    v3 = store.publish(M, "SFO", weights(3))

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        swaps: list[tuple[int, int]] = []
        c.swap_listeners.append(lambda old, new: swaps.append((old.primary.version, new.primary.version)))

        async def after(change: Callable[[], object]) -> tuple[int | None, int | None, int | None]:
            change()
            await c.refresh(M)
            await c.wait_swaps()
            return serving_versions(c.lookup(M, "SFO"))

        assert await after(lambda: store.activate(M, "SFO", v2)) == (2, None, None)
        assert await after(lambda: store.canary(M, "SFO", v3, 0.25)) == (2, 3, None)
        assert c.lookup(M, "SFO").canary_fraction == 0.25
        assert await after(lambda: store.shadow(M, "SFO", 1)) == (2, 3, 1)
        assert await after(lambda: store.promote(M, "SFO")) == (3, None, 1)
        assert await after(lambda: store.rollback(M, "SFO")) == (2, None, 1)
        # A raw pointer write (no log entry, as a CQL UPDATE) is followed all the same.
        assert await after(lambda: store.set_pointer(M, "SFO", 1)) == (1, None, None)
        assert swaps == [(1, 2), (2, 2), (2, 2), (2, 3), (3, 2), (2, 1)]
        assert metric(c, "scorer_swaps_total", model=M, result="ok") == 6
        # A swap loads only what the entry does not hold: start (v1), v2, v3, v1 for the shadow (v1 had left
        # the entry), nothing for the promotion, v2 for the rollback (the promotion dropped it), nothing for
        # the raw write back to v1 (held as the shadow).
        assert store.calls.count("load_many") == 5

    run(scenario())


def test_lru_evicts_the_least_recently_used_segment(store: MemoryModelStore) -> None:
    async def scenario() -> None:
        c = ModelCache(store, models=[M], max_models=2, fallback_segment=None)
        await c.start()
        await c.ensure([(M, "SFO")])
        await c.ensure([(M, "ATL")])
        assert c.lookup(M, "__default__") is None  # not cached: evicted or never loaded
        await c.ensure([(M, "__default__")])
        assert c.lookup(M, "SFO") is None  # the least recently used one went
        assert isinstance(c.lookup(M, "ATL"), Serving) and isinstance(c.lookup(M, "__default__"), Serving)
        assert metric(c, "scorer_evictions_total") >= 1

    run(scenario())


def test_no_row_and_no_fallback_is_unservable(store: MemoryModelStore) -> None:
    async def scenario() -> None:
        c = ModelCache(store, models=[M], fallback_segment=None)
        await c.start()
        answer = (await c.ensure([(M, "NYC")]))[(M, "NYC")]
        assert isinstance(answer, Unservable) and answer.kind == UNKNOWN_SEGMENT and "rides/NYC" in answer.reason

    run(scenario())


def test_a_corrupt_version_keeps_the_old_one_serving_until_a_good_one_comes(store: MemoryModelStore) -> None:
    bad = store.publish(M, "SFO", weights(2))
    store.corrupt(M, "SFO", bad)

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        store.activate(M, "SFO", bad)
        await c.refresh(M)
        await c.wait_swaps()
        assert serving_versions(c.lookup(M, "SFO")) == (1, None, None)
        assert metric(c, "scorer_swap_failures_total", model=M, error="ChecksumMismatch") == 1
        assert metric(c, "scorer_swaps_blocked") == 1
        good = store.publish(M, "SFO", weights(3), activate=True)
        await c.refresh(M)
        await c.wait_swaps()
        assert serving_versions(c.lookup(M, "SFO")) == (good, None, None)
        assert metric(c, "scorer_swaps_blocked") == 0

    run(scenario())


def test_a_store_outage_keeps_serving_and_recovers(store: MemoryModelStore) -> None:
    async def scenario() -> None:
        c = ModelCache(store, models=[M], max_backoff=0.01)
        await c.start()
        store.fail_next(StoreUnavailable("cassandra down"))
        await c.refresh(M)
        assert not c.store_ok and metric(c, "scorer_store_up") == 0
        assert serving_versions(c.lookup(M, "SFO")) == (1, None, None)
        store.activate(M, "SFO", store.publish(M, "SFO", weights(2)))
        await c.refresh(M)
        await c.wait_swaps()
        assert c.store_ok and serving_versions(c.lookup(M, "SFO")) == (2, None, None)

    run(scenario())
