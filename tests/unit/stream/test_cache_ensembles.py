"""The model cache with ensemble versions, against the in-memory ModelStore: swaps, shared members, corruption."""

from __future__ import annotations

import asyncio
from functools import cache

import numpy as np
from sklearn.linear_model import LogisticRegression

from scorer.ensemble import compose, load_model
from scorer.models import ModelWeights, build
from scorer.store.memory import MemoryModelStore
from scorer.stream.cache import ModelCache, Serving
from trainers import export

M = "rides"


@cache
def weights(seed: int) -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 3))
    y = (X @ rng.normal(size=3) + rng.normal(scale=0.5, size=80) > 0).astype(int)
    return export(LogisticRegression().fit(X, y), feature_names=["a", "b", "c"])


def metric(c: ModelCache, name: str, **labels: str) -> float:
    value = c.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def store_with_members() -> MemoryModelStore:
    store = MemoryModelStore()
    for seed, segment in enumerate(("SFO", "ATL", "__global__"), start=1):
        store.publish(M, segment, weights(seed), activate=True)
    return store


def primary(c: ModelCache, segment: str) -> tuple[int, str]:
    entry = c.lookup(M, segment)
    assert isinstance(entry, Serving), entry
    return entry.primary.version, entry.primary.predictor.weights.arch


def test_swap_to_an_ensemble_and_back_by_pointer_and_share_members() -> None:
    store = store_with_members()
    sfo = compose(store, M, "SFO", ["SFO:1", "__global__:1"], weights=[3, 1])
    atl = compose(store, M, "ATL", ["ATL:1", "__global__:1"])
    X = np.random.default_rng(5).normal(size=(16, 3))

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        assert primary(c, "SFO") == (1, "logistic")
        store.set_pointer(M, "SFO", sfo)  # what a raw CQL UPDATE does
        store.set_pointer(M, "ATL", atl)
        await c.refresh(M)
        await c.wait_swaps()
        assert primary(c, "SFO") == (sfo, "ensemble") and primary(c, "ATL") == (atl, "ensemble")
        ens_sfo = c.lookup(M, "SFO").primary.predictor
        ens_atl = c.lookup(M, "ATL").primary.predictor
        assert ens_sfo.members[1] is ens_atl.members[1]  # __global__ v1: built once for both
        assert c.members.loads == 3
        offline = 0.75 * build(weights(1)).predict(X) + 0.25 * build(weights(3)).predict(X)
        np.testing.assert_allclose(ens_sfo.predict(X), offline, rtol=0, atol=1e-9)
        np.testing.assert_allclose(load_model(store, M, "SFO").predict(X), offline, rtol=0, atol=1e-9)
        store.set_pointer(M, "SFO", 1)
        await c.refresh(M)
        await c.wait_swaps()
        assert primary(c, "SFO") == (1, "logistic")
        assert metric(c, "scorer_swap_failures_total", model=M, error="ChecksumMismatch") == 0

    asyncio.run(scenario())


def test_a_member_failing_its_checksum_keeps_the_old_ensemble_serving() -> None:
    store = store_with_members()
    first = compose(store, M, "SFO", ["SFO:1", "__global__:1"], activate=True)
    spare = store.publish(M, "ATL", weights(9))
    second = compose(store, M, "SFO", ["SFO:1", f"ATL:{spare}"])
    store.corrupt(M, "ATL", spare)

    async def scenario() -> None:
        c = ModelCache(store, models=[M])
        await c.start()
        assert primary(c, "SFO") == (first, "ensemble")
        store.activate(M, "SFO", second)
        await c.refresh(M)
        await c.wait_swaps()
        assert primary(c, "SFO") == (first, "ensemble")
        assert metric(c, "scorer_swap_failures_total", model=M, error="ChecksumMismatch") == 1
        assert metric(c, "scorer_swaps_blocked") == 1
        errors = c.describe()["models"][M]["SFO"]["errors"]
        assert f"member {M}/ATL version {spare}" in errors[str(second)]

    asyncio.run(scenario())
