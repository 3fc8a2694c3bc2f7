"""Monitoring costs: drift binning per event, the label join and rolling metrics, and their memory.

CPU time (``time.process_time``), not wall time, so a busy shared machine does not inflate the numbers.
Rows:

- drift binning of a 20-feature model, per event, for groups of 10, 100 and 1,000 rows binned one group
  at a time (what a per-group hook would pay) and held then binned per key at the flush (what the worker
  does: 100 segments x 10 rows per micro-batch, binned once per second);
- the label join: events + predictions + labels per second, and bytes per waiting event;
- rolling metrics: outcomes added per second, and one ``metrics()`` (AUC, log loss, accuracy) on a full
  window of 500.

Prints a table, writes reports/bench_monitor.json.

    .venv/bin/python benchmarks/bench_monitor.py
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from scorer.monitor.accuracy import BINARY, LiveMetrics, MetricsConfig, RollingWindow
from scorer.monitor.drift import DriftConfig, DriftReference, bucket_counts
from scorer.monitor.join import LabelJoin
from scorer.monitor.observer import DriftObserver
from trainers.stats import feature_stats

ROOT = Path(__file__).resolve().parents[1]
FEATURES = tuple(f"f{i}" for i in range(20))


def cpu(fn, repeats: int) -> float:
    started = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - started) / repeats


def drift_rows(rng: np.random.Generator) -> list[dict]:
    ref = DriftReference.from_stats(FEATURES, feature_stats(rng.normal(size=(5000, 20)), FEATURES))
    rows = []
    for n in (10, 100, 1000):
        X = rng.normal(size=(n, 20))
        seconds = cpu(lambda X=X: bucket_counts(X, ref), max(20, 20_000 // n))
        rows.append({"what": f"drift: bin one group of {n}", "us_per_event": seconds / n * 1e6})
    observer = DriftObserver(lambda *key: None, _no_send, config=DriftConfig(every_events=10**9))
    for s in range(100):
        observer.monitor.set_reference(("m", f"s{s}", 1), ref)
    groups = [rng.normal(size=(10, 20)) for _ in range(100)]

    def one_second_of_batches() -> None:
        for _ in range(20):  # 20 micro-batches of 1,000 events over 100 segments
            for s, X in enumerate(groups):
                observer.observe("m", f"s{s}", 1, X)
        observer._bin_all()

    seconds = cpu(one_second_of_batches, 5)
    rows.append({"what": "drift: held per key, binned at the flush (100 segments x 10 rows x 20 batches)",
                 "us_per_event": seconds / 20_000 * 1e6})
    return rows


async def _no_send(messages: list) -> None:
    return None


def join_rows() -> list[dict]:
    n = 100_000
    join = LabelJoin(ttl=3600, max_entries=50_000)
    raw = b'{"id": "e-000000", "model": "delay", "segment": "S042", "features": {' + b", ".join(
        f'"f{i}": 1.2345'.encode() for i in range(20)) + b"}}"
    started = time.process_time()
    for i in range(n):
        event_id = f"e-{i}"
        join.add_event(event_id, raw)
        join.add_prediction(event_id, (1, False), ("delay", "S042", 1, 0.73, False))
        if i >= 1000:
            join.add_label(f"e-{i - 1000}", 1)
    seconds = time.process_time() - started
    tracemalloc.start()
    sized = LabelJoin(ttl=3600, max_entries=20_000)
    for i in range(20_000):
        sized.add_event(f"e-{i}", bytes(raw))
        sized.add_prediction(f"e-{i}", (1, False), ("delay", "S042", 1, 0.73, False))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return [{"what": "join: event + prediction + label", "us_per_event": seconds / n * 1e6},
            {"what": "join: bytes per waiting event (event + one prediction)", "bytes": current / 20_000}]


def metrics_rows(rng: np.random.Generator) -> list[dict]:
    live = LiveMetrics(MetricsConfig(window=500, max_keys=10_000))
    scores = rng.random(100_000)
    started = time.process_time()
    for i, p in enumerate(scores):
        live.add(("m", f"s{i % 1000}", 1), BINARY, float(p), 1.0 if p > 0.5 else 0.0)
    seconds = time.process_time() - started
    window = RollingWindow(BINARY, 500)
    for p in scores[:500]:
        window.add(float(p), float(p > 0.4))
    return [{"what": "metrics: add one outcome", "us_per_event": seconds / scores.size * 1e6},
            {"what": "metrics: metrics() on a full window of 500", "us_per_call": cpu(window.metrics, 500) * 1e6}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_monitor.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = drift_rows(rng) + join_rows() + metrics_rows(rng)
    table = Table(title="monitoring costs (CPU time)")
    table.add_column("what")
    table.add_column("value", justify="right")
    for row in rows:
        if "us_per_event" in row:
            value = f"{row['us_per_event']:.2f} us/event"
        elif "us_per_call" in row:
            value = f"{row['us_per_call']:.1f} us/call"
        else:
            value = f"{row['bytes']:.0f} B"
        table.add_row(row["what"], value)
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
