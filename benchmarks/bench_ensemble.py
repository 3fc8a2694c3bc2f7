"""Ensemble cost in the worker: 100 segments served by one logistic model each, then by an ensemble of three
logistic members each (the segment's v1 and v2 and a shared ``__global__`` model, weighted mean), same run.

Reuses bench_worker's machinery on the dev stack (fresh uuid keyspace and topics, dropped/deleted afterwards):
a backlog of ``--events`` events is drained by ``scorer worker`` with every segment on its single model, then
with every segment released to its ensemble version, alternating for ``--rounds``; events/s from the first to
the last output's Kafka timestamp, best per kind, and CPU per event. The target: an ensemble of three costs at
most 3.5x one member (``single eps / ensemble eps <= 3.5``). An in-process kernel comparison (one fused predict
over a batch of 1,000 rows spread over the 100 segments) shows the scoring part alone.

Prints a table, writes reports/bench_ensemble.json.

    .venv/bin/python benchmarks/bench_ensemble.py [--events 100000] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_worker as bw  # noqa: E402
from benchmarks._support import drop_keyspace, fitted_logistic, write_report  # noqa: E402
from scorer.config import Settings, load_settings  # noqa: E402

TARGET_RATIO = 3.5
GLOBAL = "__global__"


def setup(settings: Settings) -> dict[str, int]:
    """bench_worker's store (v1 live, v2 published per segment), a global model, and one ensemble per segment."""
    from scorer.ensemble import compose
    from scorer.store import CassandraModelStore

    bw.setup_store(settings)
    with CassandraModelStore(settings) as store:
        store.publish(bw.MODEL, GLOBAL, fitted_logistic(99, bw.N_FEATURES))
        return {bw.segment(i): compose(store, bw.MODEL, bw.segment(i), [
            (bw.MODEL, bw.segment(i), 1), (bw.MODEL, bw.segment(i), 2), (bw.MODEL, GLOBAL, 1)], weights=[2, 1, 1])
            for i in range(bw.N_SEGMENTS)}


class VersionReader(bw.Reader):
    """bench_worker's output reader, keeping each output's version so a run proves what it measured."""

    last: VersionReader | None = None

    def start(self, keep: bool = False) -> bw.Reader:
        VersionReader.last = self
        return super().start(keep=True)


def release(settings: Settings, mapping: dict[str, int]) -> None:
    from scorer.store import CassandraModelStore

    with CassandraModelStore(settings) as store:
        store.release(bw.MODEL, mapping, reason="bench_ensemble")


def kernels(settings: Settings, ensembles: dict[str, int], repeat: int) -> dict[str, float]:
    """Microseconds per 1,000-row batch over the 100 segments: one fused call for singles, one for ensembles."""
    from scorer.ensemble import MemberLoader, load_model
    from scorer.models import build
    from scorer.store import CassandraModelStore

    loader = MemberLoader()
    with CassandraModelStore(settings) as store:
        singles = [build(store.load(bw.MODEL, bw.segment(i), 1)) for i in range(bw.N_SEGMENTS)]
        combos = [load_model(store, bw.MODEL, bw.segment(i), ensembles[bw.segment(i)], loader)
                  for i in range(bw.N_SEGMENTS)]
    X = np.ascontiguousarray(bw.Events().X[:1000])
    owner = np.arange(1000) % bw.N_SEGMENTS
    out: dict[str, float] = {}
    for name, models in (("single", singles), ("ensemble", combos)):
        kind = type(models[0])
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeat):
                kind.predict_fused(models, X, owner)
            best = min(best, (time.perf_counter() - started) / repeat * 1e6)
        out[name] = best
    out["shared_members_built"] = float(loader.loads)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--worker-args", default="", help="Extra `scorer worker` flags.")
    parser.add_argument("--quick", action="store_true", help="30,000 events, 1 round.")
    args = parser.parse_args()
    bw.Reader = VersionReader  # drain() builds its reader from this name
    if args.quick:
        args.events, args.rounds = 30_000, 1

    from rich.console import Console
    from rich.table import Table

    console = Console()
    settings = load_settings(keyspace=f"bench_{uuid.uuid4().hex[:12]}")
    console.print(f"setting up keyspace {settings.keyspace}: {bw.N_SEGMENTS} segments, logistic on "
                  f"{bw.N_FEATURES} features, one 3-member ensemble per segment")
    report: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                          "load_avg": os.getloadavg()}, "args": vars(args)}
    try:
        ensembles = setup(settings)
        singles = {seg: 1 for seg in ensembles}
        runs: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for kind, mapping in (("single", singles), ("ensemble", ensembles)):
                release(settings, mapping)
                run = bw.drain(settings, "scorer", args.events, args)
                run["kind"] = kind
                served = {row[2] for row in VersionReader.last.rows}  # type: ignore[union-attr]
                expected = {1} if kind == "single" else set(mapping.values())
                if served != expected:
                    raise RuntimeError(f"{kind} run served versions {sorted(served)}; expected {sorted(expected)}")
                console.print(f"round {r + 1} {kind}: {run['eps']:,.0f} events/s ({run['span_s']:.1f} s), "
                              f"{run['us_cpu_per_event']:.1f} us CPU per event")
                runs.append(run)
        report["kernels_us_per_1000_rows"] = kernels(settings, ensembles, repeat=200)
    finally:
        drop_keyspace(settings)
    report["machine"]["load_avg_end"] = os.getloadavg()

    best = {k: max(run["eps"] for run in runs if run["kind"] == k) for k in ("single", "ensemble")}
    cpu = {k: min(run["us_cpu_per_event"] for run in runs if run["kind"] == k) for k in ("single", "ensemble")}
    ratio = best["single"] / best["ensemble"]
    k = report["kernels_us_per_1000_rows"]
    report["throughput"] = {"runs": runs, "best_eps": best, "us_cpu_per_event": cpu, "cost_ratio": ratio,
                            "cpu_ratio": cpu["ensemble"] / cpu["single"], "target_ratio": TARGET_RATIO,
                            "meets_target": ratio <= TARGET_RATIO}
    table = Table(title="ensemble of three logistic members vs one member (same run)")
    for column in ("measure", "single", "ensemble", "ratio (ensemble cost)", "target"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row("worker events/s (best)", f"{best['single']:,.0f}", f"{best['ensemble']:,.0f}", f"{ratio:.2f}x",
                  f"<= {TARGET_RATIO}x")
    table.add_row("worker us CPU per event", f"{cpu['single']:.1f}", f"{cpu['ensemble']:.1f}",
                  f"{cpu['ensemble'] / cpu['single']:.2f}x", "-")
    table.add_row("fused kernel us per 1,000 rows", f"{k['single']:.0f}", f"{k['ensemble']:.0f}",
                  f"{k['ensemble'] / k['single']:.2f}x", "-")
    console.print(table)
    console.print(f"shared __global__ member: {int(k['shared_members_built'])} member versions built for "
                  f"{bw.N_SEGMENTS} ensembles ({2 * bw.N_SEGMENTS + 1} distinct)")
    out = write_report(report, "bench_ensemble.json")
    console.print(f"wrote {out.relative_to(ROOT)}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
