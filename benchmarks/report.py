"""Runs every benchmark and collects their reports into one: reports/bench.md, reports/bench.json, reports/bench.png.

``--run`` (what ``make bench`` does) runs each ``benchmarks/bench_*.py`` in turn (``--quick`` is passed to the
ones that take it), logs it to reports/logs/, and records its exit status, time and error; then, with or
without ``--run``, the JSON reports under reports/ are collected with the environment they ran on. A benchmark
that failed is marked failed with its error and shows no numbers: a report left by an earlier run is not
reused. One that exited with an error but wrote its report this run (some cases failed) is shown as partial.

    .venv/bin/python benchmarks/report.py --run [--quick] [--only compare,kernels]
    .venv/bin/python benchmarks/report.py            # collect what is in reports/ now
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
REPORTS = ROOT / "reports"
ORDER = ("kernels", "store", "train", "worker", "compare", "soak", "monitor")
"""Run order: no-server benchmarks first, the long soak near the end; any other bench_*.py goes last."""
PACKAGES = ("numpy", "scikit-learn", "faust-streaming", "aiokafka", "cassandra-driver", "orjson", "matplotlib")
STATUS_MARK = {"ok": "ok", "partial": "PARTIAL", "failed": "FAILED", "not run": "not run"}


# ------------------------------------------------------------------------------------------ running

def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Names of the benchmarks (``bench_<name>.py``), in run order."""
    names = [p.stem.removeprefix("bench_") for p in bench_dir.glob("bench_*.py")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def takes_quick(script: Path) -> bool:
    """Whether the script declares a ``--quick`` flag (read from its source: no import, no side effects)."""
    return '"--quick"' in script.read_text(errors="replace")


def last_error(log_text: str, lines: int = 4) -> str:
    """What a failed run said last: the exception line of its last traceback, else its last lines."""
    kept = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    tracebacks = [i for i, line in enumerate(kept) if line.startswith("Traceback (most recent call last)")]
    if tracebacks:
        for line in kept[tracebacks[-1] + 1:]:
            if not line[:1].isspace():
                return line[:600]
    return " | ".join(kept[-lines:])[:600] or "(no output)"


def run_one(name: str, *, quick: bool, bench_dir: Path, reports: Path, timeout: float,
            python: str = sys.executable, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one benchmark; its status is ok, partial (non-zero exit but a fresh report) or failed."""
    script = bench_dir / f"bench_{name}.py"
    args = [python, str(script)] + (["--quick"] if quick and takes_quick(script) else [])
    log_path = reports / "logs" / f"bench_{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = reports / f"bench_{name}.json"
    before = out.stat().st_mtime_ns if out.exists() else None  # a report left by an earlier run is not this run's
    started_wall, started = time.time(), time.perf_counter()
    echo(f"==> {' '.join(Path(a).name if i < 2 else a for i, a in enumerate(args))}")
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=bench_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # show progress as it comes, keep it all in the log
                log.write(line)
                echo(line.rstrip("\n"))
            returncode: int | None = proc.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            returncode = None
    seconds = time.perf_counter() - started
    fresh = out.exists() and (before is None or out.stat().st_mtime_ns != before)
    text = log_path.read_text(errors="replace")
    if returncode is None:
        status, error = "failed", f"timed out after {timeout:.0f} s"
    elif returncode == 0 and fresh:
        status, error = "ok", None
    elif returncode == 0:
        status, error = "failed", f"exited 0 but wrote no {out.relative_to(reports.parent)}"
    else:
        status, error = ("partial" if fresh else "failed"), f"exit {returncode}: {last_error(text)}"
    return {"name": name, "command": " ".join(args[1:]).replace(str(bench_dir.parent) + "/", ""),
            "quick": "--quick" in args, "status": status, "error": error, "returncode": returncode,
            "seconds": round(seconds, 1), "log": str(log_path.relative_to(reports.parent)),
            "started_at": datetime.fromtimestamp(started_wall, UTC).isoformat(timespec="seconds")}


def run_all(names: Iterable[str], *, quick: bool, bench_dir: Path = BENCH_DIR, reports: Path = REPORTS,
            timeout: float = 3600.0, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmarks one after the other (never in parallel: they measure a shared machine)."""
    record: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "load_avg_start": list(os.getloadavg()), "quick": quick, "runs": []}
    for name in names:
        record["runs"].append(run_one(name, quick=quick, bench_dir=bench_dir, reports=reports, timeout=timeout,
                                      echo=echo))
    record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    record["load_avg_end"] = list(os.getloadavg())
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "bench_runs.json").write_text(json.dumps(record, indent=2))
    return record


# ------------------------------------------------------------------------------------------ environment

def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def kafka_version() -> str | None:
    """The devstack broker's version: from the kafka jar on its classpath, else the version devstack pins."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in args or not any(b"devstack/state/kafka" in a for a in args):
            continue
        for i, arg in enumerate(args[:-1]):
            if arg == b"-cp":
                for part in args[i + 1].decode(errors="replace").split(":"):
                    for jar in Path(part.rstrip("*")).glob("kafka_2.*-*.jar"):
                        match = re.match(r"kafka_[\d.]+-([\d.]+)\.jar$", jar.name)
                        if match:
                            return match.group(1)
    pom = ROOT / "devstack" / "kafka" / "pom.xml"
    match = re.search(r"<artifactId>kafka_[\d.]+</artifactId>\s*<version>([^<]+)</version>",
                      pom.read_text()) if pom.exists() else None
    return f"{match.group(1)} (devstack pin)" if match else None


def cassandra_version() -> str | None:
    try:
        sys.path.insert(0, str(ROOT))
        from scorer.config import load_settings
        from scorer.store.connection import connect

        cluster, session = connect(load_settings())
        try:
            return session.execute("SELECT release_version FROM system.local", timeout=10).one().release_version
        finally:
            cluster.shutdown()
    except Exception as exc:  # noqa: BLE001 - the report says why instead
        return f"unknown ({type(exc).__name__})"


def environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "memory_gib": memory_gib(),
            "platform": platform.platform(), "python": platform.python_version(), "packages": versions,
            "kafka": kafka_version(), "cassandra": cassandra_version(), "load_avg_now": list(os.getloadavg())}


# ------------------------------------------------------------------------------------------ collecting

def collect(reports: Path = REPORTS, runs: dict[str, Any] | None = None,
            env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every benchmark's report and status in one dict (what bench.json holds)."""
    benchmarks: dict[str, Any] = {}
    if runs is not None:
        for run in runs["runs"]:
            entry = {k: run.get(k) for k in ("status", "error", "seconds", "command", "quick", "log")}
            entry["data"] = None
            if run["status"] in ("ok", "partial"):
                entry["data"], problem = read_report(reports / f"bench_{run['name']}.json")
                if problem:
                    entry.update(status="failed", error=problem)
            benchmarks[run["name"]] = entry
    else:
        found = sorted(p.stem.removeprefix("bench_") for p in reports.glob("bench_*.json") if p.stem != "bench_runs")
        for name in sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
            path = reports / f"bench_{name}.json"
            data, problem = read_report(path)
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
            benchmarks[name] = {"status": "failed" if problem else "ok", "error": problem, "seconds": None,
                                "command": f"benchmarks/bench_{name}.py", "quick": None, "log": None,
                                "report_written_at": modified, "data": data}
    env = dict(env if env is not None else environment())
    if runs is not None:
        env["load_avg_start"], env["load_avg_end"] = runs.get("load_avg_start"), runs.get("load_avg_end")
        env["started_at"], env["finished_at"] = runs.get("started_at"), runs.get("finished_at")
    return {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "environment": env,
            "quick": None if runs is None else runs.get("quick"), "benchmarks": benchmarks}


def read_report(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, f"no report {path.name}"
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name}: {exc}"


# ------------------------------------------------------------------------------------------ markdown

def fmt(value: Any, spec: str = ",.1f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and spec.endswith("d"):
        value = round(value)
    if isinstance(value, int | float):
        return f"{value:{spec}}{unit}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def get(data: Any, *path: Any, default: Any = None) -> Any:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def render_compare(d: dict[str, Any]) -> list[str]:
    cfg = d.get("config", {})
    lines = [f"Same run, one approach at a time: {fmt(cfg.get('events'), ',d')} events over {cfg.get('segments')} "
             f"segments, {cfg.get('pipeline', cfg.get('arch'))} on {cfg.get('features')} features; each consumer reads "
             f"its own copy of the input topic. Throughput: draining the backlog (max rate). Latency: prediction "
             f"arrival minus the input's Kafka timestamp at a fixed {fmt(cfg.get('rate'), ',.0f')} events/s "
             f"({cfg.get('rate_basis', '-')}).", ""]
    rows = []
    for r in d.get("summary", []):
        changes = "; ".join(f"{c['effect_s']:.2f} s ({c['how']}; the command itself {c['command_s']:.2f} s)"
                            for c in r.get("version_change", [])) or "-"
        restart = {None: "-", True: "yes", False: "no"}[r.get("restart")]
        name = r.get("short", r["approach"]) + (f" — FAILED: {r['error']}" if r.get("error") else "")
        lost = "-" if r.get("lost") is None else f"{r['lost']} / {r['duplicates']}"
        feed = r.get("feed") or {}
        fed = "-" if not feed else (f"{feed['achieved_eps']:,.0f} of {feed['aimed_eps']:,.0f}"
                                    + (" (SHORT)" if feed.get("short") else ""))
        rows.append([name, fmt(r.get("eps"), ",.0f"), fmt(r.get("eps_vs_baked"), ".2f", "x"),
                     fmt(r.get("eps_vs_best_peer"), ".2f", "x"), fmt(r.get("us_cpu_per_event"), ",.0f"),
                     fmt(r.get("p50_ms")), fmt(r.get("p99_ms")), fed, changes, restart, lost])
    lines += table(["approach", "events/s", "vs baked", "vs best peer", "µs CPU/event", "p50 ms", "p99 ms",
                    "feed events/s reached", "time for a new version to take effect", "restart?", "lost / dup"],
                   rows)
    for pair, p in d.get("parity", {}).items():
        lines.append(f"- same models, same predictions ({pair.replace('_', ' ')}): {fmt(p.get('events'), ',d')} "
                     f"events, max |diff| {fmt(p.get('max_abs_diff'), '.1e')}")
    for name, a in d.get("approaches", {}).items():
        for c in get(a, "live", "changes", default=[]):
            extra = [f"{k} {v:.2f} s" for k, v in c.items() if k.endswith("_s") and isinstance(v, int | float)
                     and k not in ("effect_s", "command_s", "longest_output_gap_s")]
            lines.append(f"- {name}, {c['how']}: max latency around the change {fmt(c.get('max_latency_ms_around'))} "
                         f"ms, longest pause between predictions {fmt(c.get('longest_output_gap_s'), '.2f')} s"
                         + (f", {', '.join(extra)}" if extra else ""))
    lines += [f"- {note}" for note in d.get("notes", [])]
    m = d.get("machine", {})
    lines += [f"- machine: {m.get('cpus')} CPUs shared by Kafka, Cassandra, the consumers and the harness; load "
              f"{fmt(get(m, 'load_avg', 0), '.1f')} -> {fmt(get(m, 'load_avg_end', 0), '.1f')}", ""]
    return lines


def render_kernels(d: dict[str, Any]) -> list[str]:
    rows = [[r["model"], r["batch"], fmt(r["scorer_s"] * 1e6), fmt(r["sklearn_s"] * 1e6), fmt(r["speedup"], ".1f", "x"),
             fmt(r.get("vs_numpy"), ".2f"), fmt(r.get("max_abs_diff"), ".1e")] for r in d.get("rows", [])]
    lines = table(["model", "batch", "scorer µs", "sklearn µs", "speedup", "scorer / numpy", "max abs diff"], rows)
    targets = d.get("targets", [])
    if targets:
        lines += table(["target", "value", "met"], [
            [f"{t['model']} batch {t['batch']} {t['metric']} {'<=' if t['metric'] == 'vs_numpy' else '>='} "
             f"{t['target']}", fmt(t.get("value"), ".2f"), fmt(t.get("ok"))] for t in targets])
    for m in d.get("missing", []):
        lines.append(f"- not benchmarked: {m.get('model')} ({m.get('reason')})")
    return lines


def render_store(d: dict[str, Any]) -> list[str]:
    targets = d.get("targets_s", {})
    return table(["measure", "value", "target", "met"], [
        [f"publish {fmt(d.get('segments'), ',d')} models (s)", fmt(d.get("publish_s"), ".2f"),
         f"< {targets.get('publish', '-')}", fmt(d.get("publish_ok"))],
        [f"load all {fmt(d.get('segments'), ',d')} active versions, best (s)", fmt(d.get("load_best_s"), ".2f"),
         f"< {targets.get('load', '-')}", fmt(d.get("load_ok"))],
        ["load, first run (s)", fmt(d.get("load_first_s"), ".2f"), "", ""],
    ]) + generic_lines({"publish_phases_s": d.get("publish_phases_s", {})}, limit=10)


def render_worker(d: dict[str, Any]) -> list[str]:
    tp, live = d.get("throughput", {}), d.get("live", {})
    swaps = live.get("swaps", {})
    rows = [
        ["no-op faust agent (events/s)", fmt(get(tp, "best", "noop"), ",.0f")],
        ["no-op on the worker's own reader (events/s)", fmt(get(tp, "best", "noop-direct"), ",.0f")],
        ["scorer worker (events/s)", fmt(get(tp, "best", "scorer"), ",.0f")],
        ["scorer / no-op faust agent", fmt(tp.get("ratio"), ".2f")],
        ["scorer / no-op on the same reader (information)", fmt(tp.get("ratio_same_reader"), ".2f")],
        [f"e2e latency p50 / p99 at {fmt(get(live, 'latency_at_target_rate', 'rate'), ',.0f')}/s (ms)",
         f"{fmt(get(live, 'latency_at_target_rate', 'p50'))} / {fmt(get(live, 'latency_at_target_rate', 'p99'))}"],
        [f"e2e latency p50 / p99 at {fmt(live.get('rate'), ',.0f')}/s (ms)",
         f"{fmt(get(live, 'latency', 'p50'))} / {fmt(get(live, 'latency', 'p99'))}"],
        ["swap via CLI notice p50 / p99 (ms)", f"{fmt(get(swaps, 'notice', 'p50'), ',.0f')} / "
                                               f"{fmt(get(swaps, 'notice', 'p99'), ',.0f')}"],
        ["swap via raw CQL p50 / p99 (ms)", f"{fmt(get(swaps, 'cql', 'p50'), ',.0f')} / "
                                            f"{fmt(get(swaps, 'cql', 'p99'), ',.0f')}"],
        ["swap via CLI notice, first output on the new version p50 / p99 (ms)",
         f"{fmt(get(swaps, 'notice', 'first_output', 'p50'), ',.0f')} / "
         f"{fmt(get(swaps, 'notice', 'first_output', 'p99'), ',.0f')}"],
        ["swap via raw CQL, first output on the new version p50 / p99 (ms)",
         f"{fmt(get(swaps, 'cql', 'first_output', 'p50'), ',.0f')} / "
         f"{fmt(get(swaps, 'cql', 'first_output', 'p99'), ',.0f')}"],
        ["swaps / events / lost / duplicates / dead letters",
         " / ".join(fmt(v, ",d") for v in (swaps.get("total"), live.get("events"), live.get("lost"),
                                            live.get("duplicates"), live.get("dead_letters")))],
        ["load generator reached / aimed (events/s): 10k phase, half-rate phase, swaps",
         " / ".join(f"{fmt(p.get('achieved_rate'), ',.0f')} of {fmt(p.get('rate'), ',.0f')}"
                    + (" (SHORT)" if p.get("short") else "")
                    for p in (live.get("latency_at_target_rate", {}), live.get("latency", {}),
                              live.get("swap_phase_feed", {})))],
        ["Cassandra reads/s that polling costs one worker (measured)",
         fmt(get(live, "latency", "active_models_reads_per_s"), ".1f")],
    ]
    return table(["measure", "value"], rows)


def render_segments(d: dict[str, Any]) -> list[str]:
    rows = []
    for arch, r in d.get("archs", {}).items():
        pre, spread, zipf = r.get("preload", {}), r.get("spread", {}), r.get("zipf", {})
        rows.append([arch, fmt(r.get("segments"), ",d"), fmt(pre.get("seconds"), ".2f"),
                     f"{fmt(pre.get('rss_models_mb'), ',.0f')} / {fmt(pre.get('rss_per_model_kb'), '.1f')}",
                     fmt(get(spread, "best", "all", "eps"), ",.0f"), fmt(get(spread, "best", "hundred", "eps"), ",.0f"),
                     fmt(spread.get("ratio"), ".2f"), fmt(zipf.get("hit_rate"), ".3f"),
                     fmt(get(zipf, "miss_per_model_ms", "p99"), ".2f")])
    return table(["arch", "segments", "preload s", "RSS MB / KB per model", "events/s all segments",
                  "events/s 100 segments", "ratio", "Zipf hit rate", "miss p99 ms per model"], rows)


def render_soak(d: dict[str, Any]) -> list[str]:
    ev, sw, mem, lag = d["events"], d["swaps"], d["memory"], d["lag"]
    prop = sw.get("propagation_ms", {})
    rows = [
        ["capacity / soak rate (events/s)", f"{fmt(d.get('capacity_eps'), ',.0f')} / {fmt(d.get('rate_eps'), ',.0f')}"],
        ["soak rate reached (events/s)", fmt(d.get("achieved_eps"), ",.0f") + (" (SHORT)" if d.get("short") else "")],
        ["soak duration (s) / a swap every (s)",
         f"{fmt(d.get('soak_seconds'), ',.0f')} / {fmt(get(d, 'config', 'swap_every_s'), ',.0f')}"],
        ["events sent / lost / duplicates / failed",
         " / ".join(fmt(ev.get(k), ",d") for k in ("sent", "lost", "duplicates", "failed"))],
        ["swaps requested / applied / seen in outputs",
         f"{fmt(sw.get('requested'), ',d')} / {fmt(sw.get('applied_worker_metric'), ',.0f')} / "
         f"{fmt(sw.get('seen_in_outputs'), ',d')}"],
        ["swap propagation p50 / p99 / max (ms)", " / ".join(fmt(prop.get(k), ",.0f") for k in ("p50", "p99", "max"))],
        ["worker RSS start / end / max (MB)",
         " / ".join(fmt(mem.get(k), ",.1f") for k in ("rss_start_mb", "rss_end_mb", "rss_max_mb"))],
        ["RSS slope over the second half (MB/min)",
         f"{fmt(mem.get('second_half_slope_mb_per_min'), '.2f')} ({'flat' if mem.get('flat') else 'NOT flat'})"],
        ["consumer lag max / p95 / after draining (events)",
         " / ".join(fmt(lag.get(k), ",.0f") for k in ("max", "p95", "after_drain"))],
    ]
    plot = str(d.get("plot") or "").replace(str(ROOT) + "/", "")
    return table(["measure", "value"], rows) + ([f"Chart: `{plot}`", ""] if plot else [])


def render_monitor(d: dict[str, Any]) -> list[str]:
    rows = []
    for r in d.get("rows", []):
        value = next(((fmt(r[k], ",.2f", u)) for k, u in (("us_per_event", " µs/event"), ("us_per_call", " µs/call"),
                                                            ("bytes", " B")) if k in r), "-")
        rows.append([r.get("what"), value])
    return table(["what", "CPU cost"], rows)


def generic_lines(data: Any, limit: int = 40) -> list[str]:
    """Any report: its scalar values as key/value rows, lists of flat records as tables."""
    scalars: list[list[Any]] = []
    tables: list[str] = []

    def walk(value: Any, prefix: str, depth: int) -> None:
        if isinstance(value, dict) and depth < 4:
            for k, v in value.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value) and depth < 4:
            keys = [k for k in value[0] if all(not isinstance(x.get(k), dict | list) for x in value)]
            if keys:
                tables.extend([f"{prefix}:", ""] + table(keys, [[fmt(x.get(k), ",.4g") for k in keys]
                                                                for x in value[:30]]))
        elif isinstance(value, list) and len(value) <= 6 and all(isinstance(x, int | float | str) for x in value):
            scalars.append([prefix, ", ".join(fmt(x, ",.4g") for x in value)])
        elif not isinstance(value, dict | list):
            scalars.append([prefix, fmt(value, ",.4g")])

    walk(data, "", 0)
    lines = table(["key", "value"], scalars[:limit]) if scalars else []
    if len(scalars) > limit:
        lines.insert(-1, f"| ... {len(scalars) - limit} more in the JSON | |")
    return lines + tables


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "compare": render_compare, "kernels": render_kernels, "store": render_store, "worker": render_worker,
    "monitor": render_monitor, "soak": render_soak, "segments": render_segments,
}
TITLES = {
    "compare": "Ways to score a stream: baked-in model, REST service, batched sklearn and ONNX peers, scorer",
    "kernels": "Scoring kernels: Model.predict vs scikit-learn (median µs per call)",
    "store": "Model store: publish 1,000 models, load every active version",
    "train": "Per-segment training",
    "worker": "Scoring worker vs a no-op Faust agent",
    "soak": "Soak: one worker at half its capacity, swapping models all along",
    "monitor": "Monitoring costs",
    "segments": "10,000 segments of one model: preload, memory, spread throughput, LRU under Zipf",
}


def render_markdown(combined: dict[str, Any]) -> str:
    env = combined["environment"]
    packages = env.get("packages", {})
    out = ["# scorer benchmarks", "",
           f"Generated {combined['generated_at']}"
           + (" with `--quick` (short runs)" if combined.get("quick") else "") + ". Every number below was measured "
           "in this run on this machine; a failed benchmark shows its error instead of numbers.", "",
           "## Environment", ""]
    load_start, load_end = env.get("load_avg_start"), env.get("load_avg_end")
    out += table(["", ""], [
        ["CPU", f"{env.get('cpus')} x {env.get('cpu_model') or '?'}"],
        ["memory", fmt(env.get("memory_gib"), ".1f", " GiB")],
        ["platform", env.get("platform")],
        ["Python", env.get("python")],
        ["packages", ", ".join(f"{k} {v}" for k, v in packages.items() if v)],
        ["Kafka / Cassandra", f"{env.get('kafka') or '?'} / {env.get('cassandra') or '?'} (same machine)"],
        ["load average (1, 5, 15 min)", f"start {fmt_load(load_start)}; end {fmt_load(load_end)}"
         if load_start else f"now {fmt_load(env.get('load_avg_now'))}"],
    ])
    out += ["## Runs", ""]
    out += table(["benchmark", "status", "time", "command", "error"], [
        [name, STATUS_MARK.get(b["status"], b["status"]), fmt(b.get("seconds"), ",.0f", " s"), f"`{b.get('command')}`",
         b.get("error") or ""] for name, b in combined["benchmarks"].items()])
    for name, b in combined["benchmarks"].items():
        out += [f"## {TITLES.get(name, name)} (`bench_{name}`)", ""]
        if b["status"] == "failed" or b.get("data") is None:
            out += [f"**FAILED**: {b.get('error') or 'no report'}" + (f" (log: {b['log']})" if b.get("log") else ""),
                    ""]
            continue
        if b["status"] == "partial":
            out += [f"**PARTIAL**: {b.get('error')}", ""]
        renderer = RENDERERS.get(name, generic_lines)
        try:
            out += renderer(b["data"])
        except Exception as exc:  # noqa: BLE001 - a changed format must not lose the other sections
            out += [f"(its format changed: {type(exc).__name__}: {exc}; raw values below)", ""]
            out += generic_lines(b["data"])
    return "\n".join(out).rstrip() + "\n"


def fmt_load(values: Any) -> str:
    return "-" if not values else ", ".join(f"{v:.2f}" for v in values)


# ------------------------------------------------------------------------------------------ chart

def plot(combined: dict[str, Any], path: Path) -> None:
    """Four panels: the three approaches' throughput, latency and time to a new version; kernel speedups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = combined["environment"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    if env.get("load_avg_start"):
        load = f"load average {env['load_avg_start'][0]:.1f} at start, {(env.get('load_avg_end') or [0])[0]:.1f} at end"
    else:
        load = f"load average {(env.get('load_avg_now') or [float('nan')])[0]:.1f} when collected"
    fig.suptitle(f"scorer benchmarks, {combined['generated_at'][:16].replace('T', ' ')} UTC"
                 f"{' (--quick)' if combined.get('quick') else ''}\n{env.get('cpus')} x {env.get('cpu_model') or '?'}"
                 f" CPUs shared with Kafka and Cassandra; {load}", fontsize=12)
    compare = combined["benchmarks"].get("compare", {})
    summary = get(compare, "data", "summary", default=[]) if compare.get("data") else []
    colors = {"baked": "#d62728", "rest": "#ff7f0e", "batched": "#8c564b", "onnx": "#e377c2", "scorer": "#2ca02c"}
    ticks = {"baked": "baked in\n(Faust + sklearn)", "rest": "REST service\n(Faust + HTTP)",
             "batched": "batched sklearn\n(scorer's reader)", "onnx": "ONNX Runtime\n(scorer's reader)",
             "scorer": "scorer\nworker"}
    names = [ticks.get(r["approach"], r["approach"]) for r in summary]

    def failed(ax: Any, what: str, entry: dict[str, Any] | None) -> None:
        reason = "not run" if not entry else f"{entry.get('status', 'failed')}: {entry.get('error') or 'no data'}"
        ax.text(0.5, 0.5, f"{what}\n{reason[:160]}", ha="center", va="center", wrap=True, fontsize=10,
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])

    ax = axes[0][0]
    eps = [r.get("eps") or 0 for r in summary]
    if any(eps):
        bars = ax.bar(names, eps, color=[colors.get(r["approach"], "grey") for r in summary])
        ax.bar_label(bars, labels=[fmt(v, ",.0f") if v else "failed" for v in eps], padding=2)
        ax.set_ylabel("events per second")
        ax.set_ylim(0, max(eps) * 1.12)
        ax.set_title("Throughput: one consumer draining the same backlog\n(max rate, same events and models)")
    else:
        failed(ax, "Throughput of the three approaches", compare)

    ax = axes[0][1]
    p50 = [r.get("p50_ms") for r in summary]
    p99 = [r.get("p99_ms") for r in summary]
    if any(v for v in p50 + p99 if v is not None and math.isfinite(v)):
        x = range(len(summary))
        width = 0.38
        b1 = ax.bar([i - width / 2 for i in x], [v or 0 for v in p50], width, label="p50", color="#1f77b4")
        b2 = ax.bar([i + width / 2 for i in x], [v or 0 for v in p99], width, label="p99", color="#9467bd")
        ax.bar_label(b1, labels=[fmt(v, ",.0f") for v in p50], padding=2, fontsize=9)
        ax.bar_label(b2, labels=[fmt(v, ",.0f") for v in p99], padding=2, fontsize=9)
        ax.set_xticks(list(x), names)
        ax.set_yscale("log")
        ax.set_ylim(1.0, max(v for v in p50 + p99 if v is not None and math.isfinite(v)) * 3)
        ax.set_ylabel("end-to-end latency, ms (log scale)")
        rate = get(compare, "data", "config", "rate")
        ax.set_title(f"End-to-end latency at a fixed {fmt(rate, ',.0f')} events/s\n"
                     "(prediction read minus the input's Kafka timestamp)")
        ax.legend()
    else:
        failed(ax, "Latency of the three approaches", compare)

    ax = axes[1][0]
    labels, effects, commands, bar_colors = [], [], [], []
    for i, r in enumerate(summary):
        for c in r.get("version_change", []):
            labels.append(f"{names[i].splitlines()[0]}:\n{c.get('short') or c['how'][:40]}")
            effects.append(c["effect_s"])
            commands.append(c.get("command_s"))
            bar_colors.append(colors.get(r["approach"], "grey"))
    if labels:
        y = list(range(len(labels)))[::-1]
        bars = ax.barh(y, effects, color=bar_colors)
        ax.bar_label(bars, padding=3, fontsize=9, labels=[
            f"{e:.2f} s" + (f" (command {c:.2f} s)" if c is not None else "") for e, c in zip(effects, commands,
                                                                                             strict=True)])
        ax.set_yticks(y, labels, fontsize=9)
        ax.set_xlabel("seconds from the start of the change to the first prediction of the new version")
        ax.set_title("Time for a new version to take effect (while streaming)")
        ax.set_xlim(0, max(effects) * 1.45)
    else:
        failed(ax, "Time for a new version to take effect", compare)

    ax = axes[1][1]
    kernels = combined["benchmarks"].get("kernels", {})
    rows = get(kernels, "data", "rows", default=[]) if kernels.get("data") else []
    if rows:
        models = list(dict.fromkeys(r["model"] for r in rows))
        batches = sorted({r["batch"] for r in rows})
        width = 0.8 / len(batches)
        for j, batch in enumerate(batches):
            values = [next((r["speedup"] for r in rows if r["model"] == m and r["batch"] == batch), 0) for m in models]
            bars = ax.bar([i + (j - (len(batches) - 1) / 2) * width for i in range(len(models))], values, width,
                          label=f"batch {batch}")
            ax.bar_label(bars, labels=[f"{v:.0f}x" if v >= 10 else f"{v:.1f}x" for v in values], fontsize=7,
                         padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(models)), models)
        ax.set_yscale("log")
        ax.set_ylabel("speedup over scikit-learn (x, log scale)")
        ax.set_xlabel("model (same weights, identical outputs)")
        ax.set_title("Scoring kernels: Model.predict vs sklearn predict_proba")
        ax.legend(fontsize=8)
    else:
        failed(ax, "Kernel speedups", kernels)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main

def write(combined: dict[str, Any], reports: Path) -> list[Path]:
    reports.mkdir(parents=True, exist_ok=True)
    paths = [reports / "bench.md", reports / "bench.json", reports / "bench.png"]
    paths[0].write_text(render_markdown(combined))
    paths[1].write_text(json.dumps(combined, indent=2, default=str))
    plot(combined, paths[2])
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="Run the benchmarks first (else only collect).")
    parser.add_argument("--quick", action="store_true", help="Pass --quick to the benchmarks that take it.")
    parser.add_argument("--only", help="Comma-separated benchmark names (e.g. compare,kernels) [default: all].")
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds before a benchmark is stopped.")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    args = parser.parse_args()
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"no benchmarks/bench_<name>.py for {unknown}; there are {', '.join(names)}")
        names = [n for n in names if n in wanted]
    runs = None
    if args.run:
        runs = run_all(names, quick=args.quick, reports=args.reports, timeout=args.timeout)
    combined = collect(args.reports, runs)
    for path in write(combined, args.reports):
        print(f"wrote {path}")
    bad = [n for n, b in combined["benchmarks"].items() if b["status"] != "ok"]
    if bad:
        statuses = [f"{n} ({combined['benchmarks'][n]['status']})" for n in bad]
        print(f"not ok: {', '.join(statuses)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
