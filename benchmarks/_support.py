"""Scaffolding the benchmark scripts share: a keyspace made and dropped, a fitted model, a free port, process CPU.

The scripts run standalone (``python benchmarks/bench_x.py``); each puts the repository root on ``sys.path``
before importing this module as ``benchmarks._support``.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scorer.config import Settings
    from scorer.models import ModelWeights

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def write_report(report: dict, name: str) -> Path:
    """The run's results as reports/<name> (JSON: what the table shows, and more, for later comparison)."""
    REPORTS.mkdir(exist_ok=True)
    out = REPORTS / name
    out.write_text(json.dumps(report, indent=2, default=str))
    return out


def create_keyspace(settings: Settings) -> None:
    """``settings.keyspace`` with the whole schema applied."""
    from scorer import schema
    from scorer.store.connection import connect

    cluster, session = connect(settings)
    try:
        schema.apply(session, settings)
    finally:
        cluster.shutdown()


def drop_keyspace(settings: Settings) -> None:
    from scorer.store.connection import connect

    cluster, session = connect(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def fitted_logistic(seed: int, n_features: int) -> ModelWeights:
    """A LogisticRegression really fitted on 300 random rows (its own per seed), exported with features f00..."""
    from sklearn.linear_model import LogisticRegression

    from trainers import export

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, n_features))
    y = (X @ rng.normal(size=n_features) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = LogisticRegression(max_iter=300).fit(X, y)
    return export(fitted, feature_names=[f"f{i:02d}" for i in range(n_features)])


def fitted_forest(seed: int, n_features: int, n_estimators: int = 50, max_depth: int = 8) -> ModelWeights:
    """A RandomForestClassifier (50 trees of depth 8 by default) fitted on 2,000 random rows, features f00..."""
    from sklearn.ensemble import RandomForestClassifier

    from trainers import export

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, n_features))
    y = (X @ rng.normal(size=n_features) + 0.5 * rng.normal(size=2000) > 0).astype(int)
    fitted = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1)
    return export(fitted.fit(X, y), feature_names=[f"f{i:02d}" for i in range(n_features)])


def fitted_model(arch: str, seed: int, n_features: int) -> ModelWeights:
    """``fitted_logistic`` or ``fitted_forest`` by name (the benchmarks' ``--arch``)."""
    if arch == "forest":
        return fitted_forest(seed, n_features)
    if arch == "logistic":
        return fitted_logistic(seed, n_features)
    raise ValueError(f"unknown benchmark arch {arch!r}; expected logistic or forest")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc (Linux); 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
