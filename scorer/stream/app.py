"""The faust app of a scoring worker, built by a factory (no app object exists at import time).

``create_app(settings, config)`` wires a :class:`~scorer.stream.worker.ScoringWorker` into faust: the input
reader (by default :class:`~scorer.stream.direct.DirectConsumer`, a task committing offsets after delivery,
with faust's own consumer off; with ``consumer="faust"`` an agent on the input topic taking ``noack_take``
batches with explicit acks after delivery), tasks for startup, the pointer poll and the ``model-changes``
listener, a task updating the consumer-lag gauges, and pages on the web port: ``/metrics`` (Prometheus text),
``/models`` (JSON), ``/healthz`` (alive) and ``/readyz`` (503 until models are loaded and partitions assigned).
``run_worker`` runs it with ``faust.Worker`` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import faust
import orjson

from scorer.config import Settings
from scorer.kafka import ensure_topics
from scorer.stream.agent import AgentReader
from scorer.stream.direct import DirectConsumer
from scorer.stream.metrics import CONTENT_TYPE, WorkerMetrics
from scorer.stream.scoring import BatchHook
from scorer.stream.transactional import TransactionalConsumer
from scorer.stream.worker import ScoringWorker, WorkerConfig

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0
"""Seconds between updates of the consumer-lag gauges."""
WORKER_ATTR = "scorer_worker"
"""Attribute of the faust app holding its ScoringWorker (for tests, benchmarks and extensions)."""

Task = Callable[[ScoringWorker], Awaitable[None]]


class RawSchema(faust.Schema):
    """Events carry the Kafka message's key and value bytes as they are, without the serializer registry.

    faust's default decode looks up codecs and builds values per message; the worker decodes whole batches
    itself (:mod:`scorer.stream.events`), so the per-message step only has to wrap the message in an Event.
    """

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Any:
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


def input_topic(app: faust.App, name: str) -> Any:
    """The worker's input topic: raw bytes, decoded by the batch decoder, not per message."""
    return app.topic(name, schema=RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                            value_serializer="raw"))


def new_app(app_id: str, config: WorkerConfig, **options: Any) -> faust.App:
    """A faust App on the worker's stack (``config`` is for callers that build options from it)."""
    return faust.App(app_id, **options)


def faust_options(settings: Settings, config: WorkerConfig) -> dict[str, Any]:
    """faust.App settings of a worker (raw bytes in, manual acks, short commit interval, web port)."""
    from scorer.kafka import faust_broker_options

    datadir = config.resolved_datadir(settings)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return {
        **faust_broker_options(settings),
        "value_serializer": "raw",
        "key_serializer": "raw",
        "web_enabled": config.web_enabled,
        "web_port": config.web_port,
        "web_bind": config.web_host,
        "web_in_thread": False,
        "datadir": str(datadir),
        "topic_partitions": config.partitions,
        "topic_allow_declare": False,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": config.commit_interval,
        "broker_session_timeout": config.session_timeout,
        "broker_heartbeat_interval": min(3.0, config.session_timeout / 3),
        "stream_buffer_maxsize": config.stream_buffer,
        "broker_max_poll_records": max(500, config.batch_size),
        "producer_linger": 0.0,
        "stream_wait_empty": True,
    }


def create_app(settings: Settings, config: WorkerConfig, *, hooks: Sequence[BatchHook] = (),
               tasks: Iterable[Task] = (), store_factory: Callable[[], Any] | None = None,
               metrics: WorkerMetrics | None = None, **faust_options_extra: Any) -> faust.App:
    """A faust app that scores ``config.input_topic``; ``hooks`` run per scored group, ``tasks`` run with it."""
    runtime = ScoringWorker(settings, config, store_factory=store_factory, metrics=metrics, hooks=hooks)
    app_id = settings.app_id
    app = new_app(app_id, config, **{**faust_options(settings, config), **faust_options_extra})
    setattr(app, WORKER_ATTR, runtime)

    reader: DirectConsumer | AgentReader
    if config.consumer == "direct":
        # faust's consumer would join the same group with its own assignor; the direct reader is the member.
        app.boot_strategy = app.BootStrategy(app, enable_kafka_consumer=False)
        reader = (TransactionalConsumer if config.exactly_once else DirectConsumer)(settings, runtime, group_id=app_id)
        app.task(reader.run)
    else:
        reader = AgentReader(app, runtime)
        agent_reader = reader

        async def score(stream: Any) -> None:
            await agent_reader.run(stream)

        app.agent(input_topic(app, config.input_topic), name=f"{app_id}.score", concurrency=1)(score)

    def guarded(name: str, body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception:  # a background task must never take the worker down
                log.exception("%s stopped with an error", name)
        run.__name__ = run.__qualname__ = name
        return run

    async def start_runtime() -> None:
        try:
            await runtime.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - cannot serve at all: stop the worker with the reason
            log.critical("worker cannot start: %s: %s", type(exc).__name__, exc)
            await app.crash(exc)

    async def follow_lag() -> None:
        while True:
            runtime.metrics.set_lag(await reader.lag())
            await asyncio.sleep(LAG_INTERVAL)

    app.task(start_runtime)
    app.task(guarded("lag", follow_lag))
    app.task(guarded("poll", runtime.poll_loop))
    app.task(guarded("notices", runtime.notices_loop))
    for extra in tasks:
        app.task(guarded(getattr(extra, "__name__", "task"), lambda extra=extra: extra(runtime)))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(runtime.metrics.render(), content_type=CONTENT_TYPE)

    @app.page("/healthz")
    async def alive_page(web: Any, request: Any) -> Any:
        return web.json({"status": "alive", "uptime_s": round(time.time() - runtime.started_at, 1)})

    @app.page("/readyz")
    async def ready_page(web: Any, request: Any) -> Any:
        waiting = readiness(runtime, reader.assignment())
        return web.json({"status": "waiting" if waiting else "ready", "waiting_for": waiting},
                        status=503 if waiting else 200)

    @app.page("/models")
    async def models_page(web: Any, request: Any) -> Any:
        return web.bytes(orjson.dumps(runtime.describe(reader.assignment()), option=orjson.OPT_INDENT_2),
                         content_type="application/json")

    async def on_shutdown(sender: Any = None, **kwargs: Any) -> None:
        await reader.stop()  # stop taking input; what was taken is delivered and confirmed
        await runtime.stop()

    app.on_before_shutdown.connect(on_shutdown)
    return app


def readiness(runtime: ScoringWorker, partitions: Sequence[int]) -> list[str]:
    """What a worker still waits for before it is ready (empty: ready): its models, its input partitions."""
    waiting = []
    if not runtime.ready.is_set():
        waiting.append("start: connecting to the model store and loading models")
    elif runtime.cache.n_versions() == 0:
        waiting.append("models: no model version is loaded")
    if not partitions:
        waiting.append("partitions: no input partition is assigned to this worker")
    return waiting


def worker_of(app: faust.App) -> ScoringWorker:
    return getattr(app, WORKER_ATTR)


def run_worker(settings: Settings, config: WorkerConfig, *, loglevel: str = "info",
               hooks: Sequence[BatchHook] = (), tasks: Iterable[Task] = (), metrics: WorkerMetrics | None = None,
               extra_topics: dict[str, int] | None = None,
               prepare: Callable[[], Awaitable[None]] | None = None) -> None:
    """Create missing topics (and run ``prepare``), then run one worker until SIGTERM/SIGINT (blocking)."""
    topics = {config.input_topic: config.partitions, config.output_topic: config.partitions,
              config.dlq_topic: config.partitions, **(extra_topics or {})}
    if config.follow_changes:
        topics[settings.changes_topic] = 1

    async def setup() -> list[str]:
        created = await ensure_topics(settings, topics)
        if prepare is not None:
            await prepare()
        return created

    created = asyncio.run(setup())
    if created:
        log.info("created topics: %s", ", ".join(created))
    app = create_app(settings, config, hooks=hooks, tasks=tasks, metrics=metrics)
    new_worker(app, loglevel).execute_from_commandline()


def new_worker(app: faust.App, loglevel: str = "info") -> faust.Worker:
    """A ``faust.Worker`` for a scoring app, without faust's terminal spinner.

    The spinner's log handler sets the root logger to DEBUG at levels of WARNING and above, so every library's
    debug call (aiokafka logs one per produced batch) builds and handles a record: measurable CPU per event.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker
