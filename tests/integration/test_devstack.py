"""`make up/down/status` behaviour: idempotent, leaves nothing behind, fails with one clear line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.net import free_port

from devstack.stack import _pid_alive, _port_in_use

ROOT = Path(__file__).resolve().parents[2]


def stack(*args: str, env: dict[str, str] | None = None, timeout: float = 200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.stack", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


@pytest.fixture
def side_kafka(tmp_path: Path) -> dict[str, str]:
    """Environment for a second, throw-away Kafka on free ports with its own data directory."""
    return {"SCORER_KAFKA_PORT": str(free_port()), "SCORER_KAFKA_CONTROLLER_PORT": str(free_port()),
            "SCORER_KAFKA_DATA": str(tmp_path / "kafka")}


def test_up_twice_is_harmless_and_down_leaves_no_process(side_kafka: dict[str, str]) -> None:
    first = stack("up", "kafka", env=side_kafka)
    assert first.returncode == 0, first.stderr
    assert "ready on" in first.stdout
    pid = int((Path(side_kafka["SCORER_KAFKA_DATA"]) / "pid").read_text())
    try:
        second = stack("up", "kafka", env=side_kafka)
        assert second.returncode == 0, second.stderr
        assert "already up" in second.stdout
        assert int((Path(side_kafka["SCORER_KAFKA_DATA"]) / "pid").read_text()) == pid
        status = stack("status", "kafka", env=side_kafka)
        assert "running" in status.stdout
    finally:
        down = stack("down", "kafka", env=side_kafka)
    assert down.returncode == 0, down.stderr
    assert not _pid_alive(pid)
    assert not _port_in_use("127.0.0.1", int(side_kafka["SCORER_KAFKA_PORT"]))
    assert "stopped" in stack("status", "kafka", env=side_kafka).stdout


def test_taken_port_fails_with_one_line(side_kafka: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(side_kafka["SCORER_KAFKA_PORT"])))
        squatter.listen()
        result = stack("up", "kafka", env=side_kafka)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is taken by another process" in lines[0], result.stderr


def test_server_not_ready_in_time_reports_log_tail_and_stops_it(side_kafka: dict[str, str]) -> None:
    result = stack("up", "kafka", env={**side_kafka, "SCORER_DEVSTACK_TIMEOUT": "0.5"})
    assert result.returncode == 1
    first, *log_tail = result.stderr.strip().splitlines()
    assert "did not become ready within" in first and "last lines of" in first, result.stderr
    assert log_tail, "the log tail should follow the one-line cause"
    pid_file = Path(side_kafka["SCORER_KAFKA_DATA"]) / "pid"
    assert not pid_file.exists()


def test_missing_java_is_named(tmp_path: Path, side_kafka: dict[str, str]) -> None:
    env = {**side_kafka, "PATH": str(tmp_path), "SCORER_JVM_DIRS": str(tmp_path), "JAVA_HOME": "", "SCORER_JAVA": ""}
    result = stack("up", "kafka", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("devstack: Java is missing"), result.stderr


def test_missing_maven_is_named_when_jars_are_not_cached(tmp_path: Path) -> None:
    env = {"PATH": os.path.dirname(sys.executable), "SCORER_DEVSTACK_CACHE": str(tmp_path / "empty-cache")}
    result = stack("fetch", "kafka", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("devstack: Maven is missing"), result.stderr
