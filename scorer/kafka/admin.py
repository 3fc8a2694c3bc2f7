"""Topic administration: create what is missing, delete what a run made, list partitions.

One error behaviour everywhere: a topic that already exists is fine (another process may have created it
between our list and our create); any other broker failure raises :class:`~scorer.errors.BrokerUnavailable`
with one line naming the brokers and the cause. Callers for which topics are optional catch that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from scorer.config import Settings
from scorer.errors import BrokerUnavailable
from scorer.kafka.options import aiokafka_options, describe_failure


class TopicSpec(NamedTuple):
    """How to create a topic: partitions and topic configs (e.g. ``{"cleanup.policy": "compact"}``)."""

    partitions: int = 1
    config: Mapping[str, str] | None = None


async def ensure_topics(settings: Settings, topics: Mapping[str, int | TopicSpec], *,
                        replication: int = 1) -> list[str]:
    """Create the missing topics (name -> partitions or TopicSpec); returns the names created.

    Existing topics are left exactly as they are (partitions are never changed).
    """
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    specs = {name: spec if isinstance(spec, TopicSpec) else TopicSpec(int(spec)) for name, spec in topics.items()}
    created: list[str] = []
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        for name, spec in specs.items():
            if name in existing:
                continue
            new = NewTopic(name, spec.partitions, replication, topic_configs=dict(spec.config or {}))
            try:
                await admin.create_topics([new])
            except TopicAlreadyExistsError:
                continue
            created.append(name)
    return created


async def delete_topics(settings: Settings, names: Iterable[str] = (), *, prefix: str | None = None) -> list[str]:
    """Delete the named topics that exist, and with ``prefix`` every topic whose name starts with it."""
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        doomed = [n for n in dict.fromkeys(names) if n in existing]
        if prefix:
            doomed += sorted(n for n in existing if n.startswith(prefix) and n not in doomed)
        if doomed:
            await admin.delete_topics(doomed)
    return doomed


async def partitions_of(settings: Settings, topics: Iterable[str]) -> list[Any]:
    """Every TopicPartition of the topics that exist, in topic then partition order."""
    from aiokafka import TopicPartition

    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        wanted = [t for t in dict.fromkeys(topics) if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    return [TopicPartition(entry["topic"], part["partition"]) for entry in described
            for part in sorted(entry["partitions"], key=lambda p: p["partition"])]


class _admin:
    """``async with _admin(settings) as admin``: a started admin client; broker failures -> BrokerUnavailable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Any = None

    async def __aenter__(self) -> Any:
        from aiokafka.admin import AIOKafkaAdminClient

        self.client = AIOKafkaAdminClient(**aiokafka_options(self.settings))
        try:
            await self.client.start()
        except Exception as exc:
            await self.client.close()
            raise BrokerUnavailable(describe_failure(self.settings, exc)) from exc
        return self.client

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        await self.client.close()
        from aiokafka.errors import KafkaError

        if isinstance(exc, KafkaError | OSError):
            raise BrokerUnavailable(describe_failure(self.settings, exc)) from exc
