"""Races against the real Cassandra: concurrent publishers, and a reader polling during a large release."""

from __future__ import annotations

import threading

import pytest
from support.store import logistic

from scorer.config import Settings
from scorer.store import CassandraModelStore


def run_together(n: int, work) -> list:
    """Start ``n`` threads that each call ``work(i)`` at the same moment; return results (or raise the first error)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_eight_concurrent_publishers_to_one_segment_get_eight_distinct_versions(ks: Settings, model: str) -> None:
    stores = [CassandraModelStore(ks) for _ in range(8)]  # one connection each, like eight processes
    try:
        versions = run_together(8, lambda i: stores[i].publish(model, "ORD", logistic(i)))
        assert sorted(versions) == list(range(1, 9))
        listed = stores[0].versions(model, "ORD")
        assert [info.version for info in listed] == list(range(8, 0, -1))
        for i, version in enumerate(versions):  # every version holds exactly its own publisher's weights
            assert stores[0].load(model, "ORD", version) == logistic(i)
    finally:
        for store in stores:
            store.close()


def test_concurrent_bulk_publishers_never_collide(ks: Settings, model: str) -> None:
    segments = [f"s{i:02d}" for i in range(20)]
    stores = [CassandraModelStore(ks) for _ in range(4)]
    try:
        results = run_together(4, lambda i: stores[i].publish_many(
            model, [(seg, logistic(i), None, None) for seg in segments]))
        for seg in segments:
            assert sorted(result[seg] for result in results) == [1, 2, 3, 4]
        keys = [(model, seg, result[seg]) for result in results for seg in segments]
        loaded = stores[0].load_many(keys)
        for i, result in enumerate(results):
            for seg in segments:
                assert loaded[(model, seg, result[seg])] == logistic(i)
    finally:
        for store in stores:
            store.close()


@pytest.mark.slow
def test_reader_polling_during_a_500_segment_release_never_sees_a_mix(ks: Settings, model: str) -> None:
    segments = [f"seg{i:03d}" for i in range(500)]
    with CassandraModelStore(ks) as writer, CassandraModelStore(ks) as reader:
        writer.publish_many(model, [(seg, logistic(0), None, None) for seg in segments], activate=True)
        writer.publish_many(model, [(seg, logistic(1), None, None) for seg in segments])
        seen: list[frozenset[int | None]] = []
        sizes: set[int] = set()
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                snapshot = reader.active(model)
                sizes.add(len(snapshot))
                seen.append(frozenset(pointer.version for pointer in snapshot.values()))

        polling = threading.Thread(target=poll)
        polling.start()
        try:
            release_ids = []
            for target in (2, 1, 2, 1, 2):
                release_ids.append(writer.release(model, dict.fromkeys(segments, target), reason=f"to {target}"))
        finally:
            stop.set()
            polling.join(timeout=60)
        assert sizes == {500}
        assert set(seen) <= {frozenset({1}), frozenset({2})}, "a reader saw a mix of old and new versions"
        assert frozenset({1}) in seen and frozenset({2}) in seen and len(seen) > 5
        assert {pointer.version for pointer in writer.active(model).values()} == {2}
        log = writer.activations(model, "seg123")
        assert [entry.release_id for entry in log[:5]] == release_ids[::-1]
        assert len(set(release_ids)) == 5
