"""Soak benchmark: one ``scorer worker`` for N minutes at half its measured capacity, with a swap every 10 s.

On the dev stack (real Kafka and Cassandra; a fresh uuid keyspace and uuid topics, dropped/deleted at the end),
with logistic models of 20 features over 20 segments (v1 live, v2 published):

1. capacity: unless ``--rate`` is given, a backlog of events is produced first and the worker's drain rate
   (first to last output, by the outputs' Kafka timestamps) is its capacity;
2. soak: events at half that rate for ``--minutes``; every ``--swap-every`` seconds one segment flips between
   v1 and v2, alternately with ``scorer activate`` (pointer write + model-changes notice) and a raw CQL
   ``UPDATE active_models`` (seen by the poll);
3. sampled every second: the worker's resident memory (VmRSS from /proc/<pid>/status) and its consumer lag
   (end offsets of the input topic minus the group's committed offsets);
4. at the end: every event sent must have an output (lost = 0), dead letters are failed events, and each swap
   must show up in the outputs (propagation = first output of the segment on its new version after the write).

Memory is judged on the second half of the soak (start-up allocations settle in the first): the least-squares
slope in MB/min. Prints a table, writes reports/bench_soak.json and reports/bench_soak.png.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--rate EPS] [--swap-every 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks._support import create_keyspace, drop_keyspace, fitted_logistic, free_port  # noqa: E402
from scorer.config import Settings, load_settings  # noqa: E402

MODEL = "soak"
N_SEGMENTS = 20
N_FEATURES = 20
PARTITIONS = 4
SCORER = str(Path(sys.executable).parent / "scorer")
LOG_DIR = Path(tempfile.gettempdir()) / "scorer-bench-logs"
REPORTS = ROOT / "reports"
SHORT_FEED = 0.95
"""A soak whose sender reached less than this fraction of its target rate is marked short."""
FLAT_MB_PER_MIN = 1.0
"""Second-half RSS slope below which memory counts as flat (no leak)."""


def segment(i: int) -> str:
    return f"seg{i:02d}"


def bootstrap(settings: Settings) -> str:
    return settings.kafka.removeprefix("kafka://").replace(";", ",")


# ------------------------------------------------------------------------------------------- setup


def setup_store(settings: Settings) -> None:
    """Keyspace with the schema; v1 (live) and v2 (published) for every segment."""
    from scorer.store import CassandraModelStore

    create_keyspace(settings)
    versions = [fitted_logistic(seed, N_FEATURES) for seed in (0, 1)]
    with CassandraModelStore(settings) as store:
        for i, weights in enumerate(versions):
            store.publish_many(MODEL, [(segment(s), weights, None, None) for s in range(N_SEGMENTS)],
                               activate=i == 0)


async def topics_admin(settings: Settings, create: dict[str, int] | None = None,
                       delete: list[str] | None = None) -> None:
    from scorer.kafka import delete_topics, ensure_topics

    if create:
        await ensure_topics(settings, create)
    if delete:
        await delete_topics(settings, delete)


class Events:
    """Deterministic events: id <prefix>-<n>, segment n % 20, 20 features from a fixed pool."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        names = [f"f{i:02d}" for i in range(N_FEATURES)]
        rows = rng.normal(size=(1024, N_FEATURES)).round(4).tolist()
        self.pool = [dict(zip(names, row, strict=True)) for row in rows]

    def make(self, prefix: str, n: int) -> tuple[bytes, bytes]:
        event_id = f"{prefix}-{n}"
        return event_id.encode(), orjson.dumps({"id": event_id, "model": MODEL, "segment": segment(n % N_SEGMENTS),
                                                "features": self.pool[n % len(self.pool)]})


# ------------------------------------------------------------------------------------------- the worker


@dataclass
class Worker:
    proc: subprocess.Popen
    port: int
    app_id: str
    log: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            return response.read()

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
            if metric == name and all(found.get(k, "").strip('"') == v for k, v in labels.items()):
                total += float(value)
        return total


def start_worker(settings: Settings, topics: dict[str, str]) -> Worker:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    app_id = f"soak-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = LOG_DIR / f"{app_id}.log"
    args = [SCORER, "worker", "--input-topic", topics["events"], "--output-topic", topics["predictions"],
            "--dlq-topic", topics["dlq"], "--changes-topic", topics["changes"], "--app-id", app_id,
            "--web-port", str(port), "--web-host", "127.0.0.1", "--partitions", str(PARTITIONS),
            "--models", MODEL, "--poll-interval", "1.0"]
    env = {**os.environ, "SCORER_KEYSPACE": settings.keyspace, "SCORER_CHANGES_TOPIC": topics["changes"]}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=ROOT)
    worker = Worker(proc, port, app_id, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}; see {log}")
        try:
            state = orjson.loads(worker.get("/models"))
            if state["worker"]["ready"] and state["worker"]["notices_ready"]:
                return worker
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the worker was not ready after 120 s; see {log}")


def stop_worker(worker: Worker) -> None:
    if worker.proc.poll() is None:
        worker.proc.send_signal(signal.SIGTERM)
        try:
            worker.proc.wait(40)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(10)


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Outputs:
    """What came out: ids (with copies), dead letters, per-segment version changes, outputs per second."""

    ids: Counter = field(default_factory=Counter)
    dead: int = 0
    first_ts: float | None = None
    last_ts: float = 0.0
    changes: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    per_second: Counter = field(default_factory=Counter)

    def add(self, value: dict[str, Any], ts: float, now: float, dead: bool) -> None:
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        self.per_second[int(now)] += 1
        if dead:
            self.dead += 1
            try:
                self.ids[orjson.loads(value["raw"])["id"]] += 1
            except Exception:  # noqa: BLE001 - not an event of ours
                pass
            return
        self.ids[value["id"]] += 1
        seen = self.changes.setdefault(value["segment"], [])
        if not seen or seen[-1][1] != value["version"]:
            seen.append((now, value["version"]))


async def read_outputs(settings: Settings, topics: dict[str, str], out: Outputs, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topics["predictions"], topics["dlq"], bootstrap_servers=bootstrap(settings),
                                group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            now = time.time()
            for tp, records in batches.items():
                dead = tp.topic == topics["dlq"]
                for r in records:
                    out.add(orjson.loads(r.value), r.timestamp / 1000.0, now, dead)
    finally:
        await consumer.stop()


async def produce(settings: Settings, topic: str, events: Events, prefix: str, *, n: int | None = None,
                  rate: float | None = None, seconds: float | None = None) -> list[str]:
    """Send ``n`` events as fast as possible, or ``rate`` per second for ``seconds``; the ids acknowledged."""
    from scorer.kafka import new_producer

    producer = new_producer(settings, linger_ms=5)
    await producer.start()
    sent: list[tuple[str, asyncio.Future]] = []
    try:
        started = time.monotonic()
        i = 0
        while True:
            if rate is None:
                due = n or 0
            else:
                elapsed = time.monotonic() - started
                if seconds is not None and elapsed >= seconds:
                    break
                due = int(elapsed * rate)
            while i < due:
                if seconds is not None and i % 1000 == 0 and time.monotonic() - started >= seconds:
                    break  # behind schedule: keep the run's length; the report shows the rate reached
                key, value = events.make(prefix, i)
                sent.append((key.decode(), await producer.send(topic, value, key=key)))
                i += 1
            if rate is None:
                break
            await asyncio.sleep(0.01)
        await producer.flush()
        done = await asyncio.gather(*(fut for _, fut in sent), return_exceptions=True)
    finally:
        await producer.stop()
    failed = sum(isinstance(d, BaseException) for d in done)
    if failed:
        print(f"warning: {failed} events could not be sent (not counted as sent)", file=sys.stderr)
    return [event_id for (event_id, _), d in zip(sent, done, strict=True) if not isinstance(d, BaseException)]


async def consumer_lag(admin: Any, consumer: Any, group: str, topic: str, partitions: list[Any]) -> int | None:
    committed = await admin.list_consumer_group_offsets(group)
    ends = await consumer.end_offsets(partitions)
    total = 0
    for tp in partitions:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        total += max(0, ends[tp] - done)
    return total


async def sampler(settings: Settings, worker: Worker, topics: dict[str, str], t0: float, samples: list[dict],
                  stop: asyncio.Event, every: float) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(settings))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(settings), group_id=None)
    await admin.start()
    await consumer.start()
    partitions = [TopicPartition(topics["events"], p) for p in range(PARTITIONS)]
    try:
        while not stop.is_set():
            tick = time.time()
            try:
                lag = await consumer_lag(admin, consumer, worker.app_id, topics["events"], partitions)
            except Exception:  # noqa: BLE001 - one missed sample
                lag = None
            samples.append({"t": round(tick - t0, 2), "rss_mb": worker.rss_mb(), "lag": lag})
            await asyncio.sleep(max(0.0, every - (time.time() - tick)))
    finally:
        await consumer.stop()
        await admin.close()


async def swapper(settings: Settings, topics: dict[str, str], t0: float, log: list[dict], stop: asyncio.Event,
                  every: float, session: Any, until: float) -> None:
    """At t0 + every, t0 + 2 every, ... flip one segment between v1 and v2, alternating scorer activate and raw CQL.

    Swaps run on that timetable whatever each takes (``scorer activate`` is a new process: seconds on a busy
    machine). A swap's moment is its pointer write: the activation log's time for the CLI, the UPDATE's end for CQL.
    """
    current = dict.fromkeys(range(N_SEGMENTS), 1)
    env = {**os.environ, "SCORER_KEYSPACE": settings.keyspace, "SCORER_CHANGES_TOPIC": topics["changes"]}
    ks = settings.keyspace

    async def one(k: int, seg: str, version: int) -> None:
        method = "cli" if k % 2 == 0 else "cql"
        started = time.time()
        error = None
        if method == "cli":
            proc = await asyncio.create_subprocess_exec(SCORER, "activate", MODEL, seg, str(version), "--reason",
                                                        "soak", env=env, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.PIPE)
            _, err = await proc.communicate()
            ok = proc.returncode == 0
            written = None
            if ok:
                row = (await asyncio.to_thread(session.execute, f"SELECT at FROM {ks}.activations WHERE model = %s "
                                               "AND segment = %s LIMIT 1", (MODEL, seg))).one()
                written = row.at.replace(tzinfo=UTC).timestamp() if row is not None else None
            else:
                error = err.decode(errors="replace").strip()[-300:]
        else:
            try:
                await asyncio.to_thread(session.execute, f"UPDATE {ks}.active_models SET version = %s "
                                        "WHERE model = %s AND segment = %s", (version, MODEL, seg))
                ok = True
            except Exception as exc:  # noqa: BLE001 - reported as a failed swap request
                ok, error = False, f"{type(exc).__name__}: {exc}"
            written = time.time()
        at = written or time.time()
        log.append({"t": round(at - t0, 2), "at": at, "segment": seg, "version": version, "method": method,
                    "ok": ok, "request_s": round(time.time() - started, 2), "error": error})

    tasks = []
    k = 0
    while True:
        at = t0 + (k + 1) * every
        if at > until:  # a swap needs events after it to be seen
            break
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, at - time.time()))
            break
        except TimeoutError:
            pass
        index = k % N_SEGMENTS
        current[index] = 3 - current[index]
        tasks.append(asyncio.ensure_future(one(k, segment(index), current[index])))
        k += 1
    await asyncio.gather(*tasks)
    log.sort(key=lambda swap: swap["at"])


def propagation(swaps: list[dict], out: Outputs) -> None:
    """Each swap's delay: first output of its segment on the new version after the write (None: never seen)."""
    for swap in swaps:
        seen = [at for at, version in out.changes.get(swap["segment"], []) if version == swap["version"]
                and at >= swap["at"] - 0.05]
        swap["propagation_ms"] = round((min(seen) - swap["at"]) * 1000, 1) if swap["ok"] and seen else None


def slope_per_minute(ts: list[float], values: list[float]) -> float | None:
    if len(ts) < 3:
        return None
    return float(np.polyfit(np.asarray(ts) / 60.0, np.asarray(values), 1)[0])


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from scorer.store.connection import connect

    tag = uuid.uuid4().hex[:8]
    topics = {name: f"soak-{name}-{tag}" for name in ("events", "predictions", "dlq", "changes")}
    await topics_admin(settings, create={topics["events"]: PARTITIONS, topics["predictions"]: PARTITIONS,
                                         topics["dlq"]: 1, topics["changes"]: 1})
    events = Events()
    out = Outputs()
    stop_reader = asyncio.Event()
    reader = asyncio.ensure_future(read_outputs(settings, topics, out, stop_reader))
    worker = None
    cluster, session = connect(settings)
    try:
        sent: list[str] = []
        capacity = None
        if args.rate is None:
            print(f"measuring capacity: a backlog of {args.backlog:,} events ...", flush=True)
            sent += await produce(settings, topics["events"], events, "cap", n=args.backlog)
        worker = await asyncio.to_thread(start_worker, settings, topics)
        if args.rate is None:
            deadline = time.monotonic() + 600
            while len(out.ids) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if out.first_ts is None or len(out.ids) < len(sent):
                raise RuntimeError(f"the backlog was not drained ({len(out.ids)} of {len(sent)}); see {worker.log}")
            capacity = len(sent) / max(1e-3, out.last_ts - out.first_ts)
        rate = args.rate if args.rate is not None else capacity / 2
        seconds = args.minutes * 60
        print(f"capacity {capacity:,.0f} events/s; soak at {rate:,.0f} events/s for {seconds:.0f} s, "
              f"a swap every {args.swap_every:g} s" if capacity else
              f"soak at {rate:,.0f} events/s for {seconds:.0f} s, a swap every {args.swap_every:g} s", flush=True)

        t0 = time.time()
        samples: list[dict] = []
        swaps: list[dict] = []
        stop = asyncio.Event()
        stop_sampling = asyncio.Event()
        sampling = asyncio.ensure_future(sampler(settings, worker, topics, t0, samples, stop_sampling,
                                                 args.sample_every))
        swapping = asyncio.ensure_future(swapper(settings, topics, t0, swaps, stop, args.swap_every, session,
                                                 until=t0 + seconds - 2.0))
        soak_ids = await produce(settings, topics["events"], events, "soak", rate=rate, seconds=seconds)
        produced_until = time.time() - t0
        stop.set()
        await swapping
        expected = set(sent) | set(soak_ids)
        deadline = time.monotonic() + 180
        while not expected <= set(out.ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # late duplicates would arrive now
        stop_sampling.set()
        await sampling
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker died (exit {worker.proc.returncode}); see {worker.log}")
        swaps_ok_metric = worker.metric("scorer_swaps_total", model=MODEL, result="ok")
        swaps_failed_metric = worker.metric("scorer_swaps_total", model=MODEL, result="failed")
        scored_metric = worker.metric("scorer_events_total", outcome="scored")
        worker_dead_letters = worker.metric("scorer_dead_letters_total")
    finally:
        stop_reader.set()
        if worker is not None:
            await asyncio.to_thread(stop_worker, worker)
        await reader
        cluster.shutdown()
        await topics_admin(settings, delete=list(topics.values()))

    propagation(swaps, out)
    lost = sorted(expected - set(out.ids))
    duplicates = sum(c - 1 for i, c in out.ids.items() if i in expected and c > 1)
    soak_samples = [s for s in samples if s["t"] <= produced_until]
    rss = [(s["t"], s["rss_mb"]) for s in soak_samples if s["rss_mb"] is not None]
    half = [(t, v) for t, v in rss if t >= produced_until / 2]
    lags = [s["lag"] for s in soak_samples if s["lag"] is not None]
    delays = [s["propagation_ms"] for s in swaps if s["propagation_ms"] is not None]
    slope = slope_per_minute([t for t, _ in half], [v for _, v in half])
    return {
        "config": {"minutes": args.minutes, "swap_every_s": args.swap_every, "segments": N_SEGMENTS,
                   "features": N_FEATURES, "partitions": PARTITIONS, "backlog": args.backlog if capacity else None},
        "capacity_eps": round(capacity, 1) if capacity else None,
        "rate_eps": round(rate, 1),
        "achieved_eps": round(len(soak_ids) / max(1e-3, produced_until), 1),
        "short": len(soak_ids) / max(1e-3, produced_until) < SHORT_FEED * rate,
        "soak_seconds": round(produced_until, 1),
        "events": {"sent": len(expected), "outputs": sum(out.ids.values()), "lost": len(lost), "lost_ids": lost[:20],
                   "duplicates": duplicates, "failed": out.dead, "worker_dead_letters": worker_dead_letters,
                   "worker_scored": scored_metric},
        "swaps": {
            "requested": len(swaps), "request_failures": sum(not s["ok"] for s in swaps),
            "applied_worker_metric": swaps_ok_metric, "failed_worker_metric": swaps_failed_metric,
            "seen_in_outputs": len(delays),
            "propagation_ms": {"p50": percentile(delays, 50), "p99": percentile(delays, 99),
                               "max": max(delays, default=None)},
            "by_method": {m: {"n": sum(1 for s in swaps if s["method"] == m),
                              "p50_ms": percentile([s["propagation_ms"] for s in swaps if s["method"] == m
                                                    and s["propagation_ms"] is not None], 50)}
                          for m in ("cli", "cql")},
        },
        "memory": {
            "rss_start_mb": round(rss[0][1], 1) if rss else None, "rss_end_mb": round(rss[-1][1], 1) if rss else None,
            "rss_max_mb": round(max(v for _, v in rss), 1) if rss else None,
            "growth_mb": round(rss[-1][1] - rss[0][1], 1) if rss else None,
            "second_half_slope_mb_per_min": round(slope, 3) if slope is not None else None,
            "flat": slope is not None and abs(slope) < FLAT_MB_PER_MIN,
        },
        "lag": {"max": max(lags, default=None), "p95": percentile(lags, 95),
                "mean": round(float(np.mean(lags)), 1) if lags else None, "final": lags[-1] if lags else None,
                "after_drain": next((s["lag"] for s in reversed(samples) if s["lag"] is not None), None)},
        "throughput_eps": round(len(soak_ids) / max(1e-3, produced_until), 1),
        "samples": samples,
        "swap_log": [{k: v for k, v in s.items() if k != "at"} for s in swaps],
        "worker_log": str(worker.log) if worker else None,
    }


# ------------------------------------------------------------------------------------------- report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] for s in samples]
    fig, (ax_mem, ax_lag) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, constrained_layout=True)
    ax_mem.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", lw=1.6, label="worker RSS")
    ax_lag.plot(t, [s["lag"] for s in samples], color="tab:orange", lw=1.2, label="consumer lag")
    colours = {"cli": "tab:green", "cql": "tab:purple"}
    labelled = set()
    for swap in report["swap_log"]:
        for ax in (ax_mem, ax_lag):
            label = None
            if ax is ax_mem and swap["method"] not in labelled:
                label = "swap: scorer activate" if swap["method"] == "cli" else "swap: raw CQL UPDATE"
                labelled.add(swap["method"])
            ax.axvline(swap["t"], color=colours[swap["method"]], lw=0.9, alpha=0.65, ls="--", label=label)
    soak_end = report["soak_seconds"]
    for ax in (ax_mem, ax_lag):
        ax.axvspan(soak_end, max(t[-1], soak_end) if t else soak_end, color="0.9", zorder=0)
        ax.grid(alpha=0.3)
    mem = report["memory"]
    ax_mem.set_ylabel("resident memory (MB)")
    rss_values = [s["rss_mb"] for s in samples if s["rss_mb"] is not None]
    if rss_values:
        low, high = min(rss_values), max(rss_values)
        ax_mem.set_ylim(max(0.0, low - max(20.0, 0.5 * (high - low))), high + max(20.0, 0.5 * (high - low)))
    ax_mem.set_title(f"worker memory: {mem['rss_start_mb']} -> {mem['rss_end_mb']} MB, second-half slope "
                     f"{mem['second_half_slope_mb_per_min']} MB/min ({'flat' if mem['flat'] else 'NOT flat'})",
                     fontsize=10, loc="left")
    ax_mem.legend(loc="lower right", fontsize=8)
    lag = report["lag"]
    ax_lag.set_ylabel("consumer lag (events)")
    ax_lag.set_xlabel("seconds since the soak started (grey: draining after the last event was sent)")
    ax_lag.set_ylim(bottom=0)
    rate = report["rate_eps"]
    seconds_axis = ax_lag.secondary_yaxis("right", functions=(lambda n: n / rate, lambda s: s * rate))
    seconds_axis.set_ylabel("seconds of input behind")
    ax_lag.set_title(f"lag (input end offsets - committed): max {lag['max']}, p95 {lag['p95']}, "
                     f"after draining {lag['after_drain']}"
                     f"  |  {report['rate_eps']:,.0f} events/s, {report['swaps']['requested']} swaps, "
                     f"{report['events']['lost']} lost", fontsize=10, loc="left")
    fig.suptitle(f"scorer soak: {report['soak_seconds'] / 60:.1f} min at half capacity, a swap every "
                 f"{report['config']['swap_every_s']:g} s", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ev, sw, mem, lag = report["events"], report["swaps"], report["memory"], report["lag"]
    table = Table(title="soak: one worker at half capacity with a swap every "
                        f"{report['config']['swap_every_s']:g} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("capacity (events/s)", f"{report['capacity_eps']:,.0f}" if report["capacity_eps"] else "given"),
        ("soak rate aimed / reached (events/s)", f"{report['rate_eps']:,.0f} / {report['achieved_eps']:,.0f}"
         + (" (SHORT: the load generator fell behind)" if report["short"] else "")),
        ("soak duration (s)", f"{report['soak_seconds']:.0f}"),
        ("events sent", f"{ev['sent']:,}"),
        ("events lost", f"{ev['lost']}"),
        ("duplicates", f"{ev['duplicates']}"),
        ("failed (dead letters)", f"{ev['failed']}"),
        ("swaps requested / applied (worker)", f"{sw['requested']} / {sw['applied_worker_metric']:.0f}"),
        ("swaps seen in outputs", f"{sw['seen_in_outputs']}"),
        ("swap propagation p50 / p99 / max (ms)",
         f"{sw['propagation_ms']['p50']} / {sw['propagation_ms']['p99']} / {sw['propagation_ms']['max']}"),
        ("RSS start / end / max (MB)", f"{mem['rss_start_mb']} / {mem['rss_end_mb']} / {mem['rss_max_mb']}"),
        ("RSS second-half slope (MB/min)", f"{mem['second_half_slope_mb_per_min']} "
                                           f"({'flat' if mem['flat'] else 'NOT flat'})"),
        ("lag max / p95 during the soak (events)", f"{lag['max']} / {lag['p95']}"),
        ("lag after draining (events)", f"{lag['after_drain']}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--rate", type=float, help="events/s to send (default: half the measured capacity)")
    parser.add_argument("--swap-every", type=float, default=10.0, help="seconds between swaps (default 10)")
    parser.add_argument("--backlog", type=int, default=30_000, help="events drained to measure capacity")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="a short run (< 1 min): 0.3 min, swaps every 5 s")
    parser.add_argument("--out", type=Path, default=REPORTS / "bench_soak.json")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.swap_every, args.backlog = 0.3, 5.0, 5_000
    if args.minutes <= 0 or args.swap_every <= 0 or args.backlog < 100:
        parser.error("--minutes and --swap-every must be positive, --backlog at least 100")

    settings = load_settings(keyspace=f"soak_{uuid.uuid4().hex[:12]}")
    setup_store(settings)
    try:
        report = asyncio.run(run(args, settings))
    finally:
        drop_keyspace(settings)
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_avg_1m": round(os.getloadavg()[0], 2)}
    report["command"] = " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(report, png)
    report["plot"] = str(png)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {args.out} and {png}")
    ok = report["events"]["lost"] == 0 and report["events"]["failed"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
