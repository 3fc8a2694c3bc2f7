"""10,000 segments of one model: preload time, memory, throughput spread over every segment, and an LRU under Zipf.

On the dev stack's real Cassandra (fresh uuid keyspace, dropped afterwards), for each ``--arch`` (logistic
regression on 20 features; a 50-tree forest of depth 8) ``--segments`` segments are published with the store's
``publish_many`` and activated. Then, in a fresh process per arch (so memory figures are its own):

1. preload: a worker's :class:`~scorer.stream.cache.ModelCache` (``max_models`` = segments) starts: every
   pointer read and every version loaded (``load_many``), built and warmed; wall time, and RSS after minus
   RSS before (total and per model);
2. throughput: the worker's own :class:`~scorer.stream.scoring.BatchScorer` (decode, resolve, score, serialise;
   no Kafka) on batches of ``--batch-size`` events whose segments are spread over all segments, against the
   same with the events over 100 segments, rounds alternating; events/s and per-batch p50/p99 (ms), and the
   ratio (target >= 0.8);
3. Zipf: a cache with ``max_models`` = ``--max-models`` (2,000) serving events whose segment ranks follow a
   Zipf law (``--zipf`` exponent) over all segments: hit rate (events whose model was cached when their batch
   arrived), p99 of what a miss costs (time of the batch's load of its missing models, per batch and per
   missing model), and events/s.

Throughput here is the scoring path alone; ``bench_worker.py`` measures it behind Kafka. Every phase reports
the event count it aimed for beside the count it scored. Prints a table, writes reports/bench_segments.json.

    .venv/bin/python benchmarks/bench_segments.py [--segments 10000] [--arch logistic,forest] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks._support import create_keyspace, drop_keyspace, fitted_model, rss_bytes, write_report  # noqa: E402
from scorer.config import load_settings  # noqa: E402

N_FEATURES = 20
TARGETS = {"preload_s": {"logistic": 5.0}, "rss_total_mb": 1024.0, "spread_ratio": 0.8}
DISTINCT = {"logistic": 10, "forest": 3}
"""Distinct fitted models per arch, assigned round-robin (forests take a second each to fit)."""


def segment(i: int) -> str:
    return f"s{i:05d}"


class Record(NamedTuple):
    """What the scorer reads from an input message."""

    key: bytes
    value: bytes
    topic: str = "in"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0


# ------------------------------------------------------------------------------------------ setup


def publish(settings: Any, arch: str, n_segments: int) -> float:
    """``n_segments`` segments of model ``arch``, published and activated in releases of 1,000 (100 forests, about
    45 MB: the devstack's Cassandra has 768 MB of heap and 256 MB of direct memory); seconds."""
    chunk = 1000 if arch == "logistic" else 100
    from scorer.store import CassandraModelStore

    models = [fitted_model(arch, seed, N_FEATURES) for seed in range(DISTINCT[arch])]
    started = time.perf_counter()
    with CassandraModelStore(settings) as store:
        for start in range(0, n_segments, chunk):
            items = [(segment(i), models[i % len(models)], None, None)
                     for i in range(start, min(n_segments, start + chunk))]
            store.publish_many(arch, items, activate=True, reason="bench_segments")
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ one arch, own process


class Load:
    """Pre-encoded events of one model; ``batch(segments)`` turns a list of segment indices into records."""

    def __init__(self, model: str, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(4096, N_FEATURES)).round(4)
        names = [f"f{i:02d}" for i in range(N_FEATURES)]
        self._features = [orjson.dumps(dict(zip(names, row.tolist(), strict=True))) for row in X]
        self._model = orjson.dumps(model)
        self.n = 0

    def batch(self, segments: np.ndarray) -> list[Record]:
        out = []
        for s in segments.tolist():
            key = b"e-%d" % self.n
            out.append(Record(key, b'{"id":"%s","model":%s,"segment":"%s","features":%s}' % (
                key, self._model, segment(s).encode(), self._features[self.n % 4096])))
            self.n += 1
        return out


async def run_batches(scorer: Any, batches: list[list[Record]], cache: Any = None) -> dict[str, Any]:
    """Decode, resolve and score each batch like the worker does; per-batch times, hits and miss costs."""
    from scorer.stream.batch import Batch

    times, miss_costs, miss_per_model = [], [], []
    hits = events = dead = 0
    started = time.perf_counter()
    for records in batches:
        t0 = time.perf_counter()
        batch = Batch(records=records)
        scorer.decode(batch)
        if cache is not None:  # count cached (model, segment)s before resolve loads the missing ones
            present = {(e.model, e.segment) for e in batch.events if cache._entries.peek((e.model, e.segment))}
            hit = sum((e.model, e.segment) in present for e in batch.events)
            missing = len({(e.model, e.segment) for e in batch.events} - present)
            hits += hit
            t1 = time.perf_counter()
            await scorer.resolve(batch)
            if missing:
                cost = time.perf_counter() - t1
                miss_costs.append(cost * 1000)
                miss_per_model.append(cost * 1000 / missing)
        else:
            await scorer.resolve(batch)
        result = scorer.score(batch, final_attempt=True)
        dead += len(result.dead_letters)
        events += len(records)
        times.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"events": events, "seconds": wall, "eps": events / wall, "dead_letters": dead,
                           "batch_ms": pct(times)}
    if cache is not None:
        out.update(hit_rate=hits / max(1, events), miss_batch_ms=pct(miss_costs), miss_per_model_ms=pct(miss_per_model))
    return out


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "max": float(arr.max()),
            "n": int(arr.size)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Phases 1-3 for one arch, in this (fresh) process."""
    from scorer.store import CassandraModelStore
    from scorer.stream.cache import ModelCache
    from scorer.stream.scoring import BatchScorer

    settings = load_settings(keyspace=args.keyspace)
    model, n, size = args.arch, args.segments, args.batch_size
    out: dict[str, Any] = {"arch": model, "segments": n}
    store = CassandraModelStore(settings)
    try:
        store.active(model)  # connection and prepared statements warm before the clock starts
        gc.collect()
        rss0 = rss_bytes()
        cache = ModelCache(store, models=[model], max_models=n, poll_interval=3600)
        started = time.perf_counter()
        await cache.start()
        preload = time.perf_counter() - started
        gc.collect()
        rss1 = rss_bytes()
        out["preload"] = {"seconds": preload, "loaded": len(cache._entries), "aimed": n,
                          "rss_before_mb": rss0 / 2**20, "rss_after_mb": rss1 / 2**20,
                          "rss_models_mb": (rss1 - rss0) / 2**20, "rss_per_model_kb": (rss1 - rss0) / 1024 / n}

        scorer = BatchScorer(cache)
        load = Load(model)
        rng = np.random.default_rng(1)
        n_batches = max(1, args.events // size)
        hundred = rng.choice(n, size=100, replace=False)
        spreads = {"all": lambda: rng.integers(0, n, size=size), "hundred": lambda: rng.choice(hundred, size=size)}
        runs: dict[str, list[dict[str, Any]]] = {"all": [], "hundred": []}
        for _ in range(args.rounds):
            for name, draw in spreads.items():
                batches = [load.batch(draw()) for _ in range(n_batches)]
                runs[name].append(await run_batches(scorer, batches))
        best = {name: max(rs, key=lambda r: r["eps"]) for name, rs in runs.items()}
        out["spread"] = {"runs": runs, "best": best, "aimed_events": n_batches * size,
                         "ratio": best["all"]["eps"] / best["hundred"]["eps"]}
        del cache, scorer
        gc.collect()

        # Zipf over all segments with a smaller cache: ranks through a fixed permutation (hot ones anywhere).
        small = ModelCache(store, models=[model], max_models=args.max_models, poll_interval=3600)
        await small.start()
        scorer = BatchScorer(small)
        order = rng.permutation(n)

        def zipf() -> np.ndarray:
            ranks = np.empty(0, dtype=np.int64)
            while ranks.size < size:  # truncated to the n segments: redraw what falls beyond
                drawn = rng.zipf(args.zipf, size=size)
                ranks = np.concatenate([ranks, drawn[drawn <= n]])
            return order[ranks[:size] - 1]

        batches = [load.batch(zipf()) for _ in range(n_batches)]
        out["zipf"] = {**await run_batches(scorer, batches, cache=small), "max_models": args.max_models,
                       "exponent": args.zipf, "aimed_events": n_batches * size,
                       "evictions": small.metrics.evictions._value.get()}
        out["rss_end_mb"] = rss_bytes() / 2**20
    finally:
        store.close()
    return out


# ------------------------------------------------------------------------------------------ main


def fmt(x: float, spec: str = ",.0f") -> str:
    return "nan" if x != x else format(x, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--arch", default="logistic,forest", help="Comma-separated, of: logistic, forest.")
    parser.add_argument("--events", type=int, default=100_000, help="Events per throughput run and for Zipf.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--forest-segments", type=int,
                        help="Segments of the forest [default: --segments; --quick: 200]. A 50-tree forest of depth 8 "
                        "is about 450 KB of arrays: 10,000 of them are 4.5 GB in Cassandra and in the worker.")
    parser.add_argument("--max-models", type=int, default=2000,
                        help="Cache size of the Zipf phase (scaled by segments / --segments for a smaller arch).")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of segment popularity.")
    parser.add_argument("--quick", action="store_true", help="30,000 events per run, 2 rounds, 200 forests.")
    parser.add_argument("--measure", action="store_true", help="(internal) phases 1-3 for one arch, JSON out.")
    parser.add_argument("--keyspace", help="(internal, and to reuse a published keyspace with --keep).")
    parser.add_argument("--keep", action="store_true", help="Do not drop the keyspace at the end.")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 30_000, 2
        args.forest_segments = args.forest_segments or 200
    args.forest_segments = args.forest_segments or args.segments
    if args.measure:
        print(json.dumps(asyncio.run(measure(args))))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    archs = args.arch.split(",")
    reuse = args.keyspace is not None
    settings = load_settings(keyspace=args.keyspace or f"bench_{uuid.uuid4().hex[:12]}")
    report: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                          "load_avg": os.getloadavg()}, "args": vars(args), "archs": {}}
    try:
        if not reuse:
            create_keyspace(settings)
        for arch in archs:
            n = args.segments if arch == "logistic" else args.forest_segments
            max_models = max(1, args.max_models * n // args.segments)
            if not reuse:
                console.print(f"publishing {n:,} segments of {arch} into {settings.keyspace} ...")
                report.setdefault("publish_s", {})[arch] = seconds = publish(settings, arch, n)
                console.print(f"  published in {seconds:.1f} s")
            command = [sys.executable, __file__, "--measure", "--arch", arch, "--keyspace", settings.keyspace,
                       "--segments", str(n), "--events", str(args.events), "--rounds", str(args.rounds),
                       "--batch-size", str(args.batch_size), "--max-models", str(max_models),
                       "--zipf", str(args.zipf)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"measure {arch} failed:\n{done.stderr[-3000:]}")
            report["archs"][arch] = result = json.loads(done.stdout.strip().splitlines()[-1])
            console.print(f"  {arch}: preload {result['preload']['seconds']:.2f} s, "
                          f"spread ratio {result['spread']['ratio']:.2f}")
    finally:
        if not args.keep:
            drop_keyspace(settings)
    report["machine"]["load_avg_end"] = os.getloadavg()

    table = Table(title=f"segments of one model ({os.cpu_count()} CPUs, load "
                        f"{report['machine']['load_avg'][0]:.1f}; scoring path without Kafka)")
    for column in ("arch", "measure", "value", "target", "ok"):
        table.add_column(column)
    for arch, r in report["archs"].items():
        pre, spread, zipf = r["preload"], r["spread"], r["zipf"]
        target_s = TARGETS["preload_s"].get(arch)
        all_, hundred = spread["best"]["all"], spread["best"]["hundred"]
        rows = [
            (f"preload all {r['segments']:,} (s)", f"{pre['seconds']:.2f} ({pre['loaded']:,} of {pre['aimed']:,})",
             f"< {target_s:.0f}" if target_s else "", "" if not target_s else pre["seconds"] < target_s
             and pre["loaded"] == pre["aimed"]),
            ("RSS of the models: total (MB) / per model (KB)",
             f"{pre['rss_models_mb']:,.0f} / {pre['rss_per_model_kb']:.1f}", "", ""),
            ("RSS of the process after preload (MB)", f"{pre['rss_after_mb']:,.0f}",
             f"< {TARGETS['rss_total_mb']:.0f}" if arch == "logistic" else "",
             pre["rss_after_mb"] < TARGETS["rss_total_mb"] if arch == "logistic" else ""),
            ("RSS of the models extrapolated to 10,000 segments (MB)",
             f"{pre['rss_per_model_kb'] * 10_000 / 1024:,.0f}", "", ""),
            (f"events/s over all {r['segments']:,} segments (events scored / aimed)",
             f"{fmt(all_['eps'])} ({all_['events']:,} / {spread['aimed_events']:,})", "", ""),
            ("events/s over 100 segments (events scored / aimed)",
             f"{fmt(hundred['eps'])} ({hundred['events']:,} / {spread['aimed_events']:,})", "", ""),
            ("all segments / 100 segments", f"{spread['ratio']:.2f}", f">= {TARGETS['spread_ratio']}",
             spread["ratio"] >= TARGETS["spread_ratio"]),
            ("batch p50 / p99 (ms): all segments",
             f"{all_['batch_ms']['p50']:.1f} / {all_['batch_ms']['p99']:.1f}", "", ""),
            ("batch p50 / p99 (ms): 100 segments",
             f"{hundred['batch_ms']['p50']:.1f} / {hundred['batch_ms']['p99']:.1f}", "", ""),
            (f"Zipf {zipf['exponent']} with max_models={zipf['max_models']:,}: hit rate",
             f"{zipf['hit_rate']:.3f}", "", ""),
            ("Zipf: miss cost p50 / p99 (ms per batch with misses)",
             f"{zipf['miss_batch_ms']['p50']:.1f} / {zipf['miss_batch_ms']['p99']:.1f}", "", ""),
            ("Zipf: miss cost p50 / p99 (ms per missing model)",
             f"{zipf['miss_per_model_ms']['p50']:.2f} / {zipf['miss_per_model_ms']['p99']:.2f}", "", ""),
            ("Zipf: events/s (scored / aimed), evictions",
             f"{fmt(zipf['eps'])} ({zipf['events']:,} / {zipf['aimed_events']:,}), {zipf['evictions']:,.0f}",
             "", ""),
            ("dead letters (all runs)", str(sum(x["dead_letters"] for rs in spread["runs"].values() for x in rs)
                                            + zipf["dead_letters"]), "0", None),
        ]
        for name, value, target, ok in rows:
            if ok is None:
                ok = value == "0"
            table.add_row(arch, name, value, target, "" if ok == "" else ("yes" if ok else "NO"))
    console.print(table)
    out = write_report(report, "bench_segments.json")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
