"""The store's CLI against the real Cassandra, through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cassandra.cluster import Session
from click.testing import CliRunner, Result
from support.store import logistic, snapshot

from scorer.cli import main
from scorer.config import Settings
from scorer.models import ModelWeights
from scorer.store import CassandraModelStore

ROOT = Path(__file__).resolve().parents[2]
SCORER = ROOT / ".venv" / "bin" / "scorer"


@pytest.fixture
def run(ks: Settings) -> Iterator:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--keyspace", ks.keyspace, *args], catch_exceptions=False)

    yield invoke


def ok(result: Result) -> list[str]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout.rstrip().splitlines()


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def npz(tmp_path: Path, weights: ModelWeights, name: str) -> str:
    path = tmp_path / f"{name}.npz"
    weights.save(path)
    return str(path)


def test_publish_activate_canary_promote_rollback_and_listings(run, tmp_path: Path, ks: Settings, model: str) -> None:
    first = npz(tmp_path, logistic(0), "first")
    second = npz(tmp_path, logistic(1), "second")
    assert ok(run("publish", "--model", model, "--segment", "ORD", "--weights", first))[-1] == (
        f"published {model}/ORD version 1")
    lines = ok(run("publish", "--model", model, "--segment", "ORD", "--weights", second, "--activate",
                   "--actor", "ops@box", "--reason", "first release"))
    assert lines[-1] == f"published {model}/ORD version 2"
    assert f"activated {model}/ORD version 2" in lines

    table = "\n".join(ok(run("versions", model)))
    assert "ORD" in table and "active" in table and "logistic" in table
    listed = json.loads(run("versions", model, "ORD", "--json").stdout)
    assert [(v["version"], v["active"], v["arch"]) for v in listed] == [(2, True, "logistic"), (1, False, "logistic")]
    assert listed[0]["checksum"] == logistic(1).checksum() and listed[0]["author"] == "ops@box"
    assert f"{model}/ORD version 2 (active)" in "\n".join(ok(run("show", model, "ORD")))
    assert "version 1" in "\n".join(ok(run("show", model, "ORD", "1")))

    assert ok(run("canary", model, "ORD", "1", "--fraction", "0.2"))[-1] == (
        f"canary {model}/ORD version 1 on 0.2 of traffic beside version 2")
    assert ok(run("promote", model, "ORD", "--reason", "canary looked fine"))[-1] == (
        f"promoted {model}/ORD canary version 1 to live (was 2)")
    assert ok(run("rollback", model, "ORD"))[-1] == f"rolled back {model}/ORD to version 2 (was 1)"
    assert ok(run("activate", model, "ORD", "1"))[-1] == f"activated {model}/ORD version 1 (was 2)"

    log = json.loads(run("activations", model, "ORD", "--json").stdout)
    assert [entry["action"] for entry in log] == ["activate", "rollback", "promote", "canary", "activate"]
    assert log[-1]["actor"] == "ops@box" and log[-1]["reason"] == "first release"
    assert log[2]["reason"] == "canary looked fine" and "@" in log[0]["actor"]  # default actor: user@host
    table = "\n".join(ok(run("activations", model)))
    assert "rollback" in table and "promote" in table

    out = tmp_path / "exported.npz"
    assert ok(run("export", model, "ORD", "--out", str(out)))[-1].startswith(f"exported {model}/ORD version 1 to ")
    assert ModelWeights.load(out) == logistic(0)
    ok(run("export", model, "ORD", "2", "--out", str(out)))
    assert ModelWeights.load(out) == logistic(1)


def test_release_from_a_file_and_latest_then_prune(run, tmp_path: Path, ks: Settings, model: str) -> None:
    weights = npz(tmp_path, logistic(0), "w")
    for segment in ("A", "B", "C"):
        for _ in range(3):
            ok(run("publish", "--model", model, "--segment", segment, "--weights", weights))
    mapping = tmp_path / "release.json"
    mapping.write_text(json.dumps({"A": 1, "B": 2, "C": 3}))
    line = ok(run("release", model, "--versions", str(mapping), "--reason", "weekly"))[-1]
    assert line.startswith(f"released {model}: 3 segments (3 changed), release ")
    with CassandraModelStore(ks) as store:
        assert {s: p.version for s, p in store.active(model).items()} == {"A": 1, "B": 2, "C": 3}
        release_id = line.rsplit(" ", 1)[-1]
        assert {a.release_id for a in store.activations(model)} == {release_id}
    ok(run("release", model, "--latest"))
    with CassandraModelStore(ks) as store:
        assert {s: p.version for s, p in store.active(model).items()} == {"A": 3, "B": 3, "C": 3}
    # Keep 1: the active 3 stays; A's rollback target 1 and B's 2 are kept too.
    lines = ok(run("prune", model, "--keep", "1"))
    assert lines[-1] == f"pruned 4 versions of {model}"
    assert "  A: deleted 2" in lines and "  B: deleted 1" in lines and "  C: deleted 2, 1" in lines
    assert ok(run("prune", model, "A", "--keep", "1"))[-1] == f"pruned 0 versions of {model}/A"


def test_errors_are_one_line_and_write_nothing(run, tmp_path: Path, ks: Settings, cassandra: Session,
                                               model: str) -> None:
    good = npz(tmp_path, logistic(0), "good")
    ok(run("publish", "--model", model, "--segment", "ORD", "--weights", good, "--activate"))
    before = snapshot(cassandra, ks.keyspace, model)
    assert f"{model}/ORD version 9" in one_error_line(run("activate", model, "ORD", "9"))
    assert "unknown model 'nosuch'" in one_error_line(run("activate", "nosuch", "ORD", "1"))
    for fraction in ("0", "1", "1.5", "-0.1", "nan"):
        assert "fraction" in one_error_line(run("canary", model, "ORD", "1", "--fraction", fraction))
    assert "no canary" in one_error_line(run("promote", model, "ORD"))
    assert "first activation" in one_error_line(run("rollback", model, "ORD"))
    w = logistic(0)
    nan = ModelWeights(w.arch, w.feature_names, {**w.arrays, "coef": np.full_like(w.arrays["coef"], np.nan)},
                       w.classes, w.metadata)
    assert "finite" in one_error_line(run("publish", "--model", model, "--segment", "ORD", "--weights",
                                          npz(tmp_path, nan, "nan")))
    assert "not a readable file" in one_error_line(run("publish", "--model", model, "--segment", "ORD",
                                                       "--weights", str(tmp_path / "missing.npz")))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    assert "junk.npz" in one_error_line(run("publish", "--model", model, "--segment", "ORD", "--weights", str(junk)))
    assert "segment" in one_error_line(run("publish", "--model", model, "--segment", "a/b", "--weights", good))
    bad_release = tmp_path / "bad.json"
    bad_release.write_text('{"ORD": "two"}')
    assert "segment -> version" in one_error_line(run("release", model, "--versions", str(bad_release)))
    bad_release.write_text('{"ORD": 5}')
    assert "1 of 1 versions do not exist" in one_error_line(run("release", model, "--versions", str(bad_release)))
    assert "exactly one of" in one_error_line(run("release", model))
    assert "no versions of nosuch" in one_error_line(run("versions", "nosuch"))
    assert "no versions" in one_error_line(run("show", model, "LAX"))
    assert "no active version" in one_error_line(run("export", model, "LAX", "--out", str(tmp_path / "x.npz")))
    assert snapshot(cassandra, ks.keyspace, model) == before


def test_publish_reads_metrics_and_stats_from_the_train_sidecar(run, tmp_path: Path, ks: Settings,
                                                                model: str) -> None:
    weights = logistic(2)
    path = npz(tmp_path, weights, "ORD")
    sidecar = {"model": model, "segment": "ORD", "checksum": weights.checksum(), "metrics": {"auc": 0.81},
               "stats": {"n_rows": 120}}
    (tmp_path / "ORD.json").write_text(json.dumps(sidecar))
    lines = ok(run("publish", "--model", model, "--segment", "ORD", "--weights", path))
    assert any("metrics and stats from" in line for line in lines)
    with CassandraModelStore(ks) as store:
        info = store.version_info(model, "ORD", 1)
        assert info is not None and info.metrics == {"auc": 0.81} and info.stats == {"n_rows": 120}
    (tmp_path / "ORD.json").write_text(json.dumps({**sidecar, "checksum": "0" * 64}))
    assert "describes other weights" in one_error_line(run("publish", "--model", model, "--segment", "ORD",
                                                           "--weights", path))


def scorer(*args: str, keyspace: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCORER_KEYSPACE": keyspace}
    return subprocess.run([str(SCORER), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


def test_cli_as_a_subprocess(tmp_path: Path, ks: Settings, model: str) -> None:
    path = npz(tmp_path, logistic(3), "w")
    done = scorer("publish", "--model", model, "--segment", "ORD", "--weights", path, "--activate",
                  keyspace=ks.keyspace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"published {model}/ORD version 1"
    listed = scorer("versions", model, "--json", keyspace=ks.keyspace)
    assert listed.returncode == 0, listed.stderr
    assert [(v["segment"], v["version"], v["active"]) for v in json.loads(listed.stdout)] == [("ORD", 1, True)]
    failed = scorer("activate", model, "ORD", "4", keyspace=ks.keyspace)
    assert failed.returncode == 1 and failed.stderr.strip().splitlines() == [
        f"error: cannot activate {model}/ORD version 4: no such complete version (newest is 1)"]


@pytest.mark.slow
def test_every_command_fails_fast_naming_the_hosts_when_cassandra_is_down(tmp_path: Path) -> None:
    weights = npz(tmp_path, logistic(0), "w")
    release = tmp_path / "release.json"
    release.write_text('{"ORD": 1}')
    commands = [
        ["publish", "--model", "delay", "--segment", "ORD", "--weights", weights],
        ["activate", "delay", "ORD", "1"],
        ["rollback", "delay", "ORD"],
        ["canary", "delay", "ORD", "2", "--fraction", "0.1"],
        ["promote", "delay", "ORD"],
        ["release", "delay", "--versions", str(release)],
        ["release", "delay", "--latest"],
        ["versions", "delay"],
        ["show", "delay", "ORD"],
        ["export", "delay", "ORD", "--out", str(tmp_path / "out.npz")],
        ["prune", "delay", "--keep", "2"],
        ["activations", "delay"],
    ]
    for command in commands:
        started = time.monotonic()
        done = scorer("--cassandra-hosts", "127.0.0.1", "--cassandra-port", "1", *command, keyspace="scorer")
        elapsed = time.monotonic() - started
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (command, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: cannot reach Cassandra at 127.0.0.1:1"), (command, lines)
        assert elapsed < 10, (command, elapsed)
