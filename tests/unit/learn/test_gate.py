"""``--promote gated``: a learned checkpoint is tried as canary and promoted (or retired) by the retrain
worker's own policy and actions, on outcomes joined to the labels."""

from __future__ import annotations

import asyncio

import numpy as np
from sklearn.linear_model import SGDClassifier

from scorer.config import Settings
from scorer.learn.gate import Gate
from scorer.retrain.policy import RetrainConfig
from scorer.store.memory import MemoryModelStore
from trainers import export


def _store() -> tuple[MemoryModelStore, int, int]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X, X[:, 0] > 0)
    weights = export(est, feature_names=["a", "b", "c"])
    store = MemoryModelStore()
    v1 = store.publish("m", "s", weights, author="test", activate=True)
    v2 = store.publish("m", "s", weights, author="learn-worker")
    return store, v1, v2


def _run(gate: Gate, live_p: float, candidate_p: float, v1: int, v2: int, n: int = 60) -> None:
    for i in range(n):
        truth = i % 2
        gate.on_prediction({"id": f"e{i}", "model": "m", "segment": "s", "version": v1,
                            "prediction": live_p if truth else 1 - live_p})
        gate.on_prediction({"id": f"e{i}", "model": "m", "segment": "s", "version": v2,
                            "prediction": candidate_p if truth else 1 - candidate_p})
        gate.on_label(f"e{i}", truth)
    asyncio.run(gate.step())


def test_a_better_checkpoint_is_promoted_through_the_canary_gate():
    store, v1, v2 = _store()
    gate = Gate(Settings(changes_topic=""), RetrainConfig(min_trial_outcomes=50, actor="learn-worker"), store,
                publisher=None)  # type: ignore[arg-type]
    assert asyncio.run(gate.offer("m", "s", v2, v1, (False, True)))
    assert store.active("m", "s")["s"].canary_version == v2
    assert not asyncio.run(gate.offer("m", "s", v2 + 1, v1, (False, True)))  # one trial at a time
    _run(gate, live_p=0.6, candidate_p=0.9, v1=v1, v2=v2)
    row = store.active("m", "s")["s"]
    assert row.version == v2 and row.canary_version is None
    assert [d["what"] for d in gate.decisions] == ["trial_canary", "promoted"]
    assert store.activations("m", "s", limit=1)[0].actor == "learn-worker"


def test_a_worse_checkpoint_is_retired():
    store, v1, v2 = _store()
    gate = Gate(Settings(changes_topic=""), RetrainConfig(min_trial_outcomes=50, actor="learn-worker"), store,
                publisher=None)  # type: ignore[arg-type]
    asyncio.run(gate.offer("m", "s", v2, v1, (False, True)))
    _run(gate, live_p=0.9, candidate_p=0.55, v1=v1, v2=v2)
    row = store.active("m", "s")["s"]
    assert row.version == v1 and row.canary_version is None
    assert gate.decisions[-1]["what"] == "retired"
