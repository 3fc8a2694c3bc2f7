"""The store's pure rules, without a database: names, fractions, chunking, rollback and prune planning."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.errors import ChecksumMismatch, ConfigError
from scorer.store import rules
from scorer.store.base import Activation, default_actor

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def entry(action: str, from_version: int | None, to_version: int | None, minute: int) -> Activation:
    return Activation("delay", "ORD", T0 + timedelta(minutes=minute), "me@host", action, from_version, to_version)


@pytest.mark.parametrize("name", ["delay", "Delay_2", "a", "x" * 64, "m.v-1"])
def test_good_model_names(name: str) -> None:
    assert rules.check_model(name) == name


@pytest.mark.parametrize("name", ["", " delay", "delay ", "-x", "x" * 65, "a/b", "a b", None, 3, "dé"])
def test_bad_model_names_are_refused_naming_the_value(name: object) -> None:
    with pytest.raises(ConfigError, match="model name"):
        rules.check_model(name)


@pytest.mark.parametrize("segment", ["ORD", "ORD-JFK", "New York", "x" * 128, "é", "a:b=c"])
def test_good_segments(segment: str) -> None:
    assert rules.check_segment(segment) == segment


@pytest.mark.parametrize("segment", ["", " ORD", "ORD ", "a/b", "x" * 129, "a\nb", "a\x00b", None, 7])
def test_bad_segments(segment: object) -> None:
    with pytest.raises(ConfigError, match="segment"):
        rules.check_segment(segment)


@pytest.mark.parametrize("fraction", [1e-9, 0.1, 0.5, 0.999999])
def test_fractions_strictly_inside_zero_one(fraction: float) -> None:
    assert rules.check_fraction(fraction) == fraction


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_fractions_outside_are_refused(fraction: object) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        rules.check_fraction(fraction)


@pytest.mark.parametrize("version", [0, -1, 2**31, True, 1.0, "3", None])
def test_bad_versions(version: object) -> None:
    with pytest.raises(ConfigError, match="version"):
        rules.check_version(version)


def test_chunk_size_bounds() -> None:
    assert rules.check_chunk_size(rules.DEFAULT_CHUNK_SIZE) == 256 * 1024
    for bad in (0, 1023, rules.MAX_CHUNK_SIZE + 1, 4096.0, True):
        with pytest.raises(ConfigError, match="chunk_size"):
            rules.check_chunk_size(bad)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=20_000), chunk_size=st.integers(1024, 5000))
def test_split_then_assemble_is_identity(data: bytes, chunk_size: int) -> None:
    chunks = rules.split_chunks(data, chunk_size)
    assert all(len(chunk) <= chunk_size for chunk in chunks)
    assert len(chunks) == max(1, math.ceil(len(data) / chunk_size))
    joined = rules.assemble(enumerate(chunks), n_chunks=len(chunks), size_bytes=len(data),
                            checksum=rules.sha256_hex(data), where="delay/ORD version 1")
    assert joined == data


def test_assemble_refuses_a_missing_chunk_a_flipped_byte_and_a_wrong_size() -> None:
    data = bytes(range(256)) * 40
    chunks = rules.split_chunks(data, 1024)
    digest = rules.sha256_hex(data)
    with pytest.raises(ChecksumMismatch, match=r"delay/ORD version 2: expected chunks 0..9, found 9 \(missing \[4\]\)"):
        rules.assemble([(i, c) for i, c in enumerate(chunks) if i != 4], n_chunks=10, size_bytes=len(data),
                       checksum=digest, where="delay/ORD version 2")
    flipped = list(enumerate(chunks))
    flipped[3] = (3, b"\xff" + chunks[3][1:])
    with pytest.raises(ChecksumMismatch, match="sha256"):
        rules.assemble(flipped, n_chunks=10, size_bytes=len(data), checksum=digest, where="x")
    with pytest.raises(ChecksumMismatch, match="bytes"):
        rules.assemble(enumerate(chunks), n_chunks=10, size_bytes=len(data) + 1, checksum=digest, where="x")


def test_rollback_undoes_the_last_activation() -> None:
    log = [entry("activate", 1, 2, 2), entry("activate", None, 1, 1)]  # newest first
    target = rules.rollback_target(log)
    assert target is not None and target.from_version == 1


def test_rollbacks_stack_and_canaries_do_not_count() -> None:
    log = [
        entry("rollback", 3, 2, 6),
        entry("canary", 3, 3, 5),
        entry("activate", 2, 3, 4),
        entry("release", 1, 2, 3),
        entry("activate", None, 1, 1),
    ]
    target = rules.rollback_target(log)
    assert target is not None and target.action == "release" and target.from_version == 1
    log.insert(0, entry("rollback", 2, 1, 7))
    target = rules.rollback_target(log)
    assert target is not None and target.from_version is None  # back at the very first activation
    assert rules.rollback_target([entry("canary", 1, 1, 1)]) is None
    unchanged = [entry("release", 2, 2, 3), entry("activate", 1, 2, 2), entry("activate", None, 1, 1)]
    target = rules.rollback_target(unchanged)
    assert target is not None and target.from_version == 1
    assert rules.rollback_target([]) is None


def test_prune_keeps_the_newest_and_the_protected() -> None:
    assert rules.prune_plan([9, 8, 7, 6, 5, 4], protected=[4, None, 7], keep=2) == [6, 5]
    assert rules.prune_plan([3, 2, 1], protected=[], keep=5) == []
    assert rules.prune_plan([1, 3, 2], protected=[], keep=1) == [2, 1]
    with pytest.raises(ConfigError, match="keep"):
        rules.prune_plan([1], protected=[], keep=0)


def test_json_columns_are_canonical_and_refuse_non_json() -> None:
    assert rules.to_json({"b": 1, "a": 2.5}, "metrics") == '{"a":2.5,"b":1}'
    assert rules.to_json(None, "stats") == "{}"
    with pytest.raises(ConfigError, match="metrics must be JSON"):
        rules.to_json({"a": object()}, "metrics")
    with pytest.raises(ConfigError, match="must be a dict"):
        rules.to_json([1, 2], "stats")  # type: ignore[arg-type]


def test_default_actor_is_user_at_host() -> None:
    user, _, host = default_actor().partition("@")
    assert user and host


# ---------------------------------------------------------------- changes made outside scorer

def test_outside_change_tells_scorer_writes_from_raw_ones() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    own = rules.epoch_micros(at)
    assert own == 1767323045678000
    # scorer writes every column with its updated_at as the write time
    assert rules.outside_change((own, None, None, own - 5), own, at) is None
    # a pointer column newer than updated_at: certainly someone else's
    assert rules.outside_change((own + 17, None, None, None), own, at) == (own + 17, True)
    # updated_at written at a time other than its value: a raw write of it too, or an old scorer write
    assert rules.outside_change((own + 3, None, None, None), own + 3, at) == (own + 3, False)
    assert rules.outside_change((None, None, None, None), None, None) is None


def test_memory_store_logs_a_raw_pointer_write_once_and_rollback_undoes_it() -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from scorer.store.memory import MemoryModelStore
    from trainers import export

    X = np.random.default_rng(0).normal(size=(40, 3))
    weights = export(LogisticRegression().fit(X, X[:, 0] > 0), ["a", "b", "c"])
    store = MemoryModelStore()
    for _ in range(3):
        store.publish("m", "A", weights)
    store.activate("m", "A", 1)
    store.activate("m", "A", 2)
    store.set_pointer("m", "A", 3)
    assert store.active("m")["A"].outside_at is not None
    assert store.active("m")["A"].outside_at is not None
    log = store.activations("m", "A")
    assert [(e.action, e.from_version, e.to_version) for e in log] == [
        ("external", 2, 3), ("activate", 1, 2), ("activate", None, 1)]
    assert log[0].actor == rules.OUTSIDE_ACTOR
    assert store.rollback("m", "A").to_version == 2
    assert store.active("m")["A"].outside_at is None
