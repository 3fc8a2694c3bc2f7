"""Composing ensembles of published versions against the in-memory ModelStore (same rules as Cassandra's)."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from scorer.ensemble import MemberLoader, blend, compose, live_references, load_model, parse_member
from scorer.errors import ChecksumMismatch, ConfigError, NotFound
from scorer.models import ModelWeights, build
from scorer.store.memory import MemoryModelStore
from trainers import export

M = "rides"
FEATURES = ("a", "b", "c")


@cache
def logistic(seed: int, k: int = 2, names: tuple[str, ...] = FEATURES) -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    z = X @ rng.normal(size=3) + rng.normal(scale=0.5, size=200)
    y = np.digitize(z, np.quantile(z, np.linspace(0, 1, k + 1)[1:-1]))
    return export(LogisticRegression().fit(X, y), feature_names=names)


@cache
def linear(seed: int) -> ModelWeights:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(100, 3))
    return export(LinearRegression().fit(X, X @ rng.normal(size=3)), feature_names=FEATURES)


@pytest.fixture
def store() -> MemoryModelStore:
    store = MemoryModelStore()
    for seed, segment in enumerate(("SFO", "ATL", "__global__"), start=1):
        store.publish(M, segment, logistic(seed), activate=True)
    store.publish(M, "ATL", logistic(7))  # ATL v2, not active
    return store


def X(n: int = 64) -> np.ndarray:
    return np.random.default_rng(11).normal(size=(n, 3))


def test_parse_member() -> None:
    assert parse_member("ORD:3", M) == (M, "ORD", 3)
    assert parse_member("other/ORD:12", M) == ("other", "ORD", 12)
    assert parse_member("a:b:2", M) == (M, "a:b", 2)
    for bad in ("ORD", "ORD:", ":3", "ORD:0", "ORD:x"):
        with pytest.raises(ConfigError, match="must be"):
            parse_member(bad, M)


def test_a_referenced_ensemble_equals_the_combination_of_its_members_offline_scores(store: MemoryModelStore) -> None:
    version = compose(store, M, "SFO", ["SFO:1", "ATL:2", "__global__:1"], weights=[1, 2, 3])
    assert version == 2
    members = [build(store.load(M, s, v)).predict(X()) for s, v in (("SFO", 1), ("ATL", 2), ("__global__", 1))]
    got = load_model(store, M, "SFO", version).predict(X())
    np.testing.assert_allclose(got, np.average(members, axis=0, weights=[1, 2, 3]), rtol=0, atol=1e-9)
    info = store.version_info(M, "SFO", version)
    assert info.arch == "ensemble" and info.metadata["members"][1] == {
        "kind": "ref", "model": M, "segment": "ATL", "version": 2, "checksum": logistic(7).checksum()}
    vote = compose(store, M, "SFO", ["SFO:1", "ATL:2", "__global__:1"], combine="vote")
    shares = load_model(store, M, "SFO", vote).predict(X())
    votes = np.stack([m.argmax(axis=1) for m in members])
    np.testing.assert_array_equal(shares.argmax(axis=1), (votes.sum(axis=0) >= 2).astype(int))


def test_member_pointer_changes_do_not_change_the_ensemble(store: MemoryModelStore) -> None:
    version = compose(store, M, "SFO", ["SFO:1", "ATL:1"], activate=True)
    before = load_model(store, M, "SFO").predict(X())
    store.activate(M, "ATL", 2)
    assert store.active(M)["SFO"].version == version
    np.testing.assert_array_equal(load_model(store, M, "SFO").predict(X()), before)


def test_blend_with_the_global_model(store: MemoryModelStore) -> None:
    version = blend(store, M, "ATL", 1, global_version=1, weight=0.25)
    seg, glob = build(store.load(M, "ATL", 1)).predict(X()), build(store.load(M, "__global__", 1)).predict(X())
    np.testing.assert_allclose(load_model(store, M, "ATL", version).predict(X()), 0.75 * seg + 0.25 * glob,
                               rtol=0, atol=1e-12)
    assert store.version_info(M, "ATL", version).metadata["blend"] == {"global_segment": "__global__",
                                                                       "global_weight": 0.25}
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        blend(store, M, "ATL", 1, global_version=1, weight=1.0)


def test_stacking_through_a_stored_logistic_meta_model(store: MemoryModelStore) -> None:
    members = [build(store.load(M, s, 1)) for s in ("SFO", "ATL")]
    Xs = X(300)
    Z = np.column_stack([m.predict(Xs)[:, 1] for m in members] + [Xs])
    y = (Xs[:, 0] > 0).astype(int)
    meta = export(LogisticRegression().fit(Z, y), feature_names=["m0.p1", "m1.p1", *FEATURES])
    version = compose(store, M, "SFO", ["SFO:1", "ATL:1"], combine="stack", meta=meta, passthrough=True)
    np.testing.assert_allclose(load_model(store, M, "SFO", version).predict(Xs), build(meta).predict(Z),
                               rtol=0, atol=1e-9)
    with pytest.raises(ConfigError, match="takes 5 inputs; stacking 2 members gives 2"):
        compose(store, M, "SFO", ["SFO:1", "ATL:1"], combine="stack", meta=meta)
    with pytest.raises(ConfigError, match="needs a meta-model"):
        compose(store, M, "SFO", ["SFO:1", "ATL:1"], combine="stack")


def refusal(store: MemoryModelStore, pattern: str, exc: type[Exception] = ConfigError, **kw: object) -> None:
    before = len(store.versions(M))
    members = kw.pop("members")
    with pytest.raises(exc, match=pattern):
        compose(store, M, "SFO", members, **kw)  # type: ignore[arg-type]
    assert len(store.versions(M)) == before  # nothing written


def test_refusals_before_anything_is_written(store: MemoryModelStore) -> None:
    store.publish(M, "NYC", logistic(3, names=("a", "b", "d")))
    store.publish(M, "LAX", logistic(4, k=3))
    store.publish(M, "REG", linear(1))
    refusal(store, "different feature lists", members=["SFO:1", "NYC:1"])
    refusal(store, "different classes", members=["SFO:1", "LAX:1"])
    refusal(store, "different tasks", members=["SFO:1", "REG:1"])
    refusal(store, "member rides/ATL version 9 does not exist", NotFound, members=["SFO:1", "ATL:9"])
    refusal(store, "member other/SFO version 1 does not exist", NotFound, members=["SFO:1", "other/SFO:1"])
    refusal(store, "3 weights for 2 members", members=["SFO:1", "ATL:1"], weights=[1, 2, 3])
    refusal(store, "weights must be finite and >= 0", members=["SFO:1", "ATL:1"], weights=[1, -1])
    refusal(store, "given twice", members=["SFO:1", "SFO:1"])
    refusal(store, "combine must be one of", members=["SFO:1"], combine="median")


def test_cycles_are_refused(store: MemoryModelStore) -> None:
    inner = compose(store, M, "ATL", ["ATL:1", "SFO:1"])  # ATL v3: an ensemble
    outer = compose(store, M, "SFO", ["SFO:1", f"ATL:{inner}"])  # an ensemble of an ensemble is fine
    np.testing.assert_allclose(load_model(store, M, "SFO", outer).predict(X()), (
        build(store.load(M, "SFO", 1)).predict(X()) + load_model(store, M, "ATL", inner).predict(X())) / 2)
    # The next SFO version referencing itself (hand-made weights, as `scorer publish --weights` could bring).
    own = store.versions(M, "SFO")[0].version + 1
    w = store.load(M, "SFO", outer)
    meta = dict(w.metadata)
    meta["members"] = [dict(meta["members"][0], version=own, checksum="0" * 64), meta["members"][1]]
    with pytest.raises(ConfigError, match="cannot reference itself"):
        store.publish(M, "SFO", ModelWeights(w.arch, w.feature_names, w.arrays, w.classes, meta))
    # A stored chain that leads back (only raw writes can make one): refused when a new ensemble would use it.
    tampered = store.load(M, "ATL", inner)
    chain = dict(tampered.metadata)
    chain["members"] = [chain["members"][0], {"kind": "ref", "model": M, "segment": "SFO", "version": outer,
                                              "checksum": store.version_info(M, "SFO", outer).checksum}]
    entry = store._versions[(M, "ATL", inner)]  # what a raw CQL write to the version row could do
    entry.info = replace(entry.info, metadata=chain)
    with pytest.raises(ConfigError, match="leads back to itself"):
        compose(store, M, "LAX", [f"SFO:{outer}"])


def test_prune_keeps_versions_that_live_ensembles_reference(store: MemoryModelStore) -> None:
    for seed in (8, 9):
        store.publish(M, "ATL", logistic(seed))  # ATL v3, v4
    version = compose(store, M, "SFO", ["SFO:1", "ATL:2"])
    assert live_references(store, M) == {}
    store.canary(M, "SFO", version, 0.2)  # a canary is live too
    assert live_references(store, M) == {("SFO", 1): f"{M}/SFO version {version}",
                                         ("ATL", 2): f"{M}/SFO version {version}"}
    pruned = store.prune(M, keep=1)
    assert ("ATL", 2) not in pruned and ("ATL", 3) in pruned
    assert store.version_info(M, "ATL", 2) is not None
    store.retire_canary(M, "SFO")
    assert ("ATL", 2) in store.prune(M, "ATL", keep=1)


def test_member_loader_builds_a_shared_member_once_and_verifies_checksums(store: MemoryModelStore) -> None:
    a = compose(store, M, "SFO", ["SFO:1", "__global__:1"])
    b = compose(store, M, "ATL", ["ATL:1", "__global__:1"])
    loader = MemberLoader()
    ea, eb = load_model(store, M, "SFO", a, loader), load_model(store, M, "ATL", b, loader)
    assert loader.loads == 3 and ea.members[1] is eb.members[1]
    store.corrupt(M, "ATL", 2)
    c = compose(store, M, "LAX", ["SFO:1", "ATL:2"])
    with pytest.raises(ChecksumMismatch, match=f"ensemble {M}/LAX version {c}: member {M}/ATL version 2"):
        load_model(store, M, "LAX", c, MemberLoader())
