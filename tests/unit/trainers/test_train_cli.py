"""``scorer train --out``: files per segment, summary.json, and one readable error line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from scorer.cli import main
from scorer.models import ModelWeights, build


def write_csv(path: Path, rng: np.random.Generator, sizes: dict[str, int]) -> Path:
    lines = ["city,dist,hour,load,label,note"]
    for i, (city, n) in enumerate(sizes.items()):
        X = rng.normal(size=(n, 3))
        y = (X @ np.array([1.5, -1.0, 0.5]) * (1 + i) + rng.logistic(size=n) > 0).astype(int)
        for row, label in zip(X, y, strict=True):
            dist = "" if rng.random() < 0.05 else f"{row[0]:.6f}"
            lines.append(f"{city},{dist},{row[1]:.6f},{row[2]:.6f},{label},x")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str) -> object:
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_out_writes_one_npz_and_sidecar_per_segment_and_a_summary(tmp_path: Path, rng: np.random.Generator) -> None:
    data = write_csv(tmp_path / "trips.csv", rng, {"ORD": 150, "JFK": 120, "SFO": 20, "a/b c": 80})
    out = tmp_path / "out"
    result = run("--data", str(data), "--model", "delay", "--segment-col", "city", "--target", "label",
                 "--min-rows", "50", "--out", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "delay" and summary["task"] == "classification" and summary["arch"] == "logistic"
    assert summary["features"] == ["dist", "hour", "load"]  # numeric columns only, in file order
    assert sorted(summary["segments"]) == ["JFK", "ORD", "a/b c"]
    assert summary["skipped"] == {"SFO": {"n_rows": 20, "reason": "20 rows < min_rows 50"}}
    odd = summary["segments"]["a/b c"]
    assert odd["file"].startswith("a_b_c-") and odd["file"].endswith(".npz")  # made safe, kept distinct
    for segment, entry in summary["segments"].items():
        weights = ModelWeights.load(out / entry["file"])
        assert weights.checksum() == entry["checksum"]
        assert weights.feature_names == ("dist", "hour", "load")
        assert build(weights).predict(np.zeros((1, 3))).shape == (1, 2)
        sidecar = json.loads((out / entry["sidecar"]).read_text())
        assert sidecar["segment"] == segment and sidecar["metrics"] == entry["metrics"]
        assert entry["metrics"]["roc_auc"] > 0.6
        assert sum(entry["stats"]["features"]["dist"]["hist"]) == pytest.approx(1.0)
    assert summary["segments"]["ORD"]["n_rows"] == 150
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.json"] + [e["file"] for e in summary["segments"].values()]
        + [e["sidecar"] for e in summary["segments"].values()])
    # The table names every trained segment with its file; the last line says where everything went.
    assert "ORD.npz" in result.output and "SFO (20 rows): 20 rows < min_rows 50" in result.output
    assert result.output.strip().splitlines()[-1] == f"wrote 3 segments of delay to {out} (summary.json)"


def test_same_seed_gives_byte_identical_files(tmp_path: Path, rng: np.random.Generator) -> None:
    data = write_csv(tmp_path / "d.csv", rng, {"A": 80, "B": 80})
    for name in ("one", "two"):
        assert run("--data", str(data), "--model", "m", "--segment-col", "city", "--target", "label",
                   "--min-rows", "10", "--arch", "mlp", "--param", "max_iter=50", "--out",
                   str(tmp_path / name)).exit_code == 0
    for file in ("A.npz", "B.npz"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_parquet_regression_with_explicit_features(tmp_path: Path, rng: np.random.Generator) -> None:
    n = 200
    X = rng.normal(size=(n, 2))
    table = pa.table({"seg": np.repeat(["x", "y"], n // 2), "a": X[:, 0], "b": X[:, 1],
                      "minutes": 3 * X[:, 0] - X[:, 1] + rng.normal(scale=0.1, size=n)})
    pq.write_table(table, tmp_path / "d.parquet")
    result = run("--data", str(tmp_path / "d.parquet"), "--model", "eta", "--segment-col", "seg",
                 "--target", "minutes", "--features", "b,a", "--min-rows", "20", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["task"] == "regression" and summary["arch"] == "linear" and summary["features"] == ["b", "a"]
    assert summary["segments"]["x"]["metrics"]["r2"] > 0.95
    assert "rmse" in result.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--data", "nope.csv"], "error: data file 'nope.csv' not found"),
    (["--segment-col", "town"], "error: segment column 'town' not in data; columns are: city, dist"),
    (["--features", "dist,note"], "error: feature 'note' is not numeric (type string)"),
    (["--arch", "svm"], "error: unknown arch 'svm'; choose one of logistic, linear"),
    (["--min-rows", "1000"], "error: no segment could be trained: 2 segments, 2 below --min-rows 1000"),
    (["--param", "trees=3", "--arch", "forest"], "error: unknown parameter 'trees' for RandomForestClassifier"),
    (["--task", "regression", "--arch", "logistic"], "error: arch logistic is a classifier"),
    (["--activate"], "error: --activate makes published versions live; it does not apply with --out"),
])
def test_errors_are_one_line(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch,
                             extra: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "d.csv", rng, {"A": 60, "B": 60})
    args = {"--data": "d.csv", "--model": "m", "--segment-col": "city", "--target": "label", "--out": "o",
            "--min-rows": "10"}
    for flag, value in zip(extra[::2], extra[1::2], strict=False):
        args[flag] = value
    argv = [item for pair in args.items() for item in pair] + [flag for flag in extra if flag == "--activate"]
    result = CliRunner().invoke(main, ["train", *argv])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message), result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "summary.json").exists()

NOWHERE = ["--cassandra-hosts", "127.0.0.1", "--cassandra-port", "1"]
"""A Cassandra address where nothing listens."""


def test_publish_mode_refuses_a_bad_model_name_before_connecting(tmp_path: Path, rng: np.random.Generator) -> None:
    data = write_csv(tmp_path / "d.csv", rng, {"A": 60})
    result = CliRunner().invoke(main, [*NOWHERE, "train", "--data", str(data), "--model", "bad model",
                                       "--segment-col", "city", "--target", "label"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: model name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or "
        "digit; got 'bad model'"]


def test_publish_mode_fails_fast_naming_the_hosts_when_cassandra_is_unreachable(
        tmp_path: Path, rng: np.random.Generator) -> None:
    data = write_csv(tmp_path / "d.csv", rng, {"A": 60})
    result = CliRunner().invoke(main, [*NOWHERE, "train", "--data", str(data), "--model", "m",
                                       "--segment-col", "city", "--target", "label"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach Cassandra at 127.0.0.1:1")
