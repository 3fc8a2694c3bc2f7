"""Helpers for worker tests: workers as real subprocesses, an output collector, event producers.

Workers run as ``.venv/bin/scorer worker`` subprocesses (so SIGTERM and SIGKILL are real) with their own
keyspace (SCORER_KEYSPACE), app id, topics and web port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from scorer.config import Settings
from support.net import free_port

ROOT = Path(__file__).resolve().parents[3]
SCORER = str(Path(sys.executable).parent / "scorer")


LOG_DIR = Path(tempfile.gettempdir()) / "scorer-worker-logs"
"""Worker logs outlive pytest's rotated tmp dirs, for reading after a failure."""


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SCORER_KEYSPACE": settings.keyspace, **extra}
    env.pop("PYTHONWARNINGS", None)
    return env


def run_cli(settings: Settings, *args: str, env: dict[str, str] | None = None, changes: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """``scorer ARGS`` on the test keyspace; ``changes`` is the model-changes topic its notices go to."""
    if env is None:
        env = cli_env(settings, **({"SCORER_CHANGES_TOPIC": changes} if changes else {}))
    return subprocess.run([SCORER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Topics:
    events: str
    predictions: str
    dlq: str
    changes: str


def make_topics(new_topic: Callable[..., str], partitions: int = 4) -> Topics:
    return Topics(new_topic("events", partitions), new_topic("predictions", partitions), new_topic("dlq", 1),
                  new_topic("changes", 1))


class WorkerProcess:
    """One ``scorer worker`` subprocess and its web port."""

    def __init__(self, settings: Settings, topics: Topics, *, app_id: str | None = None,
                 extra_args: Sequence[str] = (), name: str = "worker", log_dir: Path = LOG_DIR) -> None:
        self.settings = settings
        self.topics = topics
        self.app_id = app_id or f"t-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.extra_args = list(extra_args)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{self.app_id}-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        args = [
            SCORER, "worker", "--input-topic", self.topics.events, "--output-topic", self.topics.predictions,
            "--dlq-topic", self.topics.dlq, "--changes-topic", self.topics.changes, "--app-id", self.app_id,
            "--web-port", str(self.port), "--web-host", "127.0.0.1", "--poll-interval", "1.0", "--partitions", "4",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.starts} ====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, env=cli_env(self.settings, SCORER_CHANGES_TOPIC=self.topics.changes),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        log.close()
        self.starts += 1
        return self

    def get(self, path: str, timeout: float = 2.0) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
            return response.read()

    def models(self) -> dict[str, Any]:
        return orjson.loads(self.get("/models"))

    def metrics(self) -> str:
        return self.get("/metrics").decode()

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                state = self.models()
                if state["worker"]["ready"] and state["worker"]["notices_ready"]:
                    return state
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s ({last}):\n{self.tail()}")

    def version_of(self, model: str, segment: str) -> int | None:
        entry = self.models()["models"].get(model, {}).get(segment)
        return None if entry is None else entry["version"]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"worker ignored SIGTERM for {timeout} s:\n{self.tail()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for_topics(bootstrap: str, topics: Iterable[str], timeout: float = 120.0) -> float:
    """Wait until every broker of ``bootstrap`` itself reports each topic with a leader for every partition.

    A freshly created topic reaches the brokers' metadata one by one; on a young cluster on a loaded box a
    client that asks a lagging broker sees no topic at all. Returns the seconds waited."""
    started = time.monotonic()
    wanted = list(topics)
    missing: dict[str, str] = {}  # broker -> what it lacked last time

    async def ask(server: str) -> str | None:
        host, port = server.rsplit(":", 1)
        try:
            conn = await asyncio.wait_for(create_conn(host, int(port), request_timeout_ms=5000), 10.0)
        except (TimeoutError, OSError, KafkaError) as exc:
            return f"no connection ({exc!r})"
        try:
            cluster = ClusterMetadata()
            request = MetadataRequest(wanted, allow_auto_topic_creation=False)
            cluster.update_metadata(await asyncio.wait_for(conn.send(request), 10.0))
        except (TimeoutError, OSError, KafkaError) as exc:
            return f"no metadata ({exc!r})"
        finally:
            conn.close()
        for topic in wanted:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                return f"{topic} unknown"
            leaderless = [p for p in partitions if (cluster.leader_for_partition(TopicPartition(topic, p)) or -1) < 0]
            if leaderless:
                return f"{topic} partitions {leaderless} without a leader"
        return None

    async def known_everywhere() -> bool:
        missing.clear()
        for server in bootstrap.split(","):
            lack = await ask(server)
            if lack is not None:
                missing[server] = lack
        return not missing

    while not asyncio.run(known_everywhere()):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"topics not known to every broker after {timeout} s: {missing}")
        time.sleep(0.5)
    return time.monotonic() - started


@dataclass
class Out:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]
    timestamp: float
    received: float


@dataclass
class Collector:
    """Consumes output topics from the beginning in a background thread, keeping every record."""

    bootstrap: str
    topics: Sequence[str]
    records: list[Out] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None
    start_errors: list[BaseException] = field(default_factory=list)

    _attempt: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, timeout: float = 60.0, attempt_timeout: float = 20.0) -> Collector:
        """Start consuming; a consumer start that hangs (a young cluster on a loaded box) is abandoned and a new
        one is started on a fresh thread and event loop, so nothing of a hung attempt can block the next."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._attempt += 1
                attempt = self._attempt
            thread = threading.Thread(target=self._run, args=(attempt,), daemon=True)
            self._threads.append(thread)
            thread.start()
            self._ready.wait(min(attempt_timeout, max(deadline - time.monotonic(), 0.0)))
            with self._lock:  # an attempt marks itself ready under this lock, and only while it is the current one
                if self._ready.is_set() and self.error is None:
                    return self
                if self._ready.is_set():
                    self.start_errors.append(self.error)
                    self.error = None
                    self._ready.clear()
                else:
                    self._attempt += 1  # abandoned: if it ever starts, it sees that and stops
                    self.start_errors.append(TimeoutError(f"start attempt {attempt} hung for {attempt_timeout} s"))
            if time.monotonic() >= deadline:
                self._stop.set()
                raise AssertionError(f"collector did not start within {timeout} s: "
                                     f"{len(self.start_errors)} abandoned starts: {self.start_errors[-3:]!r}")
            time.sleep(1.0)

    def _run(self, attempt: int) -> None:
        try:
            asyncio.run(self._consume(attempt))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            with self._lock:
                if attempt != self._attempt:
                    return  # an abandoned attempt: nobody waits for it
                self.error = exc
                self._ready.set()

    async def _consume(self, attempt: int) -> None:
        # read_committed, like every downstream reader must: outputs of aborted transactions never count.
        consumer = AIOKafkaConsumer(*self.topics, bootstrap_servers=self.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    isolation_level="read_committed")
        try:
            await consumer.start()
            with self._lock:
                if attempt != self._attempt:
                    return  # started after it was given up: another attempt owns the records
                self._ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                now = time.time()
                got = [Out(r.topic, r.partition, r.offset, r.key, orjson.loads(r.value), r.timestamp / 1000.0, now)
                       for records in batches.values() for r in records]
                if got:
                    with self._lock:
                        self.records.extend(got)
        finally:
            await consumer.stop()

    def snapshot(self, topic: str | None = None) -> list[Out]:
        with self._lock:
            return [r for r in self.records if topic is None or r.topic == topic]

    def wait_for(self, done: Callable[[Collector], bool], timeout: float, what: str = "outputs") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"collector failed: {self.error!r}")
            if done(self):
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} ({len(self.snapshot())} records)")

    def ids(self, topic: str) -> set[str]:
        out = set()
        for r in self.snapshot(topic):
            out.add(r.value["id"] if "id" in r.value else _dlq_id(r.value))
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._threads:
            self._threads[-1].join(15)


def _dlq_id(letter: dict[str, Any]) -> str:
    try:
        return str(orjson.loads(letter["raw"])["id"])
    except Exception:  # noqa: BLE001 - undecodable raw: identify by position
        return f"{letter['topic']}:{letter['partition']}:{letter['offset']}"


def event(event_id: str, segment: str, features: dict[str, Any], model: str = "delay") -> tuple[bytes, bytes]:
    return event_id.encode(), orjson.dumps({"id": event_id, "model": model, "segment": segment,
                                            "features": features})


async def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]], *,
                  rate: float | None = None, every: int = 0,
                  on_count: Callable[[int], None] | None = None) -> int:
    """Send messages (optionally at ``rate`` per second), calling ``on_count(n)`` every ``every`` messages."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    sent = 0
    try:
        started = time.perf_counter()
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if rate is not None and sent % max(1, int(rate / 50)) == 0:
                await asyncio.gather(*pending)
                pending = []
                delay = started + sent / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if every and on_count is not None and sent % every == 0:
                await asyncio.gather(*pending)
                pending = []
                await asyncio.to_thread(on_count, sent)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def produce_sync(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]], **kwargs: Any) -> int:
    return asyncio.run(produce(bootstrap, topic, messages, **kwargs))


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            total += float(value)
    return total


@contextlib.contextmanager
def workers(*procs: WorkerProcess) -> Any:
    try:
        yield procs
    finally:
        for proc in procs:
            proc.close()
