"""benchmarks/report.py: running benchmarks, collecting their JSON into one report, failures marked as failures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report

ENV = {"cpus": 2, "cpu_model": "Test CPU", "memory_gib": 8.0, "platform": "Linux-test", "python": "3.11.7",
       "packages": {"numpy": "2.0", "scikit-learn": "1.5"}, "kafka": "3.9.1", "cassandra": "5.0.6",
       "load_avg_now": [1.0, 1.0, 1.0]}

COMPARE = {
    "benchmark": "compare",
    "machine": {"cpus": 2, "load_avg": [7.5, 7, 7], "load_avg_end": [8.25, 8, 8]},
    "config": {"events": 5000, "segments": 100, "features": 20, "pipeline": "StandardScaler + LogisticRegression",
               "rate": 58, "rate_basis": "0.5 x the slowest"},
    "approaches": {
        "baked": {"label": "baked", "live": {"changes": [{"how": "redeploy", "effect_s": 14.05, "command_s": 2.8,
                                                          "max_latency_ms_around": 14105.0,
                                                          "longest_output_gap_s": 14.0, "stop_s": 2.75}]}},
        "rest": {"label": "rest", "error": "live: rest did not catch up with the stream within 180 s"},
    },
    "parity": {"baked_vs_rest": {"events": 5000, "max_abs_diff": 0.0}},
    "summary": [
        {"approach": "baked", "short": "baked: Faust + sklearn per event", "eps": 116.4, "eps_vs_baked": 1.0,
         "us_cpu_per_event": 2044.0, "p50_ms": 45.25, "p99_ms": 977.5, "restart": True, "lost": 0, "duplicates": 3,
         "version_change": [{"how": "redeploy: SIGTERM the agent", "short": "redeploy (restart)", "effect_s": 14.05,
                             "command_s": 2.8, "max_latency_ms_around": 14105.0}], "error": None},
        {"approach": "rest", "short": "REST: Faust + one HTTP call per event", "eps": 234.0, "eps_vs_baked": 2.01,
         "us_cpu_per_event": 2105.0, "p50_ms": None, "p99_ms": None, "restart": None, "lost": None,
         "duplicates": None, "version_change": [],
         "error": "live: rest did not catch up with the stream within 180 s"},
    ],
}

KERNELS = {
    "rows": [{"model": "logistic", "batch": 1, "scorer_s": 2e-6, "sklearn_s": 2e-4, "speedup": 100.0,
              "numpy_s": 6e-6, "vs_numpy": 0.33, "max_abs_diff": 0.0},
             {"model": "forest", "batch": 1, "scorer_s": 6e-5, "sklearn_s": 6.5e-3, "speedup": 108.3,
              "max_abs_diff": 0.0}],
    "targets": [{"model": "logistic", "batch": 1, "metric": "speedup", "target": 50.0, "value": 100.0, "ok": True}],
    "missing": [],
}

STALE_STORE = {"segments": 1000, "publish_s": 7.654321, "load_best_s": 1.2345, "targets_s": {"publish": 10.0}}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def runs_record(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:10:00+00:00",
            "load_avg_start": [3.5, 3.0, 2.0], "load_avg_end": [4.25, 3.5, 2.5], "quick": True, "runs": list(runs)}


def run_entry(name: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {"name": name, "status": status, "error": error, "seconds": 12.0, "command": f"benchmarks/bench_{name}.py",
            "quick": True, "log": f"reports/logs/bench_{name}.log"}


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    write_json(out / "bench_compare.json", COMPARE)
    write_json(out / "bench_kernels.json", KERNELS)
    write_json(out / "bench_store.json", STALE_STORE)  # left by an earlier run
    return out


def test_collect_marks_a_failed_benchmark_failed_and_does_not_reuse_its_old_report(reports: Path) -> None:
    runs = runs_record(run_entry("kernels", "ok"), run_entry("store", "failed",
                                                             "exit 1: StoreUnavailable: cannot reach 127.0.0.1:9042"),
                       run_entry("compare", "ok"))
    combined = report.collect(reports, runs, env=ENV)

    store = combined["benchmarks"]["store"]
    assert store["status"] == "failed"
    assert store["data"] is None
    assert "StoreUnavailable" in store["error"]
    assert combined["benchmarks"]["kernels"]["data"] == KERNELS
    assert combined["environment"]["load_avg_start"] == [3.5, 3.0, 2.0]
    assert combined["environment"]["load_avg_end"] == [4.25, 3.5, 2.5]

    markdown = report.render_markdown(combined)
    assert "**FAILED**: exit 1: StoreUnavailable: cannot reach 127.0.0.1:9042" in markdown
    assert "7.65" not in markdown and "1.23" not in markdown  # no number from the stale report
    assert "| store | FAILED |" in markdown
    assert "| kernels | ok |" in markdown


def test_markdown_holds_the_comparison_table_kernels_and_environment(reports: Path) -> None:
    combined = report.collect(reports, runs_record(run_entry("kernels", "ok"), run_entry("compare", "ok")), env=ENV)
    markdown = report.render_markdown(combined)

    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    baked = rows["baked: Faust + sklearn per event"]
    assert "| 116 |" in baked and "| 1.00x |" in baked and "| 45.2 |" in baked and "| 977.5 |" in baked
    assert "14.05 s (redeploy: SIGTERM the agent; the command itself 2.80 s)" in baked
    assert "| yes |" in baked and "| 0 / 3 |" in baked
    rest = rows["REST: Faust + one HTTP call per event — FAILED: live: rest did not catch up with the stream within "
                "180 s"]
    assert "| 234 |" in rest and "| - | - |" in rest  # throughput measured, no latency invented
    assert "stop_s 2.75 s" in markdown
    assert "max |diff| 0.0e+00" in markdown
    assert "| logistic | 1 | 2.0 | 200.0 | 100.0x | 0.33 |" in markdown
    assert "2 x Test CPU" in markdown and "3.9.1 / 5.0.6" in markdown
    assert "start 3.50, 3.00, 2.00; end 4.25, 3.50, 2.50" in markdown
    assert "--quick" in markdown


def test_write_produces_markdown_json_and_png(reports: Path) -> None:
    combined = report.collect(reports, runs_record(run_entry("compare", "ok"),
                                                   run_entry("kernels", "failed", "timed out after 3600 s")), env=ENV)
    md, js, png = report.write(combined, reports)

    assert md.read_text().startswith("# scorer benchmarks")
    data = json.loads(js.read_text())
    assert data["benchmarks"]["kernels"] == {**data["benchmarks"]["kernels"], "status": "failed",
                                             "error": "timed out after 3600 s", "data": None}
    assert data["benchmarks"]["compare"]["data"]["summary"][0]["eps"] == 116.4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_without_runs_reads_every_report_and_flags_unreadable_ones(reports: Path) -> None:
    (reports / "bench_soak.json").write_text("{not json")
    write_json(reports / "bench_custom.json", {"memory_mb": [100.5, 101.0], "lost": 0, "phase": {"swaps": 60}})
    combined = report.collect(reports, None, env=ENV)

    assert list(combined["benchmarks"]) == ["kernels", "store", "compare", "soak", "custom"]
    assert combined["benchmarks"]["soak"]["status"] == "failed"
    assert "unreadable bench_soak.json" in combined["benchmarks"]["soak"]["error"]
    markdown = report.render_markdown(combined)
    assert "| phase.swaps | 60 |" in markdown and "| memory_mb | 100.5, 101 |" in markdown
    assert "now 1.00, 1.00, 1.00" in markdown


def test_a_report_in_an_unexpected_format_falls_back_to_raw_values(reports: Path) -> None:
    write_json(reports / "bench_compare.json", {"summary": [{"eps": 5.0}], "config": {"rate": 10}})
    combined = report.collect(reports, runs_record(run_entry("compare", "ok")), env=ENV)
    markdown = report.render_markdown(combined)
    assert "its format changed: KeyError" in markdown
    assert "| config.rate | 10 |" in markdown


def bench_script(directory: Path, name: str, body: str) -> None:
    prelude = "import json, sys, time\nfrom pathlib import Path\n" \
              "OUT = Path(__file__).resolve().parents[1] / 'reports'\nOUT.mkdir(exist_ok=True)\n"
    (directory / f"bench_{name}.py").write_text(prelude + textwrap.dedent(body))


def test_run_all_runs_each_benchmark_and_classifies_the_outcome(tmp_path: Path) -> None:
    bench_dir, reports = tmp_path / "benchmarks", tmp_path / "reports"
    bench_dir.mkdir()
    bench_script(bench_dir, "good", """
        # parser.add_argument("--quick")
        (OUT / "bench_good.json").write_text(json.dumps({"quick": "--quick" in sys.argv, "eps": 5.0}))
        print("measured 5 events/s")
    """)
    bench_script(bench_dir, "crash", """
        print("setting up")
        raise ValueError("boom: the broker said no")
    """)
    bench_script(bench_dir, "partial", """
        (OUT / "bench_partial.json").write_text(json.dumps({"done": 1}))
        sys.exit(2)
    """)
    bench_script(bench_dir, "silent", "print('nothing written')\n")
    bench_script(bench_dir, "hang", "time.sleep(60)\n")
    write_json(reports / "bench_crash.json", {"eps": 999.0})  # stale, from before this run

    seen: list[str] = []
    runs = report.run_all(report.discover(bench_dir), quick=True, bench_dir=bench_dir, reports=reports,
                          timeout=2.0, echo=seen.append)
    by_name = {r["name"]: r for r in runs["runs"]}

    assert by_name["good"]["status"] == "ok" and by_name["good"]["quick"] is True
    assert json.loads((reports / "bench_good.json").read_text())["quick"] is True
    assert "measured 5 events/s" in seen
    assert by_name["crash"]["quick"] is False  # it has no --quick flag, so none was passed
    assert by_name["crash"]["status"] == "failed"
    assert "ValueError: boom: the broker said no" in by_name["crash"]["error"]
    assert by_name["partial"]["status"] == "partial" and by_name["partial"]["error"].startswith("exit 2")
    assert by_name["silent"]["status"] == "failed"
    assert "wrote no reports/bench_silent.json" in by_name["silent"]["error"]
    assert by_name["hang"]["status"] == "failed" and by_name["hang"]["error"] == "timed out after 2 s"
    assert "setting up" in (tmp_path / by_name["crash"]["log"]).read_text()
    assert json.loads((reports / "bench_runs.json").read_text())["runs"] == runs["runs"]

    combined = report.collect(reports, runs, env=ENV)
    assert combined["benchmarks"]["crash"]["data"] is None  # the stale 999 is not shown
    assert combined["benchmarks"]["partial"]["data"] == {"done": 1}
    markdown = report.render_markdown(combined)
    assert "999" not in markdown
    assert "**PARTIAL**: exit 2" in markdown


def test_discover_orders_known_benchmarks_first(tmp_path: Path) -> None:
    for name in ("zeta", "soak", "compare", "kernels", "alpha", "worker"):
        (tmp_path / f"bench_{name}.py").write_text("")
    (tmp_path / "report.py").write_text("")
    assert report.discover(tmp_path) == ["kernels", "worker", "compare", "soak", "alpha", "zeta"]


def test_last_error_finds_the_exception_line() -> None:
    log = "starting\nTraceback (most recent call last):\n  File 'x.py', line 3\n    f()\n" \
          "scorer.errors.StoreUnavailable: cannot reach Cassandra at 127.0.0.1:9042\n"
    assert report.last_error(log) == "scorer.errors.StoreUnavailable: cannot reach Cassandra at 127.0.0.1:9042"
    assert report.last_error("a\nb\n\nc\n", lines=2) == "b | c"
    assert report.last_error("") == "(no output)"
