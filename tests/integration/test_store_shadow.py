"""Store additions for the closed loop: shadow versions and retiring a canary, with their log entries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from support.store import logistic

from scorer.config import Settings
from scorer.errors import ConfigError, NotFound, StoreError
from scorer.store import CassandraModelStore, ModelStore


@pytest.fixture
def store(settings: Settings) -> Iterator[CassandraModelStore]:
    with CassandraModelStore(settings) as opened:
        yield opened


def test_shadow_set_and_cleared_without_touching_the_primary(store: CassandraModelStore) -> None:
    assert isinstance(store, ModelStore)
    model = f"m{uuid.uuid4().hex[:8]}"
    store.publish(model, "ORD", logistic(0), activate=True)
    store.publish(model, "ORD", logistic(1))
    entry = store.shadow(model, "ORD", 2, actor="retrain-worker", reason='drift {"psi": 0.4}')
    assert (entry.action, entry.from_version, entry.to_version, entry.canary_version, entry.canary_fraction) == (
        "shadow", 1, 1, 2, None)
    pointer = store.active(model)["ORD"]
    assert (pointer.version, pointer.shadow_version, pointer.canary_version) == (1, 2, None)
    cleared = store.shadow(model, "ORD", None, actor="retrain-worker", reason="retired")
    assert cleared.canary_version is None and store.active(model)["ORD"].shadow_version is None
    log = store.activations(model, "ORD")
    assert [e.action for e in log[:2]] == ["shadow", "shadow"] and log[1].reason == 'drift {"psi": 0.4}'
    with pytest.raises(StoreError, match="has no shadow"):
        store.shadow(model, "ORD", None)
    with pytest.raises(ConfigError, match="already the active version"):
        store.shadow(model, "ORD", 1)
    with pytest.raises(NotFound):
        store.shadow(model, "ORD", 9)


def test_retire_canary_keeps_the_primary_and_rollback_ignores_it(store: CassandraModelStore) -> None:
    model = f"m{uuid.uuid4().hex[:8]}"
    store.publish(model, "JFK", logistic(0), activate=True)
    store.publish(model, "JFK", logistic(1))
    store.publish(model, "JFK", logistic(2))
    store.activate(model, "JFK", 2)
    store.canary(model, "JFK", 3, 0.3)
    entry = store.retire_canary(model, "JFK", actor="retrain-worker", reason="worse")
    assert (entry.action, entry.from_version, entry.to_version, entry.canary_version, entry.canary_fraction) == (
        "retire", 2, 2, 3, 0.3)
    pointer = store.active(model)["JFK"]
    assert (pointer.version, pointer.canary_version, pointer.canary_fraction) == (2, None, None)
    with pytest.raises(StoreError, match="has no canary"):
        store.retire_canary(model, "JFK")
    assert store.rollback(model, "JFK").to_version == 1  # retire is not a primary change


def test_shadow_command_sets_and_clears(settings: Settings, store: CassandraModelStore) -> None:
    from click.testing import CliRunner

    from scorer.cli import main

    model = f"m{uuid.uuid4().hex[:8]}"
    store.publish(model, "ORD", logistic(0), activate=True)
    store.publish(model, "ORD", logistic(1))
    runner = CliRunner()
    args = ["--keyspace", settings.keyspace]
    result = runner.invoke(main, [*args, "shadow", model, "ORD", "2", "--reason", "try it"])
    assert result.exit_code == 0, result.output
    assert "shadow" in result.output and "version 2 beside version 1" in result.output
    assert store.active(model)["ORD"].shadow_version == 2
    result = runner.invoke(main, [*args, "shadow", model, "ORD", "--clear"])
    assert result.exit_code == 0 and "cleared the shadow" in result.output
    assert store.active(model)["ORD"].shadow_version is None
    result = runner.invoke(main, [*args, "shadow", model, "ORD"])
    assert result.exit_code == 1 and "error: give either VERSION or --clear" in result.output
    result = runner.invoke(main, [*args, "shadow", model, "ORD", "--clear"])
    assert result.exit_code == 1 and "has no shadow" in result.output
