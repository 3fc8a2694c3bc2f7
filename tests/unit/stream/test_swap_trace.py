"""Swaps taken apart: stage stamps, the notice's prefetch, fresh Servings for the early commit, the notifier.

Against the in-memory ModelStore (the same behaviours run on Cassandra in tests/integration/test_worker_swap.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from cache_cases import M, weights

from scorer.config import load_settings
from scorer.kafka.notices import Notice, announce, decode_notice, encode_notice
from scorer.store.memory import MemoryModelStore
from scorer.stream.cache import ModelCache, Serving
from scorer.stream.swaps import SwapLog


class CountingStore(MemoryModelStore):
    """Records every version key loaded; ``hold`` makes pointer reads wait until released (a slow read)."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[tuple[str, str, int]] = []
        self.hold = threading.Event()
        self.hold.set()

    def load_many(self, keys: Iterable[tuple[str, str, int]]) -> dict[Any, Any]:
        keys = list(keys)
        self.loaded.extend(keys)
        return super().load_many(keys)

    def active(self, model: str, segment: str | None = None) -> Any:
        assert self.hold.wait(5)
        return super().active(model, segment)


def store_with_versions() -> CountingStore:
    store = CountingStore()
    for segment in ("SFO", "ATL"):
        store.publish(M, segment, weights(1), activate=True)
        store.publish(M, segment, weights(2))
        store.publish(M, segment, weights(3))
    return store


def test_a_notice_prefetches_its_version_while_the_pointer_is_read_and_the_swap_uses_it() -> None:
    store = store_with_versions()

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        store.loaded.clear()
        store.set_pointer(M, "SFO", 2)
        store.hold.clear()  # the pointer read waits: the prefetch must not
        refresh = asyncio.ensure_future(c.refresh(M, "notice", 123.0, ("SFO", 2)))
        for _ in range(200):
            if store.loaded:
                break
            await asyncio.sleep(0.005)
        assert store.loaded == [(M, "SFO", 2)]  # loaded before the pointer read returned
        store.hold.set()
        await refresh
        await c.wait_swaps()
        served = c.lookup(M, "SFO")
        assert isinstance(served, Serving) and served.primary.version == 2
        assert store.loaded == [(M, "SFO", 2)]  # not loaded a second time
        (trace,) = c.describe()["recent_swaps"]
        assert trace["trigger"] == "notice" and trace["sent_at"] == 123.0 and trace["outcome"] == "installed"
        assert trace["triggered_at"] <= trace["read_at"] <= trace["loaded_at"] <= trace["installed_at"]
        assert c.swap_log.installed == 1

    asyncio.run(scenario())


def test_the_pointer_decides_not_the_notice() -> None:
    """A notice naming another version than the row: that version is not installed, the row's is."""
    store = store_with_versions()

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        store.set_pointer(M, "SFO", 3)
        await c.refresh(M, "notice", None, ("SFO", 2))
        await c.wait_swaps()
        served = c.lookup(M, "SFO")
        assert isinstance(served, Serving) and served.primary.version == 3
        assert (M, "SFO", 3) in store.loaded
        await c.refresh(M, "notice", None, ("SFO", 3))  # already served: nothing prefetched, no swap
        await c.wait_swaps()
        assert [t["version"] for t in c.describe()["recent_swaps"]] == [3]
        assert store.loaded.count((M, "SFO", 3)) == 1

    asyncio.run(scenario())


def test_a_poll_swap_is_traced_and_its_serving_is_fresh_until_a_batch_uses_it() -> None:
    store = store_with_versions()

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        old = c.lookup(M, "ATL")
        store.set_pointer(M, "SFO", 2)
        await c.refresh(M)
        await c.wait_swaps()
        (trace,) = c.describe()["recent_swaps"]
        assert trace["trigger"] == "poll" and trace["sent_at"] is None and trace["segment"] == "SFO"
        new = c.lookup(M, "SFO")
        assert not c.swap_log.used_by({(M, "ATL"): old})  # a batch of other segments: not the swap's output
        assert c.swap_log.used_by({(M, "ATL"): old, (M, "NYC"): new})  # served through a fallback counts too
        assert not c.swap_log.used_by({(M, "SFO"): new})  # only the first batch: later ones commit as usual

    asyncio.run(scenario())


def test_fresh_servings_are_bounded() -> None:
    log = SwapLog()
    for i in range(2000):
        log.went_live((M, f"s{i}"), object())
    assert len(log.fresh) <= 1024
    assert not log.used_by({})


def test_a_notice_carries_its_send_time() -> None:
    notice = decode_notice(encode_notice("delay", "ORD", "activate", 3))
    assert notice is not None and notice.sent_at() is not None
    assert Notice(model="m", action="activate", at="yesterday").sent_at() is None
    assert Notice(model="m", action="activate", at="2026-01-02T03:04:05").sent_at() is None  # no zone: unknown


def test_the_notifier_warns_instead_of_raising_when_no_broker_answers() -> None:
    settings = load_settings(kafka="kafka://127.0.0.1:1", changes_topic="changes-x")
    with announce(settings, timeout=3.0) as notify:
        warning = notify("delay", "ORD", "activate", 3)
    assert warning is not None
    assert warning.startswith("the change is live, but its 'changes-x' notice was not sent (")
    assert warning.endswith("workers pick it up at their next poll")
    assert not [t for t in threading.enumerate() if t.name == "notice-producer"]
