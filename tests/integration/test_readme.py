"""The README's code blocks work as written: the CLI tour, the Python export snippet and the raw CQL.

The only changes made to the tour are for isolation: a throw-away keyspace (SCORER_KEYSPACE), uuid topics
and a free web port for the background worker, so the test never touches anyone else's data.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session
from support.net import free_port

from scorer.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SCORER = str(Path(sys.executable).with_name("scorer"))


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def _commands(block: str) -> list[str]:
    """Shell lines with continuations joined and trailing `# comments` dropped."""
    joined = block.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = re.split(r"\s{2,}#\s", line)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _tour() -> list[str]:
    tours = [b for b in _blocks("bash") if "scorer schema apply" in b]
    assert len(tours) == 1, "the README has one CLI tour block"
    return _commands(tours[0])


def test_readme_opens_with_the_two_commands() -> None:
    first = _commands(_blocks("bash")[0])
    assert first == ["make demo", "make test"]


@pytest.mark.slow
def test_cli_tour_runs_as_written(settings: Settings, new_topic, tmp_path: Path) -> None:
    events, predictions, dlq = new_topic("events", 2), new_topic("predictions", 2), new_topic("dlq")
    env = {**os.environ, "SCORER_KEYSPACE": settings.keyspace, "SCORER_APP_ID": f"readme-{uuid.uuid4().hex[:8]}",
           "SCORER_CHANGES_TOPIC": new_topic("changes")}
    worker: subprocess.Popen | None = None
    outputs: dict[str, str] = {}
    try:
        for command in _tour():
            argv = shlex.split(command.rstrip("&").strip())
            assert argv[0] == "scorer", command
            argv[0] = SCORER
            if argv[1] == "worker":
                argv += ["--input-topic", events, "--output-topic", predictions, "--dlq-topic", dlq,
                         "--web-port", str(free_port())]
                worker = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                          stderr=(tmp_path / "worker.log").open("w"))
                continue
            if argv[1] == "send":
                argv += ["--topic", events]
            result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                                    check=False)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            outputs[argv[1]] = result.stdout
        assert outputs["publish"].strip().splitlines()[-1] == "published rides/ORD version 2"
        assert (tmp_path / "ord.npz").is_file()
        assert worker is not None and worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]


def test_python_snippet_runs(tmp_path: Path) -> None:
    (snippet,) = [b for b in _blocks("python") if "from trainers import export" in b]
    setup = "import numpy as np\nrng = np.random.default_rng(0)\nX = rng.normal(size=(200, 3))\n" \
            "X[::7, 1] = np.nan\ny = (np.nan_to_num(X[:, 0]) > 0).astype(int)\n"
    check = "\nimport numpy as np\nassert np.abs(model.predict(X) - pipe.predict_proba(X)).max() < 1e-9\n"
    result = subprocess.run([sys.executable, "-c", setup + snippet + check], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "delay-ORD.npz").is_file()


def test_cql_examples_are_valid(cassandra: Session, settings: Settings) -> None:
    (block,) = _blocks("sql")
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", block).split(";") if s.strip()]
    assert len(statements) == 5
    for statement in statements:
        cassandra.execute(statement.replace("scorer.", f"{settings.keyspace}."))
    row = cassandra.execute(
        f"SELECT version, canary_version, canary_fraction FROM {settings.keyspace}.active_models "
        "WHERE model = 'delay' AND segment = 'ORD'").one()
    assert (row.version, row.canary_version, row.canary_fraction) == (2, None, None)
