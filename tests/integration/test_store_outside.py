"""Pointer changes made outside scorer (raw CQL) on the real Cassandra: found by readers, logged once, undone
by rollback, shown by ``scorer activations``."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from cassandra.cluster import Session
from click.testing import CliRunner
from support.store import logistic

from scorer.cli import main
from scorer.config import Settings
from scorer.store import CassandraModelStore


@pytest.fixture
def store(settings: Settings) -> Iterator[CassandraModelStore]:
    with CassandraModelStore(settings) as opened:
        yield opened


def _publish(store: CassandraModelStore, model: str, segment: str, n: int) -> None:
    for _ in range(n):
        store.publish(model, segment, logistic())


def _raw(cassandra: Session, settings: Settings, cql: str, *params: object) -> None:
    cassandra.execute(cql.format(ks=settings.keyspace), params)


def test_rollback_after_a_raw_update_returns_to_the_version_before_it(
        store: CassandraModelStore, cassandra: Session, settings: Settings, model: str) -> None:
    _publish(store, model, "ORD", 3)
    store.activate(model, "ORD", 1)
    store.activate(model, "ORD", 2)
    _raw(cassandra, settings, "UPDATE {ks}.active_models SET version = 3 WHERE model = %s AND segment = %s",
         model, "ORD")
    back = store.rollback(model, "ORD", actor="oncall")
    assert (back.from_version, back.to_version) == (3, 2)
    log = store.activations(model, "ORD")
    assert [(e.action, e.from_version, e.to_version) for e in log] == [
        ("rollback", 3, 2), ("external", 2, 3), ("activate", 1, 2), ("activate", None, 1)]
    outside = log[1]
    assert outside.actor == "outside scorer" and "WRITETIME" in (outside.reason or "")
    assert store.rollback(model, "ORD").to_version == 1  # rollbacks still stack across the outside change


def test_an_outside_change_is_logged_once_however_many_readers_find_it(
        store: CassandraModelStore, cassandra: Session, settings: Settings, model: str) -> None:
    _publish(store, model, "A", 2)
    store.activate(model, "A", 1)
    _raw(cassandra, settings, "UPDATE {ks}.active_models SET version = 2 WHERE model = %s AND segment = %s",
         model, "A")
    readers = [CassandraModelStore(settings) for _ in range(3)]
    try:
        seen = [reader.active(model)["A"] for reader in readers for _ in range(2)]
    finally:
        for reader in readers:
            reader.close()
    assert {pointer.version for pointer in seen} == {2}
    assert all(pointer.outside_at is not None for pointer in seen)
    assert len({pointer.outside_at for pointer in seen}) == 1
    rows = list(cassandra.execute(f"SELECT action FROM {settings.keyspace}.activations WHERE model = %s "
                                  "AND segment = %s", (model, "A")))
    assert sorted(row.action for row in rows) == ["activate", "external"]


def test_scorer_own_changes_are_never_taken_for_outside_ones(store: CassandraModelStore, model: str) -> None:
    _publish(store, model, "A", 3)
    store.activate(model, "A", 1)
    store.canary(model, "A", 2, 0.2)
    store.shadow(model, "A", 3)
    store.promote(model, "A")
    store.release(model, {"A": 3})
    pointer = store.active(model)["A"]
    assert pointer.outside_at is None
    assert "external" not in {entry.action for entry in store.activations(model, "A")}


def test_a_raw_update_that_also_sets_updated_at_is_still_found(
        store: CassandraModelStore, cassandra: Session, settings: Settings, model: str) -> None:
    _publish(store, model, "A", 2)
    store.activate(model, "A", 1)
    _raw(cassandra, settings, "UPDATE {ks}.active_models SET version = 2, updated_at = toTimestamp(now()), "
         "updated_by = 'dba' WHERE model = %s AND segment = %s", model, "A")
    assert store.active(model)["A"].outside_at is not None
    assert [e.action for e in store.activations(model, "A")] == ["external", "activate"]


def test_a_raw_canary_is_logged_with_its_fraction(
        store: CassandraModelStore, cassandra: Session, settings: Settings, model: str) -> None:
    _publish(store, model, "A", 2)
    store.activate(model, "A", 1)
    _raw(cassandra, settings, "UPDATE {ks}.active_models SET canary_version = 2, canary_fraction = 0.25 "
         "WHERE model = %s AND segment = %s", model, "A")
    entry = store.activations(model, "A")[0]
    assert (entry.action, entry.from_version, entry.to_version, entry.canary_version, entry.canary_fraction) == (
        "external", 1, 1, 2, 0.25)
    # A canary change leaves the primary alone, so rollback still undoes the activation before it.
    with pytest.raises(Exception, match="first activation"):
        store.rollback(model, "A")


def test_cli_activations_marks_outside_changes(
        store: CassandraModelStore, cassandra: Session, settings: Settings, model: str) -> None:
    _publish(store, model, "A", 2)
    store.activate(model, "A", 1, actor="alice")
    _raw(cassandra, settings, "UPDATE {ks}.active_models SET version = 2 WHERE model = %s AND segment = %s",
         model, "A")
    runner = CliRunner()
    result = runner.invoke(main, ["--keyspace", settings.keyspace, "activations", model, "A", "--json"])
    assert result.exit_code == 0, result.output
    entries = orjson.loads(result.stdout)
    assert [(e["action"], e["actor"], e["to_version"]) for e in entries] == [
        ("external", "outside scorer", 2), ("activate", "alice", 1)]
    table = runner.invoke(main, ["--keyspace", settings.keyspace, "activations", model, "A"])
    assert table.exit_code == 0 and "outside scorer" in table.output and "external" in table.output
