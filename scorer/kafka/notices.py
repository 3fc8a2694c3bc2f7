"""The ``model-changes`` topic: small JSON notices that make pointer changes reach workers faster than a poll.

A notice ``{"model", "segment", "action", "version", "at"}`` is only a hint: workers re-read the model's
``active_models`` partition when one arrives, and the poll catches every change anyway (a lost notice costs
at most one poll interval). So publishing is best effort for the CLI, and workers read the topic with a
plain consumer outside any consumer group (every worker must see every notice), starting at the end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from scorer.config import Settings
from scorer.kafka.options import aiokafka_options, describe_failure
from scorer.kafka.producer import new_producer, start_producer

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "model-changes"


class Notice(BaseModel):
    """One pointer change, as published on ``model-changes``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str
    segment: str | None = None
    """None (or absent) for a change that touches many segments at once, e.g. a release."""
    action: str
    version: int | None = None
    at: str

    def names(self) -> tuple[str, int] | None:
        """The (segment, version) this notice is about, when it names both (a worker prefetches that version)."""
        return None if self.segment is None or self.version is None else (self.segment, self.version)

    def sent_at(self) -> float | None:
        """``at`` as a POSIX time (None if it is not an ISO time with a zone)."""
        try:
            when = datetime.fromisoformat(self.at)
        except ValueError:
            return None
        return when.timestamp() if when.tzinfo is not None else None


def notice_fields(model: str, segment: str | None, action: str, version: int | None,
                  at: datetime | None = None) -> dict[str, object]:
    """The JSON object of one notice (for publishers that serialise it themselves)."""
    at = at or datetime.now(UTC)
    return {"model": model, "segment": segment, "action": action, "version": version, "at": at.isoformat()}


def notice_key(model: str) -> bytes:
    """Notices are keyed by model, so one model's notices stay in order on one partition."""
    return model.encode()


def encode_notice(model: str, segment: str | None, action: str, version: int | None,
                  at: datetime | None = None) -> bytes:
    return orjson.dumps(notice_fields(model, segment, action, version, at))


def decode_notice(raw: bytes | None) -> Notice | None:
    """The notice in a message, or None for anything that is not one (logged, never raised)."""
    if not raw:
        return None
    try:
        return Notice.model_validate(orjson.loads(raw))
    except Exception as exc:  # noqa: BLE001 - a bad notice is ignored; the poll still catches the change
        log.warning("ignoring a malformed model-changes notice (%s): %r", type(exc).__name__, raw[:200])
        return None


async def publish_notice_async(settings: Settings, model: str, segment: str | None, action: str,
                               version: int | None, *, topic: str = DEFAULT_TOPIC, timeout: float = 5.0) -> None:
    """Publish one notice and wait for the broker's acknowledgement (raises on failure or timeout)."""
    producer = new_producer(settings, request_timeout_ms=int(timeout * 1000))

    async def run() -> None:
        await start_producer(producer)
        try:
            await producer.send_and_wait(topic, encode_notice(model, segment, action, version),
                                        key=notice_key(model))
        finally:
            await producer.stop()

    await asyncio.wait_for(run(), timeout)


def publish_notice(settings: Settings, model: str, segment: str | None, action: str, version: int | None, *,
                   topic: str = DEFAULT_TOPIC, timeout: float = 5.0) -> None:
    """Blocking :func:`publish_notice_async` for the CLI (raises on failure; callers only warn)."""
    asyncio.run(publish_notice_async(settings, model, segment, action, version, topic=topic, timeout=timeout))


def _unsent(settings: Settings, exc: BaseException) -> str:
    reason = "timed out" if isinstance(exc, TimeoutError) else describe_failure(settings, exc)
    return (f"the change is live, but its {settings.changes_topic!r} notice was not sent ({reason}); "
            f"workers pick it up at their next poll")


def try_publish_notice(settings: Settings, model: str, segment: str | None, action: str, version: int | None,
                       *, timeout: float = 5.0) -> str | None:
    """Publish on ``settings.changes_topic``; None when it worked, else a one-line warning (never raises).

    For commands that just changed a pointer: the change is done and workers' polls will see it, so a
    broker problem must not fail the command, only be said.
    """
    try:
        publish_notice(settings, model, segment, action, version, topic=settings.changes_topic, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported as a warning line by the caller
        return _unsent(settings, exc)
    return None


Notify = Callable[[str, "str | None", str, "int | None"], "str | None"]


@contextmanager
def announce(settings: Settings, *, timeout: float = 5.0) -> Iterator[Notify]:
    """A notifier whose producer connects in the background from now on, while the caller changes the pointer.

    ``notify(model, segment, action, version)`` then only sends (about a millisecond on a warm connection
    instead of a new client's connect and metadata round trips after the write) and answers like
    :func:`try_publish_notice`: None, or the one-line warning. Call it once the change is written.
    """
    started = threading.Event()
    parts: dict[str, Any] = {}

    async def connect() -> Any:
        producer = new_producer(settings, request_timeout_ms=int(timeout * 1000))
        await asyncio.wait_for(start_producer(producer), timeout)
        return producer

    async def main() -> None:
        """The thread's loop: connect, wait to be closed, stop the producer; asyncio.run then cancels and
        awaits whatever the client left behind, so no task is destroyed pending."""
        parts["loop"], parts["closed"] = asyncio.get_running_loop(), asyncio.Event()
        parts["connecting"] = connecting = asyncio.ensure_future(connect())
        started.set()
        await parts["closed"].wait()
        if not connecting.done():
            connecting.cancel()  # start_producer closes what it opened
        (producer,) = await asyncio.gather(connecting, return_exceptions=True)
        if not isinstance(producer, BaseException):
            await producer.stop()

    async def send(model: str, segment: str | None, action: str, version: int | None) -> None:
        producer = await asyncio.shield(parts["connecting"])
        await producer.send_and_wait(settings.changes_topic, encode_notice(model, segment, action, version),
                                     key=notice_key(model))

    def notify(model: str, segment: str | None, action: str, version: int | None) -> str | None:
        future = asyncio.run_coroutine_threadsafe(send(model, segment, action, version), parts["loop"])
        try:
            future.result(timeout)
        except Exception as exc:  # noqa: BLE001 - a warning line for the caller (TimeoutError: "timed out")
            future.cancel()
            return _unsent(settings, exc)
        return None

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="notice-producer", daemon=True)
    thread.start()
    started.wait(30)
    try:
        yield notify
    finally:
        parts["loop"].call_soon_threadsafe(parts["closed"].set)
        thread.join(timeout + 5.0)


async def follow_notices(settings: Settings, topic: str, on_notice: Callable[[Notice], Awaitable[None]],
                         *, stopped: asyncio.Event | None = None, ready: asyncio.Event | None = None,
                         retry_delay: float = 2.0) -> None:
    """Read ``topic`` from its end, with no consumer group, calling ``on_notice`` for each notice, forever.

    Broker errors are logged and retried (the poll covers the gap); ``on_notice`` failures are logged.
    ``ready`` is set once the consumer is positioned at the end of every partition.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    stopped = stopped or asyncio.Event()
    warned = False
    while not stopped.is_set():
        consumer = AIOKafkaConsumer(**aiokafka_options(settings), group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="latest", isolation_level="read_committed")
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()  # topic may be brand new
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise RuntimeError(f"topic {topic!r} does not exist")
            assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assignment)
            await consumer.seek_to_end(*assignment)
            for tp in assignment:  # resolve the end offsets now, so notices sent after `ready` are seen
                await consumer.position(tp)
            if warned:
                log.warning("following %s again", topic)
            warned = False
            if ready is not None:
                ready.set()
            while not stopped.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        notice = decode_notice(record.value)
                        if notice is None:
                            continue
                        try:
                            await on_notice(notice)
                        except Exception:  # one notice must not stop the listener
                            log.exception("handling notice %s failed", notice)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried; pointer polls keep working meanwhile
            if not warned:
                log.warning("cannot follow %s (%s: %s); polling only, retrying every %.0f s", topic,
                            type(exc).__name__, exc, retry_delay)
                warned = True
            await asyncio.sleep(retry_delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not secrets
        finally:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001, S110 - closing a broken consumer
                pass
