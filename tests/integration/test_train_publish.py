"""``scorer train`` without --out publishes every segment through the real Cassandra store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from scorer.cli import main
from scorer.config import Settings
from scorer.models import build
from scorer.store import CassandraModelStore


def write_csv(path: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["city,dist,hour,label"]
    for i, (city, n) in enumerate(sizes.items()):
        X = rng.normal(size=(n, 2))
        y = (X @ np.array([2.0, -1.0]) * (1 + i) + rng.logistic(size=n) > 0).astype(int)
        lines += [f"{city},{a:.6f},{b:.6f},{label}" for (a, b), label in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_train_publishes_versions_with_metrics_and_stats_and_activates(settings: Settings, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "trips.csv", {"ORD": 200, "JFK": 150, "SFO": 10})
    args = ["--keyspace", settings.keyspace, "train", "--data", str(data), "--model", "delay",
            "--segment-col", "city", "--target", "label", "--min-rows", "50", "--author", "trainer-test"]

    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output + first.stderr
    assert first.output.strip().splitlines()[-1] == "published 2 segments of delay"
    assert "SFO (10 rows): 10 rows < min_rows 50" in first.output

    with CassandraModelStore(settings) as store:
        assert store.active("delay") == {}  # published, not live
        for segment in ("ORD", "JFK"):
            (info,) = store.versions("delay", segment)
            assert info.version == 1 and info.author == "trainer-test" and info.arch == "logistic"
            assert info.feature_names == ("dist", "hour")
            assert info.metrics["task"] == "classification" and 0.6 < info.metrics["roc_auc"] <= 1.0
            assert info.metrics["n_train"] + info.metrics["n_holdout"] == (200 if segment == "ORD" else 150)
            assert info.stats["n_rows"] == info.metrics["n_train"]
            dist = info.stats["features"]["dist"]
            assert len(dist["edges"]) == 11 and abs(sum(dist["hist"]) - 1.0) < 1e-9
            weights = store.load("delay", segment, 1)
            assert build(weights).predict(np.zeros((1, 2))).shape == (1, 2)
        assert store.versions("delay", "SFO") == []

    second = CliRunner().invoke(main, [*args, "--activate", "--reason", "nightly"], catch_exceptions=False)
    assert second.exit_code == 0, second.output + second.stderr
    assert second.output.strip().splitlines()[-1] == "published 2 segments of delay and activated"
    with CassandraModelStore(settings) as store:
        active = store.active("delay")
        assert {segment: row.version for segment, row in active.items()} == {"ORD": 2, "JFK": 2}
        # Same data and seed: the second version holds the same weights as the first.
        assert store.load("delay", "ORD", 2) == store.load("delay", "ORD", 1)
        assert store.load("delay", "ORD") == store.load("delay", "ORD", 2)
        log = store.activations("delay", "ORD")
        assert log[0].to_version == 2 and log[0].reason == "nightly" and log[0].actor == "trainer-test"


@pytest.mark.slow
def test_train_as_a_subprocess(settings: Settings, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", {"A": 80})
    scorer = Path(sys.executable).with_name("scorer")
    base = [str(scorer), "--keyspace", settings.keyspace, "train", "--data", str(data), "--model", "eta",
            "--segment-col", "city", "--target", "label", "--min-rows", "20"]
    done = subprocess.run([*base, "--activate"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "published 1 segments of eta and activated"
    with CassandraModelStore(settings) as store:
        assert store.active("eta")["A"].version == 1


def test_each_version_records_the_lineage_of_its_training_rows(settings: Settings, tmp_path: Path) -> None:
    import hashlib

    import orjson

    from trainers.lineage import fingerprint

    rng = np.random.default_rng(3)
    lines = ["city,dist,hour,label,at"]
    rows: dict[str, list] = {"ORD": [], "JFK": []}
    times: dict[str, list] = {"ORD": [], "JFK": []}
    for i in range(240):
        city = "ORD" if i % 2 else "JFK"
        a, b = rng.normal(size=2)
        label = int(a - b + rng.logistic() > 0)
        at = f"2026-0{1 + i % 3}-{1 + i % 28:02d}T12:00:00"
        lines.append(f"{city},{a:.6f},{b:.6f},{label},{at}")
        times[city].append(at + "Z")
        rows[city].append((float(f"{a:.6f}"), float(f"{b:.6f}"), label))
    data = tmp_path / "trips.csv"
    data.write_text("\n".join(lines) + "\n")
    args = ["--keyspace", settings.keyspace, "train", "--data", str(data), "--model", "lin", "--segment-col", "city",
            "--target", "label", "--time-col", "at", "--activate"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr

    with CassandraModelStore(settings) as store:
        info = store.version_info("lin", "ORD", 1)
    assert info is not None and info.feature_names == ("dist", "hour")  # the time column is never a feature
    lineage = info.metadata["lineage"]
    ord_rows = np.array(rows["ORD"])
    expected = fingerprint(ord_rows[:, :2], ord_rows[:, 2].astype(np.int64))
    assert lineage["rows"] == 120 and lineage["sha256"] == expected["sha256"]
    assert (lineage["time_from"], lineage["time_to"]) == (min(times["ORD"]), max(times["ORD"]))
    assert lineage["scorer_version"] and len(hashlib.sha256().hexdigest()) == len(lineage["sha256"])

    shown = CliRunner().invoke(main, ["--keyspace", settings.keyspace, "show", "lin", "ORD", "--json"])
    assert shown.exit_code == 0, shown.output
    described = orjson.loads(shown.stdout)
    assert described["lineage"] == lineage and described["version"] == 1 and described["state"] == "active"
    assert described["pointer"]["version"] == 1 and described["recent_changes"][0]["action"] == "release"
    table = CliRunner().invoke(main, ["--keyspace", settings.keyspace, "show", "lin", "ORD"])
    assert table.exit_code == 0 and "120 rows" in table.stdout and lineage["sha256"][:16] in table.stdout
