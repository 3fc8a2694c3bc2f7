"""Swap benchmark: how soon a pointer change shows in a live worker's outputs, stage by stage, and what swaps cost.

On the dev stack (fresh keyspace and topics, dropped/deleted afterwards), one ``scorer worker`` (default flags,
``--poll-interval 0.25``) scores a steady stream (``--rate``, default 5,000 events/s) over 100 segments of a
20-feature logistic model. Steady windows and bursts of swaps alternate (``--blocks``, default 5, so that the
shared machine's changing background load hits both alike): 100 swaps in all (each segment once, ``--swap-gap``
apart), alternating between

- notice: the pointer written as ``scorer activate`` does, its model-changes notice published the CLI's way
  (:func:`scorer.kafka.notices.announce`, the call the CLI makes: its producer connects during the write);
- cql: a raw ``UPDATE active_models`` only, seen by the worker's poll.

Propagation = the first output of the segment on its new version, read back by a read_committed consumer, minus
the end of the pointer write. The worker's ``/models`` ``recent_swaps`` stamps split it into stages: notice
published, change seen (notice received / poll started), pointer read, weights read and built, new model live;
then the first new-version output's Kafka timestamp (scored and sent) and its read-back (transaction committed,
fetched). The harness's consumer uses ``fetch_max_wait_ms=5``, so it adds no long-poll wait of its own.

Also: e2e latency p50/p99 (read time minus send time) of events sent in the steady windows and in the swap
bursts (target: p99 during swaps <= 1.2x the steady p99), and the Cassandra reads of ``active_models`` per
second the worker's polling costs, measured by Cassandra's own read counter in the steady windows.
The swaps are made by a child process: its Cassandra session and notice producer must not share a GIL with the
load generator and the reader, whose time stamps are the latency. ``--guarantees`` picks the delivery
guarantee(s), one worker each (the default, exactly-once; ``both`` adds at-least-once); ``--baseline`` runs
another checkout's worker before each (before/after in one run).

    .venv/bin/python benchmarks/bench_swap.py [--rate 5000] [--swaps 100] [--guarantees exactly-once|both]
        [--baseline /work/main/.venv/bin/scorer]

Prints a table and writes reports/bench_swap.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_worker  # noqa: E402
from benchmarks._support import drop_keyspace, write_report  # noqa: E402
from benchmarks.bench_worker import (  # noqa: E402
    HARNESS_SWITCH_INTERVAL,
    MODEL,
    N_SEGMENTS,
    POLL,
    SHORT_FEED,
    Reader,
    Stream,
    active_reads,
    admin,
    http_json,
    percentiles,
    scorer_worker,
    segment,
    setup_store,
    stop_process,
)
from scorer.config import Settings, load_settings  # noqa: E402

TARGETS = {"notice_p99_ms": 100.0, "cql_p99_ms": POLL * 1000 + 100.0, "swap_p99_ratio": 1.2}
STAGES = (
    ("publish", "write end -> notice published", "at", "sent_at"),
    ("seen", "-> change seen (notice in / poll start)", "sent_at", "triggered_at"),
    ("read", "-> pointer read", "triggered_at", "read_at"),
    ("load", "-> weights read and built", "read_at", "loaded_at"),
    ("live", "-> new model live", "loaded_at", "installed_at"),
    ("scored", "-> first new output sent (its Kafka time)", "installed_at", "out_ts"),
    ("visible", "-> first new output read back (committed, fetched)", "out_ts", "out_read"),
)


def swapper(keyspace: str, changes_topic: str, conn: Connection) -> None:
    """A child process making the swaps the parent asks for, burst by burst, answering with each swap's time.

    The load generator's send stamps and the reader's read stamps are threads of the parent: the Cassandra
    session, the notice producer and their threads must not share a GIL with them, or their work would be
    measured as the worker's latency during swaps."""
    from scorer.kafka.notices import announce
    from scorer.store import CassandraModelStore
    from scorer.store.connection import connect

    settings = load_settings(keyspace=keyspace)
    notice_settings = settings.model_copy(update={"changes_topic": changes_topic})
    cluster, session = connect(settings)
    store = CassandraModelStore(settings)
    update = session.prepare(f"UPDATE {settings.keyspace}.active_models SET version = ? "
                             "WHERE model = ? AND segment = ?")
    try:
        conn.send("ready")
        while (job := conn.recv()) is not None:
            burst, to_version, gap = job
            swaps = []
            for k, seg in burst:
                if k % 2 == 0:
                    with announce(notice_settings) as notify:
                        store.activate(MODEL, seg, to_version, reason="bench")
                        at = time.time()
                        warning = notify(MODEL, seg, "activate", to_version)
                    if warning:
                        print("warning:", warning)
                    swaps.append({"segment": seg, "via": "notice", "at": at})
                else:
                    session.execute(update, (to_version, MODEL, seg))
                    swaps.append({"segment": seg, "via": "cql", "at": time.time()})
                time.sleep(gap)
            conn.send(swaps)
    finally:
        store.close()
        cluster.shutdown()


def run(settings: Settings, guarantee: str, to_version: int, args: argparse.Namespace,
        scorer: str | None = None) -> dict[str, Any]:
    """One worker on a steady stream: steady windows and bursts of swaps in turn (``--blocks`` of each, so a
    change in the machine's background load hits both alike); stage times from its /models. The swaps are made
    by a child process (:func:`swapper`)."""
    from scorer.store.connection import connect

    tag = uuid.uuid4().hex[:8]
    topics = {"in": f"bs-in-{tag}", "out": f"bs-out-{tag}", "dlq": f"bs-dlq-{tag}", "changes": f"bs-changes-{tag}"}
    asyncio.run(admin(settings, create=list(topics.values())))
    cluster, session = connect(settings)  # Cassandra's read counter, between windows only
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=swapper, args=(settings.keyspace, topics["changes"], theirs), daemon=True)
    out: dict[str, Any] = {"guarantee": guarantee, "rate": args.rate, "to_version": to_version,
                           "worker": scorer or bench_worker.SCORER}
    order = np.random.default_rng(7).permutation(N_SEGMENTS)[: args.swaps].tolist()
    steady_windows: list[tuple[float, float]] = []
    swap_windows: list[tuple[float, float]] = []
    swaps: list[dict[str, Any]] = []
    steady_reads = steady_time = 0.0
    steady_sent = swap_sent = 0
    default_scorer = bench_worker.SCORER
    gc.collect()
    gc.disable()  # as in bench_worker: the harness's own collections would stall its threads
    try:
        child.start()
        if not ours.poll(60) or ours.recv() != "ready":
            raise RuntimeError("the swapping process did not start")
        bench_worker.SCORER = scorer or default_scorer
        try:
            proc, port, log = scorer_worker(settings, topics, f"bs-{tag}", args, ("--guarantee", guarantee))
        finally:
            bench_worker.SCORER = default_scorer
        reader = Reader(settings, [topics["out"], topics["dlq"]]).start(keep=True)
        stream = Stream(settings, topics["in"], args.rate).start()
        try:
            time.sleep(3.0)  # warm up
            per_block = -(-len(order) // args.blocks)
            for b in range(args.blocks):
                mark, sent_mark, reads_mark = time.time(), stream.next, active_reads(session, settings.keyspace)
                time.sleep(args.steady_seconds / args.blocks)
                end, sent_end, reads_end = time.time(), stream.next, active_reads(session, settings.keyspace)
                steady_windows.append((mark, end))
                steady_reads += reads_end - reads_mark
                steady_time += end - mark
                steady_sent += sent_end - sent_mark
                mark, sent_mark = time.time(), stream.next
                burst = [(k, segment(i)) for k, i in
                         enumerate(order[b * per_block: (b + 1) * per_block], start=b * per_block)]
                ours.send((burst, to_version, args.swap_gap))
                swaps += ours.recv()
                swap_windows.append((mark, time.time()))
                swap_sent += stream.next - sent_mark
            time.sleep(POLL + 2.0)
        finally:
            stream.stop()
        time.sleep(2.0)
        try:
            state = http_json(port, "/models")
        finally:
            stop_process(proc)
            reader.stop()
        rows = list(reader.rows)
        swap_time = sum(b - a for a, b in swap_windows)
        out["steady"] = windowed_latency(rows, steady_windows, stream)
        out["during_swaps"] = windowed_latency(rows, swap_windows, stream)
        out["steady_feed"], out["swap_feed"] = steady_sent / steady_time, swap_sent / swap_time
        out["active_models_reads_per_s"] = steady_reads / steady_time
        out["short"] = min(out["steady_feed"], out["swap_feed"]) < SHORT_FEED * args.rate
        out["swaps"] = stages(rows, swaps, state, to_version)
        out["dead_letters"] = reader.dead
        out["log"] = str(log)
    finally:
        gc.enable()
        if child.is_alive():
            ours.send(None)
            child.join(30)
        cluster.shutdown()
        asyncio.run(admin(settings, delete=list(topics.values())))
    return out


def windowed_latency(rows: list[tuple], windows: list[tuple[float, float]], stream: Stream) -> dict[str, float]:
    """Read time minus send time of the outputs whose event was sent inside any of ``windows`` (pooled)."""
    values = []
    for event_id, _, _, recv, _, _ in rows:
        sent = stream.sent_at.get(int(event_id[2:]))
        if sent is not None and any(a <= sent < b for a, b in windows):
            values.append((recv - sent) * 1000)
    return percentiles(values)


def stages(rows: list[tuple], swaps: list[dict[str, Any]], state: dict[str, Any], version: int) -> dict[str, Any]:
    """Per path (notice, cql): each stage's duration and the total (p50/p99), from the stamps of every swap."""
    first: dict[str, tuple[float, float]] = {}  # segment -> (read time, Kafka time) of its first new output
    for _, seg, v, recv, _, ts in rows:
        if v == version and (seg not in first or recv < first[seg][0]):
            first[seg] = (recv, ts)
    traces = {t["segment"]: t for t in state.get("recent_swaps", []) if t["version"] == version}
    result: dict[str, Any] = {}
    for via in ("notice", "cql"):
        mine = [s for s in swaps if s["via"] == via]
        stamps = []
        for s in mine:
            trace = traces.get(s["segment"], {})
            got = first.get(s["segment"])
            stamps.append({"at": s["at"], "sent_at": trace.get("sent_at") if via == "notice" else s["at"],
                           "triggered_at": trace.get("triggered_at"), "read_at": trace.get("read_at"),
                           "loaded_at": trace.get("loaded_at"), "installed_at": trace.get("installed_at"),
                           "out_ts": got[1] if got else None, "out_read": got[0] if got else None})
        per: dict[str, Any] = {}
        for name, _, a, b in STAGES:
            per[name] = percentiles([(x[b] - x[a]) * 1000 for x in stamps if x[a] is not None and x[b] is not None])
        per["live_total"] = percentiles([(x["installed_at"] - x["at"]) * 1000 for x in stamps
                                         if x["installed_at"] is not None])
        per["first_output"] = percentiles([(x["out_read"] - x["at"]) * 1000 for x in stamps
                                           if x["out_read"] is not None])
        per["n"] = len(mine)
        per["not_seen"] = sum(x["out_read"] is None for x in stamps)
        per["triggers"] = sorted({traces.get(s["segment"], {}).get("trigger", "?") for s in mine})
        result[via] = per
    return result


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    runs = report["runs"]
    t = Table(title=f"swap benchmark ({os.cpu_count()} CPUs, load {report['machine']['load_avg'][0]:.1f}, "
                    f"poll {POLL:g} s, {report['args']['rate']:,.0f} events/s)")
    t.add_column("measure")
    for r in runs:
        t.add_column(r["guarantee"] + (f" ({r['label']})" if report["args"]["baseline"] else ""))
    t.add_column("target")
    t.add_column("ok")

    def row(name: str, cells: list[str], target: str = "", ok: list[bool] | None = None) -> None:
        t.add_row(name, *cells, target, "" if ok is None else ("yes" if all(ok) else "NO"))

    for via, label, key in (("notice", "CLI notice", "notice_p99_ms"), ("cql", "raw CQL", "cql_p99_ms")):
        sw = [r["swaps"][via] for r in runs]
        row(f"swap via {label}: first output on new version p50 (ms)", [f"{s['first_output']['p50']:.0f}" for s in sw])
        row(f"swap via {label}: first output on new version p99 (ms)", [f"{s['first_output']['p99']:.0f}" for s in sw],
            f"< {TARGETS[key]:.0f}", [s["first_output"]["p99"] < TARGETS[key] for s in sw])
        for name, what, _, _ in STAGES:
            if via == "cql" and name == "publish":
                continue
            if via == "cql" and name == "seen":
                what = "-> poll started (the poll's phase)"
            row(f"  {label} stage {what}: p50 / p99 (ms)",
                [f"{s[name]['p50']:.1f} / {s[name]['p99']:.1f}" for s in sw])
        row(f"  {label}: write end -> new model live p50 / p99 (ms)",
            [f"{s['live_total']['p50']:.0f} / {s['live_total']['p99']:.0f}" for s in sw])
        row(f"  {label}: swaps / not seen in outputs", [f"{s['n']} / {s['not_seen']}" for s in sw], "- / 0",
            [s["not_seen"] == 0 for s in sw])
    row("e2e latency p50 steady / during swaps (ms)",
        [f"{r['steady']['p50']:.1f} / {r['during_swaps']['p50']:.1f}" for r in runs])
    row("e2e latency p99 steady / during swaps (ms)",
        [f"{r['steady']['p99']:.1f} / {r['during_swaps']['p99']:.1f}" for r in runs])
    row("e2e p99 during swaps / steady p99", [f"{r['during_swaps']['p99'] / r['steady']['p99']:.2f}" for r in runs],
        f"<= {TARGETS['swap_p99_ratio']}", [r["during_swaps"]["p99"] <= TARGETS["swap_p99_ratio"] * r["steady"]["p99"]
                                            for r in runs])
    row(f"Cassandra active_models reads/s per worker, 1 model (poll {POLL:g} s: {1 / POLL:g} computed; "
        "notices add one each)", [f"{r['active_models_reads_per_s']:.2f}" for r in runs])
    row("... for 100 workers on one model (single-partition reads/s)",
        [f"{100 * r['active_models_reads_per_s']:,.0f}" for r in runs])
    row("load generator reached (events/s): steady / during swaps",
        [f"{r['steady_feed']:,.0f} / {r['swap_feed']:,.0f}" + (" SHORT" if r["short"] else "") for r in runs],
        f">= {SHORT_FEED:.0%} of aimed", [not r["short"] for r in runs])
    row("dead letters", [str(r["dead_letters"]) for r in runs], "0", [r["dead_letters"] == 0 for r in runs])
    return t


def main() -> int:
    sys.setswitchinterval(HARNESS_SWITCH_INTERVAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5_000.0, help="Events/s of the steady stream.")
    parser.add_argument("--swaps", type=int, default=100, help="Swaps (at most 100, one per segment).")
    parser.add_argument("--swap-gap", type=float, default=0.3, help="Seconds between swaps.")
    parser.add_argument("--steady-seconds", type=float, default=30.0, help="Steady seconds in all (split in blocks).")
    parser.add_argument("--blocks", type=int, default=5, help="Steady windows and swap bursts, in turn.")
    parser.add_argument("--baseline", help="Another checkout's `scorer` executable (e.g. /work/main/.venv/bin/"
                        "scorer): its worker runs first for each guarantee, in the same run, for before/after.")
    parser.add_argument("--guarantees", choices=["exactly-once", "at-least-once", "both"], default="exactly-once")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--worker-args", default="", help="Extra `scorer worker` flags.")
    args = parser.parse_args()
    args.swaps = max(2, min(N_SEGMENTS, args.swaps))

    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    settings = load_settings(keyspace=f"bench_{uuid.uuid4().hex[:12]}")
    console.print(f"setting up keyspace {settings.keyspace}: {N_SEGMENTS} segments x 2 versions")
    setup_store(settings)
    guarantees = ["exactly-once", "at-least-once"] if args.guarantees == "both" else [args.guarantees]
    report: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                          "load_avg": os.getloadavg()}, "args": vars(args), "runs": []}
    workers = [("baseline", args.baseline), ("this", None)] if args.baseline else [("this", None)]
    try:
        n = 0
        for guarantee in guarantees:
            for label, scorer in workers:
                to_version = 2 if n % 2 == 0 else 1  # the next run swaps every segment back
                n += 1
                console.print(f"{guarantee} ({label} worker): {args.steady_seconds:g} s steady and {args.swaps} swaps "
                              f"to v{to_version}, in {args.blocks} blocks")
                report["runs"].append({**run(settings, guarantee, to_version, args, scorer), "label": label})
    finally:
        drop_keyspace(settings)
    report["machine"]["load_avg_end"] = os.getloadavg()
    console.print(table(report))
    out = write_report(report, "bench_swap.json")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
