"""Fixtures for tests against the real Cassandra and Kafka that `make up` starts.

Each test gets its own uuid-named keyspace (schema applied) and topics, dropped afterwards, so tests
never see each other's data and can run against a long-lived dev stack.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from scorer import schema
from scorer.config import Settings, load_settings
from scorer.kafka import delete_topics, ensure_topics
from scorer.store.connection import connect


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def cassandra(base_settings: Settings) -> Iterator[Session]:
    """A session on the real Cassandra; failing here means `make up` was not run (never a skip)."""
    cluster, session = connect(base_settings)
    yield session
    cluster.shutdown()


def _fresh_keyspace(base_settings: Settings, cassandra: Session) -> Iterator[Settings]:
    keyspace = f"t_{uuid.uuid4().hex[:16]}"
    fresh = base_settings.model_copy(update={"keyspace": keyspace})
    schema.apply(cassandra, fresh)
    yield fresh
    cassandra.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


@pytest.fixture
def settings(base_settings: Settings, cassandra: Session) -> Iterator[Settings]:
    """Settings pointing at a fresh keyspace with the whole schema applied; dropped afterwards."""
    yield from _fresh_keyspace(base_settings, cassandra)


@pytest.fixture(scope="module")
def ks(base_settings: Settings, cassandra: Session) -> Iterator[Settings]:
    """One fresh keyspace for a whole module (creating tables is slow); its tests keep apart by ``model``."""
    yield from _fresh_keyspace(base_settings, cassandra)


@pytest.fixture
def model() -> str:
    """A model name no other test uses."""
    return f"m{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def bootstrap(base_settings: Settings) -> str:
    """host:port list for aiokafka, from the faust-style SCORER_KAFKA URL."""
    return base_settings.kafka.removeprefix("kafka://").replace(";", ",")


@pytest.fixture
def new_topic(base_settings: Settings) -> Iterator[Callable[..., str]]:
    """Factory for uuid-named topics (deleted at teardown)."""
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        asyncio.run(ensure_topics(base_settings, {name: partitions}))
        created.append(name)
        return name

    yield make
    if created:
        asyncio.run(delete_topics(base_settings, created))
