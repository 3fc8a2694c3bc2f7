#!/usr/bin/env bash
# Flame graph of one `scorer worker` draining a bench_worker backlog (py-spy attached to the worker's pid).
#   scripts/profile_worker.sh logistic|forest [events] [seconds]
# Writes reports/profiles/worker-<arch>.svg and the next seconds as collapsed stacks (worker-<arch>.collapsed.txt) for per-function totals.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-logistic}; events=${2:-600000}; seconds=${3:-8}
out=reports/profiles; mkdir -p "$out"
.venv/bin/python benchmarks/bench_worker.py --throughput-only --kinds scorer --rounds 1 --events "$events" \
    --arch "$arch" > "$out/worker-$arch.bench.txt" 2>&1 &
bench=$!
pid=""
while [ -z "$pid" ] && kill -0 "$bench" 2>/dev/null; do
    pid=$(pgrep -n -f "bin/scorer worker --input-topic bw-in-" -P "$bench" || true); sleep 0.2
done
[ -n "$pid" ] || { echo "no worker appeared"; wait "$bench"; exit 1; }
.venv/bin/py-spy record --pid "$pid" --duration "$seconds" --rate 200 --nonblocking -o "$out/worker-$arch.svg" || true
.venv/bin/py-spy record --pid "$pid" --duration "$seconds" --rate 200 --nonblocking --format raw \
    -o "$out/worker-$arch.collapsed.txt" || true
wait "$bench"
tail -3 "$out/worker-$arch.bench.txt"
