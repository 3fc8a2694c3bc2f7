"""Five ways to score a Kafka stream, in one run, on the same events and the same models.

(a) **baked**: the model baked into the pipeline. A small faust app whose agent calls scikit-learn's
    ``predict_proba`` once per event on a dict of fitted pipelines (StandardScaler + LogisticRegression, one
    per segment) loaded at start. A new version needs a redeploy: the agent process is stopped (SIGTERM) and
    started again with the new models; measured from the SIGTERM to the first prediction of the new version.
(b) **rest**: the model behind a REST service. An aiohttp scoring server holds the same pipelines; a faust agent
    makes one HTTP call per event over a keep-alive connection pool (agent concurrency ``--rest-concurrency``).
    A new version is loaded by the server's ``POST /reload`` endpoint (no restart); measured from the request
    to the first prediction of the new version. The server's cold start is reported too (what a restart costs).
(d) **batched**: a stronger peer, on scorer's own reader (``scorer worker``'s app with its scoring replaced):
    each micro-batch grouped by segment and scored with one scikit-learn ``predict_proba`` call per segment
    (:mod:`benchmarks.compare_peers`); a new version is a redeploy, like (a).
(e) **onnx**: the same, with the pipelines converted by skl2onnx and run by ONNX Runtime.
(c) **scorer**: ``scorer worker`` with the same pipelines exported and published to Cassandra. A new version is
    ``scorer activate`` (one segment, as users do it), then ``ModelStore.release`` plus the change notice from
    an already running process (half the segments: the in-process path a deploy service would use, like the
    REST server's reload), then ``scorer release --latest`` (the other half); measured from the start of the
    command or call to the first prediction of the new version.

The same 100 segments of logistic models on 20 features, the same deterministic events (``e-<n>``, segment
n % 100) in the same topic layout (4 partitions, keyed by event id); every consumer reads its own copy of the
input topic. Phases, one approach after the other (never concurrently, so they do not fight for the CPU):

1. throughput: the same backlog of ``--events`` events, produced to three input copies up front, drained by
   each approach; events/s between the first and the last output's Kafka timestamp, and CPU per event of
   the approach's processes (agent, and server for rest); predictions are compared across approaches;
2. live: events at one fixed rate for every approach (``--rate``, default a third of the slowest measured
   throughput: the load others put on a shared machine swings, and latency near capacity measures the swing);
   end-to-end latency = arrival of the prediction at a reader minus the input's Kafka timestamp
   (p50/p99 over a steady window), then the version change, then every event is checked for a prediction.

The summary gives scorer's throughput over the best peer's (target >= 3x). Every live phase reports the rate its
feed reached beside the rate it aimed for, and flags a feed that fell short (the latency is then at a lower load).

Prints a table, writes reports/bench_compare.json. The machine is small and shared: broker, Cassandra, the
consumers and this harness share its cores, so compare the approaches by their ratios in one run.

    .venv/bin/python benchmarks/bench_compare.py [--events 20000] [--rate N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks._support import cpu_seconds, create_keyspace, drop_keyspace, free_port  # noqa: E402
from scorer.config import Settings, load_settings  # noqa: E402

MODEL = "cmp"
N_SEGMENTS = 100
N_FEATURES = 20
FEATURES = tuple(f"f{i:02d}" for i in range(N_FEATURES))
PARTITIONS = 4
SCORER = str(Path(sys.executable).parent / "scorer")
LOG_DIR = Path(tempfile.gettempdir()) / "scorer-bench-logs"
APPROACHES = ("baked", "rest", "batched", "onnx", "scorer")
PEERS = tuple(a for a in APPROACHES if a != "scorer")
SHORT_FEED = 0.95
"""A live feed that reached less than this fraction of its target rate is flagged as short."""
SHORT = {"baked": "baked: Faust + sklearn per event", "rest": "REST: Faust + one HTTP call per event",
         "batched": "batched: scorer's reader + sklearn per segment batch",
         "onnx": "ONNX: scorer's reader + ONNX Runtime per segment batch", "scorer": "scorer worker"}
LABELS = {
    "baked": "model baked into a Faust agent (sklearn predict_proba per event)",
    "rest": "Faust agent + REST scoring service (one HTTP call per event)",
    "batched": "baked pipelines on scorer's reader, predict_proba once per segment per micro-batch",
    "onnx": "skl2onnx-converted pipelines on scorer's reader, ONNX Runtime once per segment per micro-batch",
    "scorer": "scorer worker (weights in Cassandra, vectorised micro-batches)",
}


def segment(i: int) -> str:
    return f"seg{i:03d}"


# ------------------------------------------------------------------------------------------ models

def fit_pipelines(version: int, n_segments: int) -> dict[str, Any]:
    """One fitted StandardScaler + LogisticRegression pipeline per segment, each on its own seeded data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipelines = {}
    for i in range(n_segments):
        rng = np.random.default_rng(10_000 * version + i)
        loc, scale = rng.normal(scale=0.5, size=N_FEATURES), rng.uniform(0.5, 2.0, size=N_FEATURES)
        X = rng.normal(loc=loc, scale=scale, size=(400, N_FEATURES))
        y = ((X - loc) @ rng.normal(size=N_FEATURES) + rng.normal(size=400) > 0).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipelines[segment(i)] = Pipeline([("scale", StandardScaler()),
                                              ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    return pipelines


def save_pipelines(pipelines: dict[str, Any], path: Path) -> None:
    """The fitted parameters of every segment's pipeline as plain arrays (.npz, no pickle)."""
    segments = sorted(pipelines)
    scalers = [pipelines[s][0] for s in segments]
    clfs = [pipelines[s][-1] for s in segments]
    np.savez(path, segments=np.array(segments), mean=np.stack([s.mean_ for s in scalers]),
             scale=np.stack([s.scale_ for s in scalers]), var=np.stack([s.var_ for s in scalers]),
             n_samples=np.array([int(s.n_samples_seen_) for s in scalers]), coef=np.stack([c.coef_ for c in clfs]),
             intercept=np.stack([c.intercept_ for c in clfs]), classes=np.stack([c.classes_ for c in clfs]))


def load_pipelines(path: Path) -> dict[str, Any]:
    """Fitted scikit-learn pipelines rebuilt from :func:`save_pipelines` arrays (what a deploy loads at start).

    Setting the fitted attributes gives the very estimators that were trained (the run checks predictions
    against the originals), without pickle or joblib.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipelines = {}
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    for k, name in enumerate(arrays["segments"].tolist()):
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = arrays["mean"][k], arrays["scale"][k], arrays["var"][k]
        scaler.n_features_in_, scaler.n_samples_seen_ = N_FEATURES, int(arrays["n_samples"][k])
        clf = LogisticRegression()
        clf.coef_, clf.intercept_, clf.classes_ = arrays["coef"][k], arrays["intercept"][k], arrays["classes"][k]
        clf.n_features_in_ = N_FEATURES
        pipelines[name] = Pipeline([("scale", scaler), ("clf", clf)])
    return pipelines


def prediction(event: dict[str, Any], version: int, proba: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """The same output fields as scorer's predictions."""
    return {"id": event["id"], "model": event["model"], "segment": event["segment"], "version": version,
            "canary": False, "prediction": float(proba[1]), "label": classes[int(np.argmax(proba))].item()}


# ------------------------------------------------------------------------------------------ roles (subprocesses)

def faust_app(app_id: str) -> Any:
    """A plain faust app on the dev stack's broker, as a user would write it (json values, defaults)."""
    import faust

    from scorer.kafka import faust_broker_options

    datadir = LOG_DIR / "faust-data" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(app_id, **faust_broker_options(load_settings()), web_enabled=False, datadir=str(datadir),
                     consumer_auto_offset_reset="earliest", topic_partitions=PARTITIONS, topic_allow_declare=False)


def run_faust(app: Any) -> None:
    import faust

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


def role_baked(args: argparse.Namespace) -> None:
    """(a) The agent holds every segment's sklearn pipeline and calls ``predict_proba`` per event."""
    version = args.version
    models = load_pipelines(Path(args.models_dir) / f"v{version}.npz")
    app = faust_app(args.app_id)
    source = app.topic(args.input, key_serializer="raw", value_serializer="json")
    sink = app.topic(args.output, key_serializer="raw", value_serializer="json")

    async def score(stream: Any) -> None:
        async for event in stream:
            model = models[event["segment"]]
            x = np.array([[event["features"][name] for name in FEATURES]], dtype=float)
            proba = model.predict_proba(x)[0]
            await sink.send(key=event["id"].encode(), value=prediction(event, version, proba, model.classes_))

    app.agent(source, name="score")(score)
    run_faust(app)


def role_rest_server(args: argparse.Namespace) -> None:
    """(b) The scoring service: ``POST /predict`` per event, ``POST /reload`` to load another version."""
    from aiohttp import web

    def models_of(version: int) -> dict[str, Any]:
        return load_pipelines(Path(args.models_dir) / f"v{version}.npz")

    live: dict[str, tuple[int, dict[str, Any]]] = {"models": (args.version, models_of(args.version))}

    async def predict(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        version, models = live["models"]
        model = models.get(body.get("segment"))
        if model is None:
            return web.json_response({"error": f"no model for segment {body.get('segment')!r}"}, status=404)
        x = np.array([[body["features"][name] for name in FEATURES]], dtype=float)
        proba = model.predict_proba(x)[0]
        return web.Response(body=orjson.dumps({"version": version, "prediction": float(proba[1]),
                                               "label": model.classes_[int(np.argmax(proba))].item()}),
                            content_type="application/json")

    async def reload(request: web.Request) -> web.Response:
        version = int(orjson.loads(await request.read())["version"])
        models = await asyncio.to_thread(models_of, version)  # keep serving the old version while loading
        live["models"] = (version, models)  # one reference swap
        return web.json_response({"version": version, "segments": len(models)})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"version": live["models"][0]})

    app = web.Application()
    app.router.add_post("/predict", predict)
    app.router.add_post("/reload", reload)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


def role_rest_agent(args: argparse.Namespace) -> None:
    """(b) The agent: one HTTP call per event to the scoring service, over a shared keep-alive pool."""
    import aiohttp

    app = faust_app(args.app_id)
    source = app.topic(args.input, key_serializer="raw", value_serializer="json")
    sink = app.topic(args.output, key_serializer="raw", value_serializer="json")
    url = f"http://127.0.0.1:{args.port}/predict"
    pool: dict[str, aiohttp.ClientSession] = {}

    def session() -> aiohttp.ClientSession:
        if "session" not in pool:  # created on the worker's running loop
            connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=60)
            pool["session"] = aiohttp.ClientSession(connector=connector)
        return pool["session"]

    async def score(stream: Any) -> None:
        async for event in stream:
            body = orjson.dumps({"segment": event["segment"], "features": event["features"]})
            async with session().post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                response.raise_for_status()
                result = orjson.loads(await response.read())
            await sink.send(key=event["id"].encode(), value={
                "id": event["id"], "model": event["model"], "segment": event["segment"],
                "version": result["version"], "canary": False, "prediction": result["prediction"],
                "label": result["label"]})

    async def close(sender: Any = None, **kwargs: Any) -> None:
        if "session" in pool:
            await pool["session"].close()

    app.on_before_shutdown.connect(close)
    app.agent(source, name="score", concurrency=args.concurrency)(score)
    run_faust(app)


# ------------------------------------------------------------------------------------------ Kafka helpers

@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dlq: str
    changes: str

    @classmethod
    def new(cls, tag: str, name: str) -> Topics:
        base = f"cmp-{tag}-{name}-{uuid.uuid4().hex[:6]}"
        return cls(f"{base}-in", f"{base}-out", f"{base}-dlq", f"{base}-changes")

    def all(self) -> list[str]:
        return [self.input, self.output, self.dlq, self.changes]


async def create_topics(settings: Settings, names: list[str]) -> None:
    from scorer.kafka import ensure_topics

    await ensure_topics(settings, {n: 1 if n.endswith("-changes") else PARTITIONS for n in names})


async def delete_topics(settings: Settings, prefix: str) -> None:
    """Every topic of this run: ours and the ones faust made for its app ids (all start with the prefix)."""
    from scorer.kafka import delete_topics as delete

    await delete(settings, prefix=prefix)


class Events:
    """Deterministic events ``e-<n>``: segment n % 100, 20 features from a fixed table of rows."""

    def __init__(self) -> None:
        self.rows = np.random.default_rng(42).normal(size=(4096, N_FEATURES)).round(4).tolist()

    def make(self, n: int) -> tuple[bytes, bytes]:
        value = {"id": f"e-{n}", "model": MODEL, "segment": segment(n % N_SEGMENTS),
                 "features": dict(zip(FEATURES, self.rows[n % len(self.rows)], strict=True))}
        return f"e-{n}".encode(), orjson.dumps(value)


async def produce_backlog(settings: Settings, topics: list[str], n: int) -> float:
    """The same n events, in the same order and partitions, to every topic; seconds taken."""
    from scorer.kafka import new_producer
    from scorer.stream.sink import KafkaSink

    producer = new_producer(settings, linger_ms=5, max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    sink = KafkaSink(producer)
    events = Events()
    started = time.perf_counter()
    try:
        for start in range(0, n, 5000):
            batch = [(*events.make(i), None) for i in range(start, min(n, start + 5000))]
            await asyncio.gather(*(sink.send_and_wait(topic, batch) for topic in topics))
    finally:
        await producer.stop()
    return time.perf_counter() - started


class Feed:
    """Produces events e-0, e-1, ... at a steady rate from a background thread."""

    def __init__(self, settings: Settings, topic: str, rate: float) -> None:
        self.settings, self.topic, self.rate = settings, topic, rate
        self.sent = 0
        self.lag_max = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> Feed:
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the phase
            self.error = exc

    async def _run(self) -> None:
        from scorer.kafka import new_producer
        from scorer.stream.sink import KafkaSink

        producer = new_producer(self.settings, acks=1, linger_ms=0)
        await producer.start()
        sink = KafkaSink(producer)
        events = Events()
        chunk = max(1, int(self.rate * 0.005))  # one small batch every ~5 ms
        started = self.started = time.perf_counter()
        try:
            while not self._stop.is_set():
                delay = started + self.sent / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.lag_max = max(self.lag_max, -delay)
                await sink.send_many(self.topic, [(*events.make(self.sent + i), None) for i in range(chunk)])
                self.sent += chunk
            await producer.flush()
        finally:
            await producer.stop()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(30)
        self.seconds = time.perf_counter() - getattr(self, "started", time.perf_counter())
        if self.error is not None:
            raise RuntimeError(f"event feed failed: {self.error!r}")
        return self.sent

    def achieved(self) -> dict[str, Any]:
        """The rate reached beside the rate aimed for; ``short`` when the feed fell behind its schedule."""
        rate = self.sent / self.seconds if getattr(self, "seconds", 0) > 0 else 0.0
        return {"aimed_eps": self.rate, "achieved_eps": rate, "short": rate < SHORT_FEED * self.rate}


@dataclass
class Output:
    id: str
    segment: str
    version: int
    prediction: float
    received: float  # wall time the reader got it
    timestamp: float  # the prediction's Kafka timestamp


@dataclass
class Watch:
    """Reads the output topic (and the input topic, for its Kafka timestamps) in a background thread."""

    settings: Settings
    output: str
    input: str | None = None
    outputs: list[Output] = field(default_factory=list)
    input_ts: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError(f"output reader did not start: {self.error!r}")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the phase
            self.error = exc
            self._ready.set()

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from scorer.kafka import aiokafka_options

        topics = [self.output] + ([self.input] if self.input else [])
        consumer = AIOKafkaConsumer(*topics, **aiokafka_options(self.settings), group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=5,
                                    max_partition_fetch_bytes=4 << 20, isolation_level="read_committed")
        await consumer.start()
        self._ready.set()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=20_000)
                now = time.time()
                for tp, records in batches.items():
                    if tp.topic == self.output:
                        for r in records:
                            v = orjson.loads(r.value)
                            self.outputs.append(Output(v["id"], v["segment"], int(v["version"]),
                                                       float(v["prediction"]), now, r.timestamp / 1000.0))
                    else:
                        for r in records:
                            self.input_ts[r.key.decode()] = r.timestamp / 1000.0
        finally:
            await consumer.stop()

    def count(self) -> int:
        return len(self.outputs)

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"output reader failed: {self.error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# ------------------------------------------------------------------------------------------ processes

class Proc:
    """One subprocess with its log file, stopped by SIGTERM (SIGKILL if it ignores it)."""

    def __init__(self, args: list[str], name: str, env: dict[str, str] | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log = LOG_DIR / f"compare-{name}-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=ROOT, env={**os.environ, **(env or {})})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self, timeout: float = 40.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http(port: int, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,  # local only
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return orjson.loads(response.read())


def wait_http(port: int, path: str, proc: Proc, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"process exited ({proc.log}):\n{proc.tail()}")
        try:
            return http(port, path, timeout=2.0)
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer on :{port}{path} after {timeout:.0f} s ({proc.log})")


# ------------------------------------------------------------------------------------------ approaches

@dataclass
class Change:
    """One version change: what was done, when it started, and which segments must show the new version."""

    how: str
    short: str  # for charts
    at: float  # wall time the change started
    command_s: float  # time the command itself took
    segments: set[str] | None = None  # None: any segment
    restart: bool = False
    extra: dict[str, float] = field(default_factory=dict)


class Approach:
    name = ""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.procs: list[Proc] = []

    def start(self, topics: Topics, app_id: str) -> None:
        raise NotImplementedError

    def changes(self) -> list[Callable[[], Change]]:
        raise NotImplementedError

    def alive(self) -> bool:
        return all(p.alive() for p in self.procs)

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def died(self) -> str:
        dead = [p for p in self.procs if not p.alive()]
        return "; ".join(f"{p.log} exited {p.proc.returncode}:\n{p.tail()}" for p in dead)


class Baked(Approach):
    name = "baked"

    def _agent(self, version: int) -> Proc:
        return Proc([sys.executable, __file__, "baked", "--input", self.topics.input, "--output", self.topics.output,
                     "--app-id", self.app_id, "--models-dir", str(self.bench.models_dir), "--version", str(version)],
                    f"baked-v{version}")

    def start(self, topics: Topics, app_id: str) -> None:
        self.topics, self.app_id = topics, app_id
        self.procs = [self._agent(1)]

    def changes(self) -> list[Callable[[], Change]]:
        def redeploy() -> Change:
            at = time.time()
            self.procs[0].stop()
            stopped = time.time()
            self.procs = [self._agent(2)]
            return Change("redeploy: SIGTERM the agent, start it with the v2 models", "redeploy (restart)", at,
                          time.time() - at,
                          restart=True, extra={"stop_s": stopped - at})

        return [redeploy]


class Peer(Baked):
    """batched / onnx: scorer's reader with a baked model scored per segment batch; redeployed like baked."""

    def _agent(self, version: int) -> Proc:
        return Proc([sys.executable, __file__, "peer", "--kind", self.name, "--input", self.topics.input,
                     "--output", self.topics.output, "--app-id", self.app_id, "--models-dir",
                     str(self.bench.models_dir), "--version", str(version)], f"{self.name}-v{version}",
                    env={"SCORER_KEYSPACE": self.bench.settings.keyspace})


class Batched(Peer):
    name = "batched"


class Onnx(Peer):
    name = "onnx"


class Rest(Approach):
    name = "rest"

    def start(self, topics: Topics, app_id: str) -> None:
        self.port = free_port()
        launched = time.perf_counter()
        server = Proc([sys.executable, __file__, "rest-server", "--port", str(self.port), "--models-dir",
                       str(self.bench.models_dir), "--version", "1"], "rest-server")
        self.procs = [server]
        wait_http(self.port, "/health", server)
        self.server_start_s = time.perf_counter() - launched
        self.procs.append(Proc([sys.executable, __file__, "rest-agent", "--input", topics.input, "--output",
                                topics.output, "--app-id", app_id, "--port", str(self.port), "--concurrency",
                                str(self.bench.args.rest_concurrency)], "rest-agent"))

    def changes(self) -> list[Callable[[], Change]]:
        def reload() -> Change:
            at = time.time()
            http(self.port, "/reload", {"version": 2})
            return Change("POST /reload to the scoring server (loads v2, swaps; no restart)", "POST /reload", at,
                          time.time() - at, extra={"server_cold_start_s": self.server_start_s})

        return [reload]


class Scorer(Approach):
    name = "scorer"

    def start(self, topics: Topics, app_id: str) -> None:
        self.topics = topics
        port = free_port()
        worker = Proc([SCORER, "worker", "--input-topic", topics.input, "--output-topic", topics.output,
                       "--dlq-topic", topics.dlq, "--changes-topic", topics.changes, "--app-id", app_id,
                       "--web-port", str(port), "--web-host", "127.0.0.1", "--poll-interval", "1.0",
                       "--batch-size", "1000", "--batch-window-ms", "10", "--loglevel", "warning",
                       *self.bench.args.scorer_args.split()],
                      "scorer", env=self.env())
        self.procs = [worker]
        deadline = time.monotonic() + 120
        while True:  # ready = models preloaded and the changes topic followed
            state = wait_http(port, "/models", worker, timeout=max(1.0, deadline - time.monotonic()))
            if state["worker"]["ready"] and state["worker"]["notices_ready"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"scorer worker not ready after 120 s ({worker.log})")
            time.sleep(0.1)

    def env(self) -> dict[str, str]:
        return {"SCORER_KEYSPACE": self.bench.settings.keyspace, "SCORER_CHANGES_TOPIC": self.topics.changes}

    def cli(self, *args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run([SCORER, *args], env={**os.environ, **self.env()}, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scorer {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return time.perf_counter() - started

    def changes(self) -> list[Callable[[], Change]]:
        first = segment(0)
        api_segments = {segment(i) for i in range(1, N_SEGMENTS // 2)}
        cli_segments = {segment(i) for i in range(N_SEGMENTS // 2, N_SEGMENTS)}

        def activate() -> Change:
            at = time.time()
            seconds = self.cli("activate", MODEL, first, "2")
            return Change(f"scorer activate {MODEL} {first} 2 (one segment)", "scorer activate (1 segment)", at,
                          seconds, segments={first})

        def api_release() -> Change:
            """What a deploy service holding a store does: ModelStore.release plus the notice the CLI sends."""
            from scorer.kafka.notices import try_publish_notice
            from scorer.store import CassandraModelStore

            with CassandraModelStore(self.bench.settings) as store:  # opened before the clock starts
                at = time.time()
                started = time.perf_counter()
                store.release(MODEL, dict.fromkeys(sorted(api_segments), 2), actor="bench_compare")
                warning = try_publish_notice(self.bench.settings.model_copy(
                    update={"changes_topic": self.topics.changes}), MODEL, None, "release", None)
                seconds = time.perf_counter() - started
            if warning:
                raise RuntimeError(warning)
            return Change(f"ModelStore.release + model-changes notice from a running process "
                          f"({len(api_segments)} segments)", f"Python API release ({len(api_segments)} segments)",
                          at, seconds, segments=api_segments)

        def release() -> Change:
            at = time.time()
            seconds = self.cli("release", MODEL, "--latest")
            return Change(f"scorer release {MODEL} --latest (the other {len(cli_segments)} segments)",
                          f"scorer release ({len(cli_segments)} segments)", at, seconds, segments=cli_segments)

        return [activate, api_release, release]


# ------------------------------------------------------------------------------------------ phases

def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "n": 0}
    arr = np.asarray(values)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "n": int(arr.size)}


def timeline(outputs: list[Output], input_ts: dict[str, float], origin: float) -> list[list[float]]:
    """[second since the latency window opened, events, p50 ms, max ms] by the input's second (for plots)."""
    by_second: dict[int, list[float]] = {}
    for o in outputs:
        sent = input_ts.get(o.id)
        if sent is not None:
            by_second.setdefault(int(np.floor(sent - origin)), []).append((o.received - sent) * 1000)
    return [[s, len(v), round(float(np.median(v)), 2), round(max(v), 2)] for s, v in sorted(by_second.items())]


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, models_dir: Path, tag: str) -> None:
        self.args, self.settings, self.models_dir, self.tag = args, settings, models_dir, tag

    def approach(self, name: str) -> Approach:
        return {"baked": Baked, "rest": Rest, "batched": Batched, "onnx": Onnx, "scorer": Scorer}[name](self)

    def drain(self, name: str, topics: Topics, n: int) -> tuple[dict[str, Any], dict[str, float]]:
        """The approach drains a backlog of n events; events/s between first and last output timestamps."""
        watch = Watch(self.settings, topics.output).start()
        approach = self.approach(name)
        launched = time.perf_counter()
        try:
            approach.start(topics, f"cmp-{self.tag}-{name}-drain")
            deadline = time.monotonic() + 120 + n / 20
            cpu_first, seen_first, first_at = None, 0, None
            while watch.count() < n and time.monotonic() < deadline:
                watch.check()
                if not approach.alive():
                    raise RuntimeError(f"{name} died: {approach.died()}")
                if cpu_first is None and watch.count() > 0:
                    cpu_first, seen_first, first_at = approach.cpu(), watch.count(), time.perf_counter()
                time.sleep(0.05)
            cpu_last = approach.cpu()
        finally:
            approach.stop()
            watch.stop()
        outputs = watch.outputs
        if not outputs:
            raise RuntimeError(f"{name}: no output in {time.perf_counter() - launched:.0f} s")
        span = max(o.timestamp for o in outputs) - min(o.timestamp for o in outputs)
        cpu = cpu_last - (cpu_first or cpu_last)
        result = {
            "events": n, "outputs": len(outputs), "complete": len({o.id for o in outputs}) >= n,
            "eps": (len(outputs) - 1) / span if span > 0 else None, "span_s": span,
            "first_output_after_s": (first_at - launched) if first_at else None,
            "cpu_s": cpu, "us_cpu_per_event": cpu / max(1, len(outputs) - seen_first) * 1e6 if cpu > 0 else None,
        }
        return result, {o.id: o.prediction for o in outputs}

    def live(self, name: str, rate: float) -> dict[str, Any]:
        """A steady stream at ``rate``: latency over a window, then the version change(s), then accounting."""
        topics = Topics.new(self.tag, f"{name}-live")
        asyncio.run(create_topics(self.settings, topics.all()))
        watch = Watch(self.settings, topics.output, topics.input).start()
        approach = self.approach(name)
        feed: Feed | None = None
        result: dict[str, Any] = {"rate": rate}
        try:
            approach.start(topics, f"cmp-{self.tag}-{name}-live")
            feed = Feed(self.settings, topics.input, rate).start()
            self._wait(lambda: len({o.id for o in watch.outputs}) >= feed.sent - rate and watch.count() > 0,
                       approach, watch, 180, "catch up with the stream")
            time.sleep(self.args.warmup)
            window = (time.time(), time.time() + self.args.latency_seconds)
            time.sleep(self.args.latency_seconds)
            changes = []
            for make_change in approach.changes():
                change = make_change()
                seen = self._wait(lambda c=change: self._first_new(watch, c), approach, watch, 180,
                                  f"see the new version after {change.how}")
                changes.append((change, seen))
                time.sleep(self.args.settle)
            sent = feed.stop()
            result["feed_lag_max_s"] = feed.lag_max
            result["feed"] = feed.achieved()
            feed = None
            self._wait(lambda: len({o.id for o in watch.outputs}) >= sent, approach, watch, 120,
                       "score every event", fail=False)
            time.sleep(0.5)
        finally:
            if feed is not None:
                feed.stop()
            approach.stop()
            watch.stop()
        outputs = list(watch.outputs)
        latency = [(o.received - watch.input_ts[o.id]) * 1000 for o in outputs
                   if o.id in watch.input_ts and window[0] <= watch.input_ts[o.id] < window[1]]
        result["latency"] = {**percentiles(latency), "window_s": self.args.latency_seconds}
        result["timeline"] = timeline(outputs, watch.input_ts, window[0])
        result["changes"] = [self._change_report(change, seen, outputs, watch.input_ts) for change, seen in changes]
        counts = Counter(o.id for o in outputs)
        result["events"] = sent
        after = [(o.received - watch.input_ts[o.id]) for o in outputs
                 if o.id in watch.input_ts and watch.input_ts[o.id] >= window[1]]
        result["delayed_over_1s_after_window"] = sum(1 for d in after if d > 1.0)
        result["lost"] = sum(1 for n in range(sent) if f"e-{n}" not in counts)
        result["duplicates"] = sum(c - 1 for c in counts.values())
        return result

    @staticmethod
    def _first_new(watch: Watch, change: Change) -> float | None:
        times = [o.received for o in watch.outputs if o.version == 2 and o.received >= change.at
                 and (change.segments is None or o.segment in change.segments)]
        return min(times) if times else None

    @staticmethod
    def _wait(condition: Callable[[], Any], approach: Approach, watch: Watch, timeout: float, what: str,
              fail: bool = True) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            watch.check()
            value = condition()
            if value:
                return value
            if not approach.alive():
                raise RuntimeError(f"{approach.name} died: {approach.died()}")
            time.sleep(0.02)
        if fail:
            raise RuntimeError(f"{approach.name} did not {what} within {timeout:.0f} s")
        return None

    @staticmethod
    def _change_report(change: Change, seen: float, outputs: list[Output], input_ts: dict[str, float]
                       ) -> dict[str, Any]:
        effect = seen - change.at
        around = [(o.received - input_ts[o.id]) * 1000 for o in outputs
                  if o.id in input_ts and change.at - 1.0 <= input_ts[o.id] <= seen + 1.0]
        arrivals = sorted(o.received for o in outputs if change.at - 1.0 <= o.received <= seen + 2.0)
        gap = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=None)
        return {"how": change.how, "short": change.short, "restart": change.restart, "effect_s": effect,
                "command_s": change.command_s,
                "segments": "all" if change.segments is None else len(change.segments),
                "max_latency_ms_around": max(around) if around else None, "longest_output_gap_s": gap,
                **change.extra}


# ------------------------------------------------------------------------------------------ setup and main

def setup(settings: Settings, models_dir: Path, n_segments: int, console: Any, onnx: bool = False) -> dict[str, Any]:
    """Fit v1 and v2 per segment; save them for (a)/(b); publish them for (c); check all three agree."""
    from scorer.models import build
    from scorer.store import CassandraModelStore
    from trainers import export

    started = time.perf_counter()
    versions = {v: fit_pipelines(v, n_segments) for v in (1, 2)}
    X = np.asarray(Events().rows[:256])
    parity = 0.0
    for v, pipelines in versions.items():
        save_pipelines(pipelines, models_dir / f"v{v}.npz")
        rebuilt = load_pipelines(models_dir / f"v{v}.npz")
        for seg, pipe in pipelines.items():
            expected = pipe.predict_proba(X)
            exported = build(export(pipe, feature_names=list(FEATURES))).predict(X)
            parity = max(parity, float(np.abs(rebuilt[seg].predict_proba(X) - expected).max()),
                         float(np.abs(exported - expected).max()))
    fit_s = time.perf_counter() - started
    if onnx:
        from benchmarks.compare_peers import convert_to_onnx

        started = time.perf_counter()
        for v, pipelines in versions.items():
            convert_to_onnx(pipelines, N_FEATURES, models_dir / f"v{v}-onnx")
        console.print(f"converted {2 * n_segments} pipelines to ONNX in {time.perf_counter() - started:.1f} s")
    create_keyspace(settings)
    started = time.perf_counter()
    with CassandraModelStore(settings) as store:
        for v, pipelines in versions.items():
            items = [(seg, export(pipe, feature_names=list(FEATURES)), None, None) for seg, pipe in pipelines.items()]
            store.publish_many(MODEL, items, activate=(v == 1), author="bench_compare")
    console.print(f"fitted {2 * n_segments} pipelines in {fit_s:.1f} s, published them in "
                  f"{time.perf_counter() - started:.1f} s; rebuilt/exported vs fitted max |diff| {parity:.1e}")
    return {"models_max_abs_diff": parity}


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())}


def run(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(keyspace=f"bench_cmp_{tag}")
    names = [n for n in args.approaches.split(",") if n]
    unknown = sorted(set(names) - set(APPROACHES))
    if unknown:
        raise SystemExit(f"unknown approaches {unknown}; choose from {', '.join(APPROACHES)}")
    skipped = {}
    if "onnx" in names and not all(importlib.util.find_spec(m) for m in ("onnxruntime", "skl2onnx")):
        names.remove("onnx")
        skipped["onnx"] = "onnxruntime or skl2onnx not installed: pip install -e '.[bench]'"
        console.print(f"[yellow]skipping onnx: {skipped['onnx']}[/]")
    report: dict[str, Any] = {
        "benchmark": "compare", "machine": machine(),
        "config": {"events": args.events, "segments": N_SEGMENTS, "features": N_FEATURES, "arch": "logistic",
                   "pipeline": "StandardScaler + LogisticRegression", "partitions": PARTITIONS,
                   "rest_concurrency": args.rest_concurrency, "scorer_args": args.scorer_args,
                   "scorer_batch": "1000 events / 10 ms", "latency_seconds": args.latency_seconds,
                   "quick": args.quick, "order": "one approach at a time, same events, own input topic copy"},
        "approaches": {n: {"label": LABELS[n]} for n in names}, "skipped": skipped,
    }
    models_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    predictions: dict[str, dict[str, float]] = {}
    try:
        console.print(f"setup: keyspace {settings.keyspace}, {N_SEGMENTS} segments x 2 versions")
        report["setup"] = setup(settings, models_dir, N_SEGMENTS, console, onnx="onnx" in names)
        bench = Bench(args, settings, models_dir, tag)

        drains = {n: Topics.new(tag, f"{n}-drain") for n in names}
        asyncio.run(create_topics(settings, [t for topics in drains.values() for t in topics.all()]))
        seconds = asyncio.run(produce_backlog(settings, [t.input for t in drains.values()], args.events))
        console.print(f"backlog: {args.events:,} events to {len(names)} input copies in {seconds:.1f} s")
        for n in names:
            try:
                result, predictions[n] = bench.drain(n, drains[n], args.events)
                report["approaches"][n]["throughput"] = result
                eps = result["eps"] or 0.0
                console.print(f"throughput {n}: {eps:,.0f} events/s, {result['us_cpu_per_event'] or 0:,.0f} µs CPU "
                              f"per event{'' if result['complete'] else ' (INCOMPLETE)'}")
            except Exception as exc:  # noqa: BLE001 - one approach failing must not hide the others
                report["approaches"][n]["error"] = f"throughput: {exc}"
                console.print(f"[red]throughput {n} failed[/]: {exc}")
        report["parity"] = parity_of(predictions)

        measured = [a["throughput"]["eps"] for a in report["approaches"].values()
                    if a.get("throughput", {}).get("eps")]
        if args.rate:
            rate, basis = args.rate, "fixed by --rate"
        elif measured:
            rate, basis = round(min(measured) * args.rate_fraction), (
                f"{args.rate_fraction:g} x the slowest approach's measured throughput ({min(measured):,.0f}/s)")
        else:
            rate, basis = 100.0, "no throughput measured: default 100/s"
        report["config"]["rate"], report["config"]["rate_basis"] = rate, basis
        console.print(f"live stream at {rate:,.0f} events/s ({basis})")
        for n in names:
            try:
                result = bench.live(n, rate)
                report["approaches"][n]["live"] = result
                lat = result["latency"]
                console.print(f"live {n}: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms; " + "; ".join(
                    f"{c['how']}: {c['effect_s']:.2f} s" for c in result["changes"]))
            except Exception as exc:  # noqa: BLE001
                report["approaches"][n]["error"] = "; ".join(
                    filter(None, [report["approaches"][n].get("error"), f"live: {exc}"]))
                console.print(f"[red]live {n} failed[/]: {exc}")
    finally:
        try:
            drop_keyspace(settings)
        finally:
            asyncio.run(delete_topics(settings, f"cmp-{tag}-"))
    report["machine"]["load_avg_end"] = list(os.getloadavg())
    report["summary"] = summary(report)
    report["notes"] = notes(args)
    return report


def notes(args: argparse.Namespace) -> list[str]:
    """How to read the numbers (what each approach does and does not do)."""
    return [
        "One approach at a time on the same machine, the same events and the same models; Kafka, Cassandra, the "
        "approach's processes and this harness share the CPUs, so compare ratios within one run.",
        "baked and REST agents are plain faust agents as users write them: JSON values, one `await topic.send()` "
        "per event (buffered: not awaited for delivery), faust's default acking. scorer waits for every batch's "
        "predictions to be acknowledged by Kafka before committing its input (at-least-once).",
        f"REST: {args.rest_concurrency} concurrent agent actors over a keep-alive pool of as many connections to "
        "one aiohttp server process; its time to take effect is the /reload endpoint (a restart of the server "
        "costs its cold start, reported beside it).",
        "baked: the time to take effect is a stop-then-start redeploy of the only agent process (SIGTERM, wait for "
        "exit, start with the new models); events keep arriving and wait in Kafka meanwhile.",
        "scorer: for the CLI rows the time to take effect runs from the start of the `scorer` process, so it includes "
        "Python start-up, imports and the Cassandra connection ('the command itself' in the table); the Python API "
        "row starts at the release call in a process that already holds a store (like the REST server's reload); "
        "a single segment gets an event only every segments/rate seconds, which adds to the activate figure. "
        "bench_worker measures the propagation from the pointer write alone.",
        "batched and ONNX peers run scorer's own reader, sink, delivery and commits (the same app with its scoring "
        "replaced): orjson per message, grouped by segment, one predict per segment per micro-batch, orjson per "
        "prediction. They do none of scorer's checks (names, sizes, non-finite values, dead letters), no "
        "metrics, no swaps without a restart; ONNX scores in float32 (differences ~1e-7).",
        f"scorer worker flags: {args.scorer_args or '(none)'} (monitoring off: the other two do none); "
        "micro-batches of up to 1000 events or 10 ms; it reads with its direct reader (one aiokafka consumer), "
        "while the baked and REST agents run stock faust.",
    ]


def parity_of(predictions: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Largest difference between two approaches' predictions for the same event (same models: ~0)."""
    out: dict[str, Any] = {}
    names = sorted(predictions)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = predictions[a].keys() & predictions[b].keys()
            diffs = [abs(predictions[a][k] - predictions[b][k]) for k in common]
            out[f"{a}_vs_{b}"] = {"events": len(common), "max_abs_diff": max(diffs) if diffs else None}
    return out


def summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per approach, the numbers the table and the combined report show."""
    rows = []
    for name, a in report["approaches"].items():
        throughput, live = a.get("throughput", {}), a.get("live", {})
        changes = live.get("changes", [])
        rows.append({
            "approach": name, "label": a["label"], "short": SHORT[name], "eps": throughput.get("eps"),
            "us_cpu_per_event": throughput.get("us_cpu_per_event"),
            "p50_ms": live.get("latency", {}).get("p50_ms"), "p99_ms": live.get("latency", {}).get("p99_ms"),
            "rate": live.get("rate"), "feed": live.get("feed"),
            "version_change": [{k: c[k] for k in ("how", "short", "effect_s", "command_s", "max_latency_ms_around")}
                               for c in changes],
            "restart": any(c["restart"] for c in changes) if changes else None,
            "lost": live.get("lost"), "duplicates": live.get("duplicates"), "error": a.get("error"),
        })
    eps = {r["approach"]: r["eps"] for r in rows if r["eps"]}
    peers = {n: e for n, e in eps.items() if n in PEERS}
    best = max(peers, key=peers.__getitem__) if peers else None
    for r in rows:
        r["eps_vs_baked"] = r["eps"] / eps["baked"] if r["eps"] and eps.get("baked") else None
        r["eps_vs_best_peer"] = r["eps"] / peers[best] if r["eps"] and best else None
        r["best_peer"] = best
    return rows


def show(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    m = report["machine"]
    table = Table(title=f"Five ways to score a stream ({m['cpus']} CPUs shared with Kafka and Cassandra, load "
                        f"{m['load_avg'][0]:.1f} -> {m['load_avg_end'][0]:.1f}); latency at "
                        f"{report['config'].get('rate', 0):,.0f} events/s")
    for col in ("approach", "events/s", "x baked", "x best peer", "µs CPU/event", "p50 ms", "p99 ms",
                "feed events/s (aimed)", "new version takes effect", "restart?", "lost/dup"):
        table.add_column(col, justify="left" if col in ("approach", "new version takes effect") else "right")

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None or v != v else format(v, fmt)

    for r in report["summary"]:
        change = "\n".join(f"{c['effect_s']:.2f} s: {c['how']}" for c in r["version_change"]) or "-"
        feed = r.get("feed") or {}
        fed = "-" if not feed else (f"{feed['achieved_eps']:,.0f} ({feed['aimed_eps']:,.0f})"
                                    + (" SHORT" if feed["short"] else ""))
        table.add_row(r["short"] if not r["error"] else f"{r['short']}\n[red]{r['error'][:200]}[/]",
                      num(r["eps"], ",.0f"), num(r["eps_vs_baked"], ".2f"), num(r["eps_vs_best_peer"], ".2f"),
                      num(r["us_cpu_per_event"], ",.0f"), num(r["p50_ms"], ".1f"), num(r["p99_ms"], ".1f"), fed, change,
                      {None: "-", True: "yes", False: "no"}[r["restart"]],
                      "-" if r["lost"] is None else f"{r['lost']}/{r['duplicates']}")
    console.print(table)
    scorer = next((r for r in report["summary"] if r["approach"] == "scorer"), None)
    if scorer and scorer["eps_vs_best_peer"]:
        ok = "yes" if scorer["eps_vs_best_peer"] >= 3.0 else "NO"
        console.print(f"scorer / best peer ({scorer['best_peer']}): {scorer['eps_vs_best_peer']:.2f}x "
                      f"(target >= 3x: {ok})")
    short = [r["approach"] for r in report["summary"] if (r.get("feed") or {}).get("short")]
    if short:
        console.print(f"[yellow]feed fell short of its target rate for: {', '.join(short)} (latency measured at the "
                      "lower achieved rate)[/]")
    for pair, p in report.get("parity", {}).items():
        console.print(f"same predictions {pair}: {p['events']:,} events, max |diff| "
                      f"{'-' if p['max_abs_diff'] is None else format(p['max_abs_diff'], '.1e')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    for role in ("baked", "rest-agent"):
        p = sub.add_parser(role, help="(internal) run the approach's faust agent")
        p.add_argument("--input", required=True)
        p.add_argument("--output", required=True)
        p.add_argument("--app-id", required=True)
        p.add_argument("--models-dir")
        p.add_argument("--version", type=int, default=1)
        p.add_argument("--port", type=int)
        p.add_argument("--concurrency", type=int, default=8)
    peer = sub.add_parser("peer", help="(internal) run a batched or ONNX peer on scorer's reader")
    peer.add_argument("--kind", choices=["batched", "onnx"], required=True)
    peer.add_argument("--input", required=True)
    peer.add_argument("--output", required=True)
    peer.add_argument("--app-id", required=True)
    peer.add_argument("--models-dir", required=True)
    peer.add_argument("--version", type=int, default=1)
    server = sub.add_parser("rest-server", help="(internal) run the REST scoring server")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--models-dir", required=True)
    server.add_argument("--version", type=int, default=1)
    parser.add_argument("--events", type=int, default=20_000, help="Backlog drained by each approach.")
    parser.add_argument("--rate", type=float, help="Live stream rate [default: --rate-fraction x the slowest].")
    parser.add_argument("--rate-fraction", type=float, default=0.33,
                        help="Default live rate as a fraction of the slowest approach's measured throughput.")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="Steady window for p50/p99.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds after catching up, before the window.")
    parser.add_argument("--settle", type=float, default=3.0, help="Seconds of stream after each version change.")
    parser.add_argument("--rest-concurrency", type=int, default=8,
                        help="Concurrent agent actors (and pooled keep-alive connections) of the REST approach.")
    parser.add_argument("--scorer-args", default="--no-shadow --no-drift",
                        help="Extra `scorer worker` flags (monitoring off: the other two do none).")
    parser.add_argument("--approaches", default=",".join(APPROACHES))
    parser.add_argument("--quick", action="store_true", help="5,000 events, 6 s latency window (< 3 min).")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_compare.json")
    args = parser.parse_args()
    if args.role == "baked":
        role_baked(args)
        return 0
    if args.role == "rest-agent":
        role_rest_agent(args)
        return 0
    if args.role == "rest-server":
        role_rest_server(args)
        return 0
    if args.role == "peer":
        from benchmarks.compare_peers import role_peer

        role_peer(args, FEATURES, MODEL)
        return 0
    if args.quick:
        args.events, args.latency_seconds, args.warmup, args.settle = 5000, 6.0, 2.0, 2.0

    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped (make bench): wide enough for the table
        console = Console(width=180)
    report = run(args, console)
    show(report, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"wrote {args.out}")
    failed = [n for n, a in report["approaches"].items() if a.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
