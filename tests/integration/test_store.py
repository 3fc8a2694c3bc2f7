"""The Cassandra model store against the real Cassandra: round trips, checksums, pointers and their log."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cassandra.cluster import Session
from support.store import big_mlp, logistic, snapshot, weights_for_arch

from scorer.config import Settings
from scorer.errors import ChecksumMismatch, ConfigError, InvalidWeights, NotFound, StoreError, StoreUnavailable
from scorer.models import ModelWeights, archs, build
from scorer.store import CassandraModelStore, ModelStore


@pytest.fixture(scope="module")
def store(ks: Settings) -> Iterator[CassandraModelStore]:
    with CassandraModelStore(ks) as opened:
        yield opened


def test_store_implements_the_protocol(store: CassandraModelStore) -> None:
    assert isinstance(store, ModelStore)


@pytest.mark.parametrize("arch", archs())
def test_every_registered_arch_round_trips_bit_identical(store: CassandraModelStore, arch: str, model: str) -> None:
    weights = weights_for_arch(arch)
    version = store.publish(model, arch, weights, metrics={"auc": 0.75}, stats={"n_rows": 240}, author="tester")
    assert version == 1
    loaded = store.load(model, arch, version)
    assert loaded.to_bytes() == weights.to_bytes()
    assert loaded.checksum() == weights.checksum()
    assert set(loaded.arrays) == set(weights.arrays)
    for name, array in weights.arrays.items():
        assert loaded.arrays[name].dtype == array.dtype and loaded.arrays[name].tobytes() == array.tobytes()
    X = np.random.default_rng(5).normal(size=(16, len(weights.feature_names)))
    assert build(loaded).predict(X).tobytes() == build(weights).predict(X).tobytes()
    info = store.version_info(model, arch, version)
    assert info is not None
    assert (info.arch, info.feature_names, info.classes) == (weights.arch, weights.feature_names, weights.classes)
    assert info.metrics == {"auc": 0.75} and info.stats == {"n_rows": 240} and info.author == "tester"
    assert info.checksum == weights.checksum() and info.size_bytes == len(weights.to_bytes())
    assert info.created_at is not None and info.created_at.tzinfo is not None


@pytest.mark.slow
def test_ten_megabyte_weights_round_trip_in_chunks(store: CassandraModelStore, cassandra: Session,
                                                   ks: Settings, model: str) -> None:
    weights = big_mlp()
    size = len(weights.to_bytes())
    assert size > 10_000_000
    version = store.publish(model, "ALL", weights)
    info = store.version_info(model, "ALL", version)
    assert info is not None and info.n_chunks == math.ceil(size / (256 * 1024)) and info.size_bytes == size
    cells = cassandra.execute(f"SELECT chunk, data FROM {ks.keyspace}.model_chunks "
                              f"WHERE model = '{model}' AND segment = 'ALL' AND version = %s", (version,))
    lengths = [len(row.data) for row in cells]
    assert len(lengths) == info.n_chunks and max(lengths) <= 256 * 1024
    assert store.load(model, "ALL", version).to_bytes() == weights.to_bytes()


def test_chunk_size_is_configurable(ks: Settings, cassandra: Session, model: str) -> None:
    weights = logistic(1, n_features=300)
    with CassandraModelStore(ks, chunk_size=1024) as small:
        version = small.publish(model, "S", weights)
        info = small.version_info(model, "S", version)
        assert info is not None and info.n_chunks == math.ceil(len(weights.to_bytes()) / 1024) > 3
        assert small.load(model, "S", version) == weights
    with pytest.raises(ConfigError, match="chunk_size"):
        CassandraModelStore(ks, chunk_size=10, session=cassandra)


def test_corrupted_chunk_is_detected_at_load(ks: Settings, cassandra: Session, model: str) -> None:
    weights = logistic(2, n_features=300)
    with CassandraModelStore(ks, chunk_size=1024) as store:
        version = store.publish(model, "ORD", weights, activate=True)
        table = f"{ks.keyspace}.model_chunks"
        where = f"WHERE model = '{model}' AND segment = 'ORD' AND version = %s AND chunk = %s"
        original = cassandra.execute(f"SELECT data FROM {table} {where}", (version, 2)).one().data
        flipped = bytes([original[0] ^ 0x01]) + original[1:]
        cassandra.execute(f"UPDATE {table} SET data = %s {where}", (flipped, version, 2))
        with pytest.raises(ChecksumMismatch, match=f"{model}/ORD version {version}: .*sha256"):
            store.load(model, "ORD")
        result = store.load_many([(model, "ORD", version)])[(model, "ORD", version)]
        assert isinstance(result, ChecksumMismatch)
        cassandra.execute(f"UPDATE {table} SET data = %s {where}", (original, version, 2))
        assert store.load(model, "ORD") == weights
        cassandra.execute(f"DELETE FROM {table} {where}", (version, 3))
        with pytest.raises(ChecksumMismatch, match=r"missing \[3\]"):
            store.load(model, "ORD", version)


def test_version_row_is_the_commit_point(store: CassandraModelStore, cassandra: Session, ks: Settings,
                                         model: str) -> None:
    """Chunks without a complete version row (a publish in progress or crashed) are never served."""
    weights = logistic(3)
    version = store.publish(model, "ORD", weights)
    cassandra.execute(f"UPDATE {ks.keyspace}.model_versions SET status = 'writing' "
                      f"WHERE model = '{model}' AND segment = 'ORD' AND version = %s", (version,))
    assert store.version_info(model, "ORD", version) is None
    assert store.versions(model, "ORD") == []
    with pytest.raises(NotFound, match=f"{model}/ORD version {version}"):
        store.load(model, "ORD", version)
    with pytest.raises(NotFound, match="no such complete version"):
        store.activate(model, "ORD", version)


def test_versions_are_listed_newest_first(store: CassandraModelStore, model: str) -> None:
    for seed in range(3):
        store.publish(model, "ORD", logistic(seed))
    store.publish(model, "JFK", logistic(9))
    assert [v.version for v in store.versions(model, "ORD")] == [3, 2, 1]
    assert [(v.segment, v.version) for v in store.versions(model)] == [("JFK", 1), ("ORD", 3), ("ORD", 2),
                                                                         ("ORD", 1)]
    assert store.version_info(model, "ORD", 7) is None
    assert store.versions("nosuch") == []


def test_invalid_weights_are_refused_before_any_row(store: CassandraModelStore, cassandra: Session,
                                                    ks: Settings, model: str) -> None:
    good = logistic(4)
    nan_coef = {**good.arrays, "coef": np.where(np.arange(good.arrays["coef"].size).reshape(
        good.arrays["coef"].shape) == 0, np.nan, good.arrays["coef"])}
    bad = [
        ModelWeights(good.arch, good.feature_names, nan_coef, good.classes, good.metadata),
        ModelWeights(good.arch, good.feature_names, {**good.arrays, "coef": np.ones((1, 7))}, good.classes,
                     good.metadata),
        ModelWeights("no-such-arch", good.feature_names, good.arrays, good.classes, good.metadata),
    ]
    before = snapshot(cassandra, ks.keyspace, model)
    assert all(rows == [] for rows in before.values())
    for weights in bad:
        with pytest.raises(InvalidWeights, match=f"{model}/ORD"):
            store.publish(model, "ORD", weights, activate=True)
    with pytest.raises(InvalidWeights, match=f"{model}/B"):  # one bad item refuses the whole bulk publish
        store.publish_many(model, [("A", good, None, None), ("B", bad[0], None, None)], activate=True)
    with pytest.raises(ConfigError, match="metrics must be JSON"):
        store.publish(model, "ORD", good, metrics={"auc": object()})
    for name in ("", "a/b", "x" * 200):
        with pytest.raises(ConfigError):
            store.publish(model, name, good)
        with pytest.raises(ConfigError):
            store.publish(name, "ORD", good)
    assert snapshot(cassandra, ks.keyspace, model) == before


def test_refused_activations_write_nothing(store: CassandraModelStore, cassandra: Session,
                                           ks: Settings, model: str) -> None:
    store.publish(model, "ORD", logistic(0), activate=True)
    store.publish(model, "ORD", logistic(1))
    before = snapshot(cassandra, ks.keyspace, model)
    missing = rf"cannot activate {model}/ORD version 9: no such complete version \(newest is 2\)"
    with pytest.raises(NotFound, match=missing):
        store.activate(model, "ORD", 9)
    with pytest.raises(NotFound, match="unknown model 'nosuch'"):
        store.activate("nosuch", "ORD", 1)
    with pytest.raises(NotFound, match=f"segment 'LAX' of {model} has no versions"):
        store.activate(model, "LAX", 1)
    for fraction in (0.0, 1.0, -0.2, 1.5, math.nan, math.inf):
        with pytest.raises(ConfigError, match="fraction"):
            store.canary(model, "ORD", 2, fraction)
    with pytest.raises(NotFound):
        store.canary(model, "ORD", 9, 0.1)
    with pytest.raises(ConfigError, match="already the active version"):
        store.canary(model, "ORD", 1, 0.1)
    with pytest.raises(StoreError, match="no canary"):
        store.promote(model, "ORD")
    with pytest.raises(NotFound, match=f"release {model}: 1 of 2 versions"):
        store.release(model, {"ORD": 2, "JFK": 1})
    with pytest.raises(ConfigError):
        store.release(model, {})
    assert snapshot(cassandra, ks.keyspace, model) == before


def test_rollback_after_two_activations_lands_on_the_first(store: CassandraModelStore, model: str) -> None:
    for seed in range(3):
        store.publish(model, "ORD", logistic(seed))
    store.activate(model, "ORD", 1, actor="alice", reason="first")
    store.activate(model, "ORD", 2, actor="bob", reason="better auc")
    back = store.rollback(model, "ORD", actor="carol", reason="alerts")
    assert (back.action, back.from_version, back.to_version, back.actor, back.reason) == (
        "rollback", 2, 1, "carol", "alerts")
    assert store.active(model, "ORD")["ORD"].version == 1
    assert store.load(model, "ORD") == logistic(0)
    with pytest.raises(StoreError, match="version 1 was its first activation"):
        store.rollback(model, "ORD")
    # Rollbacks stack: 1 -> 2 -> 3, then back to 2, then back to 1.
    store.activate(model, "ORD", 2)
    store.activate(model, "ORD", 3)
    assert store.rollback(model, "ORD").to_version == 2
    assert store.rollback(model, "ORD").to_version == 1
    log = store.activations(model, "ORD")
    assert [(a.action, a.from_version, a.to_version) for a in log] == [
        ("rollback", 2, 1), ("rollback", 3, 2), ("activate", 2, 3), ("activate", 1, 2), ("rollback", 2, 1),
        ("activate", 1, 2), ("activate", None, 1)]
    assert log[-1].actor == "alice" and log[-1].reason == "first" and log[0].at.tzinfo is not None
    with pytest.raises(NotFound, match="no activation to undo"):
        store.rollback(model, "JFK")


def test_canary_then_promote(store: CassandraModelStore, model: str) -> None:
    store.publish(model, "ORD", logistic(0), activate=True)
    store.publish(model, "ORD", logistic(1))
    entry = store.canary(model, "ORD", 2, 0.25, actor="dana", reason="try v2")
    assert (entry.action, entry.from_version, entry.to_version, entry.canary_version, entry.canary_fraction) == (
        "canary", 1, 1, 2, 0.25)
    pointer = store.active(model)["ORD"]
    assert (pointer.version, pointer.canary_version, pointer.canary_fraction) == (1, 2, 0.25)
    promoted = store.promote(model, "ORD")
    assert (promoted.action, promoted.from_version, promoted.to_version, promoted.canary_version) == (
        "promote", 1, 2, None)
    pointer = store.active(model)["ORD"]
    assert (pointer.version, pointer.canary_version, pointer.canary_fraction) == (2, None, None)
    assert store.rollback(model, "ORD").to_version == 1  # a promotion is undone like an activation


def test_activating_the_canary_version_clears_the_canary(store: CassandraModelStore, model: str) -> None:
    for seed in range(3):
        store.publish(model, "ORD", logistic(seed))
    store.activate(model, "ORD", 1)
    store.canary(model, "ORD", 2, 0.1)
    store.activate(model, "ORD", 3)  # another version: the canary stays
    assert store.active(model, "ORD")["ORD"].canary_version == 2
    store.activate(model, "ORD", 2)
    pointer = store.active(model, "ORD")["ORD"]
    assert (pointer.version, pointer.canary_version, pointer.canary_fraction) == (2, None, None)


def test_raw_cql_update_is_seen_by_active(store: CassandraModelStore, cassandra: Session, ks: Settings,
                                          model: str) -> None:
    for seed in range(3):
        store.publish(model, "ORD", logistic(seed))
    store.activate(model, "ORD", 1)
    cassandra.execute(f"UPDATE {ks.keyspace}.active_models SET version = 3 "
                      f"WHERE model = '{model}' AND segment = 'ORD';")
    assert store.active(model)["ORD"].version == 3
    assert store.load(model, "ORD") == logistic(2)
    assert model in store.models()
    # A pointer made entirely by hand, for a segment never activated through the store, is read too.
    cassandra.execute(f"INSERT INTO {ks.keyspace}.active_models (model, segment, version, shadow_version) "
                      f"VALUES ('{model}', 'HAND', 7, 8)")
    pointer = store.active(model)["HAND"]
    assert (pointer.version, pointer.shadow_version, pointer.canary_version) == (7, 8, None)


def test_release_switches_every_segment_and_logs_one_release(store: CassandraModelStore, model: str) -> None:
    items = [(seg, logistic(0), None, None) for seg in ("A", "B", "C")]
    assert store.publish_many(model, items, activate=True) == {"A": 1, "B": 1, "C": 1}
    assert store.publish_many(model, [(seg, logistic(1), None, None) for seg in ("A", "B")]) == {"A": 2, "B": 2}
    release_id = store.release(model, {"A": 2, "B": 2}, actor="erin", reason="weekly")
    assert {seg: p.version for seg, p in store.active(model).items()} == {"A": 2, "B": 2, "C": 1}
    log = [a for a in store.activations(model) if a.release_id == release_id]
    assert sorted((a.segment, a.action, a.from_version, a.to_version, a.actor) for a in log) == [
        ("A", "release", 1, 2, "erin"), ("B", "release", 1, 2, "erin")]
    assert store.rollback(model, "A").to_version == 1  # a release is undone per segment like an activation
    assert store.latest(model) == {"A": 2, "B": 2, "C": 1}


def test_publish_many_and_load_many(store: CassandraModelStore, model: str) -> None:
    seen: list[tuple[str, int, int]] = []
    items = [(f"s{i:02d}", logistic(i % 3), {"auc": 0.5 + i / 100}, None) for i in range(40)]
    versions = store.publish_many(model, items, activate=True, reason="bulk",
                                  progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert versions == {f"s{i:02d}": 1 for i in range(40)}
    assert {phase for phase, _, _ in seen} >= {"claim", "chunks", "versions", "activate"}
    assert all(done <= total for _, done, total in seen)
    active = store.active(model)
    assert len(active) == 40 and {p.version for p in active.values()} == {1}
    keys = [(model, seg, 1) for seg in versions] + [(model, "s00", 5), (model, "nope", 1), (model, "a/b", 1)]
    loaded = store.load_many(iter(keys))  # any iterable, a generator too
    assert list(loaded) == keys
    for i in range(40):
        assert loaded[(model, f"s{i:02d}", 1)] == logistic(i % 3)
    assert isinstance(loaded[(model, "s00", 5)], NotFound)
    assert isinstance(loaded[(model, "nope", 1)], NotFound)
    assert isinstance(loaded[(model, "a/b", 1)], ConfigError)
    with pytest.raises(ConfigError, match="given twice"):
        store.publish_many(model, [("x", logistic(0), None, None), ("x", logistic(1), None, None)])


def test_prune_keeps_newest_and_everything_live(store: CassandraModelStore, cassandra: Session,
                                                ks: Settings, model: str) -> None:
    for seed in range(6):
        store.publish(model, "ORD", logistic(seed))
    store.activate(model, "ORD", 1)
    store.activate(model, "ORD", 2)  # rollback target: 1
    store.canary(model, "ORD", 3, 0.1)
    store.publish(model, "JFK", logistic(0))
    # Keep the newest (6); 1 is the rollback target, 2 active, 3 the canary: only 4 and 5 go.
    assert store.prune(model, keep=1) == [("ORD", 4), ("ORD", 5)]
    assert [v.version for v in store.versions(model, "ORD")] == [6, 3, 2, 1]
    chunks = cassandra.execute(f"SELECT version FROM {ks.keyspace}.model_chunks WHERE model = '{model}' "
                               "AND segment = 'ORD' AND version IN (4, 5) ALLOW FILTERING").all()
    assert chunks == []
    assert store.load(model, "ORD", 6) == logistic(5)
    assert store.prune(model, "ORD", keep=1) == []
    # Versions are never reused after a prune.
    assert store.publish(model, "ORD", logistic(0)) == 7
    with pytest.raises(ConfigError, match="keep"):
        store.prune(model, keep=0)


def test_prune_removes_chunks_of_a_crashed_publish(store: CassandraModelStore, cassandra: Session,
                                                   ks: Settings, model: str) -> None:
    """A publisher that died after claiming version 2 and writing chunks, before the version row."""
    store.publish(model, "ORD", logistic(0), activate=True)
    keyspace = ks.keyspace
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    claimed = cassandra.execute(f"INSERT INTO {keyspace}.version_claims (model, segment, version, owner, claimed_at) "
                                f"VALUES ('{model}', 'ORD', 2, %s, %s) IF NOT EXISTS", (uuid.uuid4(), long_ago))
    assert claimed.was_applied
    cassandra.execute(f"INSERT INTO {keyspace}.model_chunks (model, segment, version, chunk, data) "
                      f"VALUES ('{model}', 'ORD', 2, 0, 0x00ff)")
    assert store.versions(model, "ORD")[0].version == 1  # never visible
    assert store.prune(model, keep=5) == [("ORD", 2)]
    assert cassandra.execute(f"SELECT * FROM {keyspace}.model_chunks WHERE model = '{model}' AND segment = 'ORD' "
                             "AND version = 2").one() is None
    assert store.prune(model, keep=5) == []
    assert store.publish(model, "ORD", logistic(1)) == 3


def test_activations_of_a_whole_model_are_merged_newest_first(store: CassandraModelStore, model: str) -> None:
    store.publish(model, "ORD", logistic(0), activate=True)
    store.publish(model, "JFK", logistic(0), activate=True)
    store.publish(model, "ORD", logistic(1), activate=True)
    log = store.activations(model)
    assert [(a.segment, a.to_version) for a in log] == [("ORD", 2), ("JFK", 1), ("ORD", 1)]
    assert [a.segment for a in store.activations(model, limit=1)] == ["ORD"]
    assert store.activations("nosuch") == []


def test_unreachable_cassandra_is_unavailable_naming_hosts(ks: Settings) -> None:
    dead = ks.model_copy(update={"cassandra_port": 1})
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        CassandraModelStore(dead)


def test_missing_tables_are_a_store_error_not_not_found(base_settings: Settings, cassandra: Session) -> None:
    keyspace = f"t_{uuid.uuid4().hex[:16]}"
    cassandra.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', "
                      "'replication_factor': 1}")
    try:
        with pytest.raises(StoreError, match="scorer schema apply") as caught:
            CassandraModelStore(base_settings.model_copy(update={"keyspace": keyspace}))
        assert not isinstance(caught.value, NotFound)
    finally:
        cassandra.execute(f"DROP KEYSPACE {keyspace}", timeout=60)


def test_store_on_a_shared_session_leaves_it_open(ks: Settings, cassandra: Session, model: str) -> None:
    with CassandraModelStore(ks, session=cassandra) as shared:
        shared.publish(model, "ORD", logistic(0))
    assert cassandra.execute("SELECT release_version FROM system.local").one() is not None


def test_a_timed_out_claim_is_settled_by_a_serial_read(store: CassandraModelStore, cassandra: Session, ks: Settings,
                                                       model: str) -> None:
    """What publish does after an LWT timeout: the claim's owner, read at LOCAL_SERIAL, says who won."""
    owner = uuid.uuid4()
    cassandra.execute(f"INSERT INTO {ks.keyspace}.version_claims (model, segment, version, owner, claimed_at) "
                      "VALUES (%s, 'ORD', 1, %s, toTimestamp(now())) IF NOT EXISTS", (model, owner))
    assert store._claim_holder(model, "ORD", 1) == owner
    assert store._claim_holder(model, "ORD", 2) is None
    assert store.publish(model, "ORD", logistic(0)) == 2  # the claimed number is skipped


def test_a_failing_read_is_an_error_never_not_found(settings: Settings, cassandra: Session) -> None:
    with CassandraModelStore(settings) as broken:
        broken.publish("delay", "ORD", logistic(0), activate=True)
        cassandra.execute(f"DROP TABLE {settings.keyspace}.model_versions", timeout=60)
        with pytest.raises(StoreError, match="delay/ORD version 1") as caught:
            broken.version_info("delay", "ORD", 1)
        assert not isinstance(caught.value, NotFound)
        result = broken.load_many([("delay", "ORD", 1)])[("delay", "ORD", 1)]
        assert isinstance(result, StoreError) and not isinstance(result, NotFound)
        with pytest.raises(StoreError) as caught:
            broken.load("delay", "ORD")
        assert not isinstance(caught.value, NotFound)


def test_publish_then_failed_activation_says_the_version_exists(settings: Settings, cassandra: Session) -> None:
    with CassandraModelStore(settings) as store:
        cassandra.execute(f"DROP TABLE {settings.keyspace}.activations", timeout=60)
        with pytest.raises(StoreError, match="delay/ORD version 1 was published but not activated"):
            store.publish("delay", "ORD", logistic(0), activate=True)
        assert [info.version for info in store.versions("delay", "ORD")] == [1]
        assert store.active("delay") == {}  # the pointer and its log entry are one logged batch
