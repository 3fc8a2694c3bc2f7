"""A short `make demo` (scripts/demo.sh) against the real servers, in its own keyspace, topics and group."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from support.net import free_port

from scorer.config import Settings
from scorer.kafka import delete_topics

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_demo_runs_end_to_end_with_both_swaps_and_nothing_lost(settings: Settings,
                                                                    tmp_path: Path) -> None:
    run = f"t{uuid.uuid4().hex[:10]}"
    report = tmp_path / "report"
    env = {
        **os.environ,
        "SCORER_KEYSPACE": settings.keyspace,
        "DEMO_RUN": run,
        "DEMO_EVENTS": "4000",
        "DEMO_RATE": "400",
        "DEMO_TRAIN_ROWS": "400",
        "DEMO_DATA_DIR": str(tmp_path / "data"),
        "DEMO_REPORT_DIR": str(report),
        "DEMO_WEB_PORT": str(free_port()),
        "VENV": str(ROOT / ".venv"),
    }
    # As `make demo > demo.log 2>&1`: both streams into one file opened with truncation.
    demo_log = tmp_path / "demo.log"
    try:
        with demo_log.open("w") as sink:
            result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, stdout=sink,
                                    stderr=subprocess.STDOUT, text=True, timeout=420, check=False)
    finally:
        asyncio.run(delete_topics(settings, prefix=f"demo-{run}-"))
        asyncio.run(delete_topics(settings, prefix=f"scorer-demo-{run}"))
    output = demo_log.read_text()
    log = report / "worker.log"
    worker_lines = [line for line in (log.read_text().splitlines() if log.is_file() else [])
                    if "swap" in line or "WARN" in line or "ERROR" in line]
    swaps_log = (report / "swaps.jsonl").read_text() if (report / "swaps.jsonl").is_file() else "(no swaps log)"
    assert result.returncode == 0, (f"{output[-5000:]}\n--- swaps log ---\n{swaps_log}\n--- worker log (swaps, "
                                    "warnings) ---\n" + "\n".join(worker_lines[-30:]))

    summary = json.loads((report / "summary.json").read_text())
    assert summary["stream_events"] == summary["events_sent"] == 4000
    assert summary["lost"] == 0 and summary["dead_letters"] == 0 and summary["unexpected_ids"] == 0
    assert summary["events_predicted"] == 4000
    swaps = {swap["segment"]: swap for swap in summary["swaps"]}
    assert set(swaps) == {"SFO", "ATL"}
    assert swaps["SFO"]["method"] == "scorer activate" and swaps["ATL"]["method"] == "raw CQL UPDATE"
    for swap in swaps.values():
        assert swap["observed"] and swap["events_on_new_version"] > 0, swap
        assert swap["from_version"] is not None and swap["to_version"] > swap["from_version"], swap
    assert summary["drift"]["recovered"], summary["drift"]
    assert summary["ok"]
    assert (report / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The whole log survived the redirect: its first step is there, before the lines the demo also
    # copies to stderr (published versions) and its last lines after them.
    assert "schema in keyspace" in output.lstrip().splitlines()[0], output[:500]
    assert output.index("schema in keyspace") < output.index("published rides/SFO") < output.index("demo passed")
    assert "make down" in output
