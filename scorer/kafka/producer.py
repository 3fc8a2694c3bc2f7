"""The one producer factory: settings' servers and security, acks from all replicas unless told otherwise."""

from __future__ import annotations

from typing import Any

from scorer.config import Settings
from scorer.kafka.options import aiokafka_options


def new_producer(settings: Settings, **overrides: Any) -> Any:
    """An (unstarted) ``AIOKafkaProducer``; ``overrides`` are aiokafka producer options (linger_ms, acks, ...)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**{**aiokafka_options(settings), "acks": "all", **overrides})


async def start_producer(producer: Any) -> Any:
    """Start ``producer``; if it cannot start (no broker), close it before raising, so no 'Unclosed
    AIOKafkaProducer' error follows the caller's one error line."""
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer
