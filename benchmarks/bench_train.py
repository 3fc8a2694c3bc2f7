"""Per-segment training throughput: many small segments from one file, as ``scorer train --out`` does it.

Writes a synthetic CSV (segments interleaved, 5% missing values), then times reading, training every
segment (fit, export, parity check, metrics, stats) and writing the outputs. Prints a table and writes
reports/bench_train.json.

    .venv/bin/python -m benchmarks.bench_train --segments 1000 --rows 100 --features 10 --arch logistic
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from trainers.data import load_training_data
from trainers.output import write_outputs
from trainers.segment import TrainConfig, train_segments


def write_csv(path: Path, n_segments: int, rows: int, n_features: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    n = n_segments * rows
    segments = np.repeat(np.arange(n_segments), rows)
    X = rng.normal(size=(n, n_features))
    weights = rng.normal(size=(n_segments, n_features))
    y = (np.einsum("ij,ij->i", X, weights[segments]) + rng.logistic(size=n) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    order = rng.permutation(n)
    with path.open("w") as handle:
        handle.write("segment," + ",".join(f"f{j}" for j in range(n_features)) + ",label\n")
        for i in order:
            cells = ["" if np.isnan(v) else f"{v:.5f}" for v in X[i]]
            handle.write(f"S{segments[i]:05d},{','.join(cells)},{y[i]}\n")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--arch", default="logistic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=Path("reports/bench_train.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "train.csv"
        n_rows = write_csv(data_path, args.segments, args.rows, args.features, args.seed)
        start = time.perf_counter()
        data = load_training_data(data_path, segment_col="segment", target="label")
        read_s = time.perf_counter() - start
        config = TrainConfig(arch=args.arch, min_rows=min(50, args.rows), seed=args.seed)
        start, cpu_start = time.perf_counter(), time.process_time()
        report = train_segments(data, config)
        train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        write_outputs(report, Path(tmp) / "out", model="bench", target="label", segment_col="segment", config=config)
        write_s = time.perf_counter() - start

    trained = len(report.results)
    rows = [
        ("read CSV", read_s, f"{n_rows} rows x {args.features} features"),
        ("train all segments", train_s, f"{trained} trained, {len(report.skipped)} skipped"),
        ("  of which CPU", train_cpu_s, "process CPU time (wall exceeds it when the machine is shared)"),
        ("per segment", train_s / max(trained, 1), f"{1000 * train_s / max(trained, 1):.1f} ms wall, "
                                                   f"{1000 * train_cpu_s / max(trained, 1):.1f} ms CPU"),
        ("write --out files", write_s, f"{trained} .npz + sidecars + summary.json"),
    ]
    print(f"arch={args.arch} segments={args.segments} rows/segment={args.rows} features={args.features}")
    for name, seconds, note in rows:
        print(f"  {name:<20} {seconds:8.3f} s   {note}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps({
        "arch": args.arch, "segments": args.segments, "rows_per_segment": args.rows, "features": args.features,
        "read_s": read_s, "train_s": train_s, "train_cpu_s": train_cpu_s,
        "per_segment_ms": 1000 * train_s / max(trained, 1), "per_segment_cpu_ms": 1000 * train_cpu_s / max(trained, 1),
        "write_s": write_s, "trained": trained, "skipped": len(report.skipped),
    }, indent=2))


if __name__ == "__main__":
    main()
