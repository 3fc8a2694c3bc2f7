"""scorer.kafka's topic administration against the real broker: one behaviour for every caller."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from scorer.config import Settings
from scorer.errors import BrokerUnavailable
from scorer.kafka import TopicSpec, delete_topics, ensure_topics, partitions_of


def test_ensure_creates_only_what_is_missing_and_delete_by_name_or_prefix(base_settings: Settings) -> None:
    prefix = f"adm-{uuid.uuid4().hex[:10]}-"
    a, b, c = f"{prefix}a", f"{prefix}b", f"{prefix}c"
    try:
        created = asyncio.run(ensure_topics(base_settings, {a: 3, b: TopicSpec(1, {"cleanup.policy": "compact"})}))
        assert created == [a, b]
        # Existing topics are left alone (partitions unchanged), only the new one is created.
        assert asyncio.run(ensure_topics(base_settings, {a: 5, c: 2})) == [c]
        parts = asyncio.run(partitions_of(base_settings, [a, c, f"{prefix}absent"]))
        assert [(tp.topic, tp.partition) for tp in parts] == [(a, 0), (a, 1), (a, 2), (c, 0), (c, 1)]
        assert asyncio.run(delete_topics(base_settings, [a, f"{prefix}absent"])) == [a]
    finally:
        left = asyncio.run(delete_topics(base_settings, prefix=prefix))
    assert sorted(left) == [b, c]


def test_an_unreachable_broker_is_one_line(base_settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once we leave: nothing listens there
    nowhere = base_settings.model_copy(update={"kafka": f"kafka://127.0.0.1:{port}"})
    with pytest.raises(BrokerUnavailable) as info:
        asyncio.run(ensure_topics(nowhere, {"never": 1}))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message
