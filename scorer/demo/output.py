"""The demo report's output: the summary as JSON and as a table on the terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


# -- output -------------------------------------------------------------------------------------------
def write_summary(summary: Mapping[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}{suffix}" if abs(value) < 10 else f"{value:,.1f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def render(summary: Mapping[str, Any], console: Any = None) -> None:
    """Print the summary as rich tables: totals, swaps, the drifted city, then per city and version."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: wide enough that no column wraps
            console = Console(width=140)
    totals = Table(title="scorer demo: summary", show_header=False, title_justify="left")
    totals.add_column("figure", style="bold")
    totals.add_column("value", justify="right")
    latency = summary["latency_ms"]
    for name, value in (
        ("events in the stream", _fmt(summary["stream_events"])),
        ("events sent to Kafka", _fmt(summary["events_sent"])),
        ("predictions", _fmt(summary["predictions"])),
        ("dead letters", _fmt(summary["dead_letters"])),
        ("duplicates (re-scored after a restart)", _fmt(summary["duplicates"])),
        ("lost (no prediction, no dead letter)", _fmt(summary["lost"])),
        ("send rate (events/s, while sending)", _fmt(summary["events_per_second"])),
        ("scoring rate (predictions/s, while scoring)", _fmt(summary.get("predictions_per_second"))),
        ("end-to-end latency p50", _fmt(latency["p50"], " ms")),
        ("end-to-end latency p99", _fmt(latency["p99"], " ms")),
        ("accuracy, all cities", _fmt(summary["overall"]["accuracy"])),
    ):
        totals.add_row(name, value)
    machine = summary.get("environment")
    if machine:
        totals.add_row("machine", f"{machine['cpus']} CPUs, load {machine['load_1m']:.1f} (1 min)")
    console.print(totals)

    if summary["swaps"]:
        swaps = Table(title="live swaps", title_justify="left")
        for column in ("city", "how", "from", "to", "seen", "first on new", "last on old", "old after swap"):
            swaps.add_column(column, justify="left" if column in ("city", "how") else "right")
        for swap in summary["swaps"]:
            swaps.add_row(swap["segment"], swap["method"], _fmt(swap["from_version"]), _fmt(swap["to_version"]),
                          "yes" if swap["observed"] else "[red]NO[/red]", _fmt(swap["delay_ms"], " ms"),
                          _fmt(swap["old_version_last_scored_ms"], " ms"),
                          _fmt(swap["events_sent_after_swap_on_old_version"]))
        console.print(swaps)
        console.print("  first on new: the city's first prediction on the new version, after the row was written; "
                      "last on old: its last prediction on the old one;\n  old after swap: events sent after the "
                      "write but still scored by the old version.", style="dim")

    drift = summary.get("drift")
    if drift:
        title = f"drifted city {drift['city']} (drift from {drift['drift_first_id']})"
        table = Table(title=title, title_justify="left")
        for column in ("phase", "events", "accuracy", "AUC"):
            table.add_column(column, justify="left" if column == "phase" else "right")
        for label, key in (("before the drift", "before_drift"),
                           ("after the drift, old version", "after_drift_old_version"),
                           (f"after the swap, v{drift['new_version']}", "after_swap_new_version")):
            row = drift[key]
            table.add_row(label, _fmt(row["n"]), _fmt(row["accuracy"]), _fmt(row["auc"]))
        console.print(table)

    per_city = Table(title="per city and version", title_justify="left")
    for column in ("city", "version", "events", "accuracy", "AUC"):
        per_city.add_column(column, justify="left" if column == "city" else "right")
    for segment, versions in summary["metrics"].items():
        for version, row in versions.items():
            per_city.add_row(segment, version, _fmt(row["n"]), _fmt(row["accuracy"]), _fmt(row["auc"]))
    console.print(per_city)

    checks_table = Table(title="checks", title_justify="left")
    checks_table.add_column("check")
    checks_table.add_column("result")
    checks_table.add_column("detail")
    for check in summary["checks"]:
        result = "[green]ok[/green]" if check["ok"] else "[red]FAILED[/red]"
        checks_table.add_row(check["name"], result, check["detail"])
    console.print(checks_table)
