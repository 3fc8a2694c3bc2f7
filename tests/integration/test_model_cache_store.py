"""The worker's model cache against the real Cassandra store (no Kafka): preload, lazy loads and LRU, swaps,
and swaps that must not happen (missing version, corrupt chunk) while the old model keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from cassandra.cluster import Session
from support.store import logistic

from scorer.config import Settings
from scorer.store import CassandraModelStore
from scorer.stream.cache import ModelCache, Serving, Unservable
from scorer.stream.events import MODEL_UNAVAILABLE, UNKNOWN_MODEL, UNKNOWN_SEGMENT

pytestmark = pytest.mark.slow

MODEL = "delay"


@pytest.fixture
def store(settings: Settings) -> Iterator[CassandraModelStore]:
    with CassandraModelStore(settings) as opened:
        yield opened


def failures(cache: ModelCache, error: str) -> float:
    return cache.metrics.swap_failures.labels(MODEL, error)._value.get()


def test_preload_lazy_load_and_lru(store: CassandraModelStore) -> None:
    store.publish_many(MODEL, [(f"S{i}", logistic(i % 2, 4), None, None) for i in range(5)], activate=True)

    async def scenario() -> None:
        cache = ModelCache(store, models=[MODEL], max_models=3, fallback_segment=None)
        await cache.start()
        assert cache.describe()["segments_loaded"] == 3  # preload stops at max_models
        assert isinstance(cache.lookup(MODEL, "S0"), Serving)
        assert cache.lookup(MODEL, "S4") is None  # known row, not loaded yet
        answers = await cache.ensure([(MODEL, "S3"), (MODEL, "S4"), (MODEL, "nope"), ("other", "S0")])
        assert answers[(MODEL, "S3")].primary.version == 1 and answers[(MODEL, "S4")].primary.segment == "S4"
        assert isinstance(answers[(MODEL, "nope")], Unservable) and answers[(MODEL, "nope")].kind == UNKNOWN_SEGMENT
        assert answers[("other", "S0")].kind == UNKNOWN_MODEL
        assert len(cache._entries) == 3 and cache.metrics.evictions._value.get() == 2
        # S0 was used after the preload, so S1 and S2 were the least recently used ones
        assert sorted(cache._entries.keys()) == [(MODEL, "S0"), (MODEL, "S3"), (MODEL, "S4")]
        assert cache.lookup(MODEL, "S1") is None

    asyncio.run(scenario())


def test_swaps_and_refused_swaps_keep_the_old_model(store: CassandraModelStore, cassandra: Session,
                                                    settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    for seed in (0, 1, 0):
        store.publish(MODEL, "A", logistic(seed, 4))  # versions 1, 2, 3
    store.activate(MODEL, "A", 1)
    store.publish(MODEL, "__default__", logistic(1, 4), activate=True)
    ks = settings.keyspace

    def point(version: int) -> None:
        cassandra.execute(f"UPDATE {ks}.active_models SET version = %s WHERE model = %s AND segment = 'A'",
                          (version, MODEL))

    async def scenario() -> None:
        cache = ModelCache(store, models=[MODEL], poll_interval=1.0)
        await cache.start()
        before = cache.lookup(MODEL, "A")
        assert isinstance(before, Serving) and before.primary.version == 1
        assert cache.lookup(MODEL, "unlisted").segment == "__default__"  # fallback

        point(2)
        await cache.refresh(MODEL)
        await cache.wait_swaps()
        after = cache.lookup(MODEL, "A")
        assert after.primary.version == 2 and before.primary.version == 1  # in-flight holders keep theirs
        assert cache.metrics.swaps.labels(MODEL, "ok")._value.get() == 1

        caplog.clear()
        point(99)  # a version that does not exist
        for _ in range(3):  # retried every poll, logged once
            await cache.refresh(MODEL)
            await cache.wait_swaps()
        assert cache.lookup(MODEL, "A").primary.version == 2
        assert failures(cache, "NotFound") == 3
        assert len([r for r in caplog.records if "v99" in r.getMessage() and r.levelno == logging.WARNING]) == 1
        described = cache.describe()["models"][MODEL]["A"]
        assert described["version"] == 2 and described["pending"]["version"] == 99 and "99" in described["errors"]
        assert cache.metrics.swaps_blocked._value.get() == 1

        # v3 with a corrupt chunk: the store's checksum check refuses it.
        cassandra.execute(f"UPDATE {ks}.model_chunks SET data = %s WHERE model = %s AND segment = 'A' "
                          f"AND version = 3 AND chunk = 0", (b"garbage" * 10, MODEL))
        point(3)
        await cache.refresh(MODEL)
        await cache.wait_swaps()
        assert cache.lookup(MODEL, "A").primary.version == 2
        assert failures(cache, "ChecksumMismatch") == 1

        point(1)  # fixed: back to a good version, the block clears
        await cache.refresh(MODEL)
        await cache.wait_swaps()
        assert cache.lookup(MODEL, "A").primary.version == 1
        assert cache.describe()["models"][MODEL]["A"]["pending"] is None
        assert cache.metrics.swaps_blocked._value.get() == 0

        store.canary(MODEL, "A", 2, 0.3)
        await cache.refresh(MODEL)
        await cache.wait_swaps()
        serving = cache.lookup(MODEL, "A")
        assert (serving.primary.version, serving.canary.version, serving.canary_fraction) == (1, 2, 0.3)
        store.promote(MODEL, "A")
        await cache.refresh(MODEL)
        await cache.wait_swaps()
        promoted = cache.lookup(MODEL, "A")
        assert promoted.primary.version == 2 and promoted.canary is None
        assert promoted.primary is serving.canary  # already built: reused, not reloaded

    asyncio.run(scenario())


def test_a_segment_that_never_loads_is_dead_lettered_until_fixed(store: CassandraModelStore, cassandra: Session,
                                                                 settings: Settings) -> None:
    store.publish(MODEL, "B", logistic(0, 4), activate=True)
    cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 42 WHERE model = %s AND segment = 'B'",
                      (MODEL,))

    async def scenario() -> None:
        cache = ModelCache(store, models=[MODEL], fallback_segment=None)
        await cache.start()
        answer = (await cache.ensure([(MODEL, "B")]))[(MODEL, "B")]
        assert isinstance(answer, Unservable) and answer.kind == MODEL_UNAVAILABLE
        assert "delay/B v42 cannot be loaded" in answer.reason
        assert cache.lookup(MODEL, "B") is answer or cache.lookup(MODEL, "B").reason == answer.reason
        cassandra.execute(f"UPDATE {settings.keyspace}.active_models SET version = 1 WHERE model = %s "
                          f"AND segment = 'B'", (MODEL,))
        await cache.refresh(MODEL)
        fixed = (await cache.ensure([(MODEL, "B")]))[(MODEL, "B")]
        assert isinstance(fixed, Serving) and fixed.primary.version == 1

    asyncio.run(scenario())

def test_unknown_model_names_from_events_cost_a_bounded_number_of_reads(store: CassandraModelStore) -> None:
    store.publish(MODEL, "A", logistic(0, 4), activate=True)

    class Counting(CassandraModelStore):
        reads = 0

        def active(self, model: str, segment: str | None = None) -> dict:
            Counting.reads += 1
            return super().active(model, segment)

    async def scenario(counting: CassandraModelStore) -> None:
        cache = ModelCache(counting, fallback_segment=None)
        await cache.start()
        Counting.reads = 0
        keys = [(f"junk{i:03d}", "A") for i in range(40)] + [(MODEL, "A")]
        answers = await cache.ensure(keys)
        assert isinstance(answers[(MODEL, "A")], Serving)
        junk = [answers[k] for k in keys[:-1]]
        assert all(isinstance(a, Unservable) and a.kind == UNKNOWN_MODEL for a in junk)
        assert Counting.reads == 16
        assert sum("not looked up" in a.reason for a in junk) == 24
        assert len(cache._locks) <= 2 and len(cache._served) == 1

    with Counting(store.settings) as counting:
        asyncio.run(scenario(counting))
