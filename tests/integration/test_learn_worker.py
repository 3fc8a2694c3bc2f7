"""``scorer learn-worker`` on the real Kafka and Cassandra.

1. A drifting segment (its feature-label relation flips, as SFO's in the demo) recovers its accuracy by
   online learning alone within a stated number of labels; checkpoints are versions that a running scoring
   worker serves; bad labels are dead-lettered with their reasons; a hand-made rollback pauses learning
   until ``scorer learn resume``.
2. A learner SIGKILLed mid-stream and restarted ends with exactly the weights of an uninterrupted run
   over the same labels (no label lost, none learned twice).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from support.stream import SCORER, Collector, WorkerProcess, cli_env, event, make_topics, produce_sync, run_cli

from scorer.config import Settings
from scorer.learn.state import learnable
from scorer.models import build
from scorer.store import CassandraModelStore
from trainers.segment import TrainConfig, fit_segment

pytestmark = pytest.mark.slow

FEATURES = ("f0", "f1", "f2", "f3")
BEFORE = np.array([1.5, -1.0, 0.5, 0.0])
AFTER = -BEFORE  # the drift: what meant "cancelled" now means the opposite
RECOVER_WITHIN = 600
"""Labels of the drifted regime after which the online-learned version must be >= 85% accurate."""
ROOT = Path(__file__).resolve().parents[2]


def rows(weights: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 4)).round(4)
    return X, ((X @ weights + 0.2 * rng.normal(size=n)) > 0).astype(int)


def publish_sgd(settings: Settings, model: str, segments: tuple[str, ...]) -> None:
    rng = np.random.default_rng(0)
    X, y = rows(BEFORE, 1500, rng)
    result = fit_segment(X, y, TrainConfig(arch="sgd"), segment="x", feature_names=FEATURES)
    with CassandraModelStore(settings) as store:
        for segment in segments:
            store.publish(model, segment, result.weights, metrics=result.metrics, stats=result.stats,
                          author="test", activate=True)


class Learner:
    """A ``scorer learn-worker`` subprocess."""

    def __init__(self, settings: Settings, model: str, events: str, labels: str, dlq: str, changes: str,
                 group: str, log_path: Path, *extra: str) -> None:
        self.args = [SCORER, "-v", "learn-worker", "--models", model, "--events-topic", events, "--labels-topic",
                     labels, "--dead-letter-topic", dlq, "--group-id", group, "--from-beginning",
                     "--label-wait", "2", *extra]
        self.env = cli_env(settings, SCORER_CHANGES_TOPIC=changes)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Learner:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=ROOT)
        return self

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"learn-worker exited {self.proc.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def checkpoints(settings: Settings, model: str, segment: str) -> list:
    with CassandraModelStore(settings) as store:
        return [v for v in store.versions(model, segment) if v.author == "learn-worker"]


def wait(condition: Callable[[], bool], timeout: float, what: str, learner: Learner) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        learner.check()
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{learner.tail()}")


def send(bootstrap: str, events_topic: str, labels_topic: str, model: str, segment: str, X: np.ndarray,
         y: np.ndarray, start: int) -> None:
    ids = [f"{model}-{segment}-{start + i}" for i in range(len(y))]
    produce_sync(bootstrap, events_topic, [event(i, segment, dict(zip(FEATURES, x.tolist(), strict=True)), model)
                                           for i, x in zip(ids, X, strict=True)])
    produce_sync(bootstrap, labels_topic, [(segment.encode(), orjson.dumps({"id": i, "label": int(label)}))
                                           for i, label in zip(ids, y, strict=True)])


def test_drifted_segment_recovers_by_online_learning(settings: Settings, new_topic: Callable[..., str],
                                                      bootstrap: str, model: str, tmp_path: Path) -> None:
    topics = make_topics(new_topic)
    labels, dlq = new_topic("labels", 1), new_topic("labels-dlq", 1)
    publish_sgd(settings, model, ("SFO", "ORD"))
    rng = np.random.default_rng(1)
    X_test, y_test = rows(AFTER, 2000, rng)
    with CassandraModelStore(settings) as store:
        v1 = store.load(model, "SFO")
    before = float((build(v1).predict(X_test).argmax(axis=1) == y_test).mean())
    assert before < 0.2, f"the drift must break the v1 model (accuracy {before:.2f})"

    scorer = WorkerProcess(settings, topics, name="learn-scoring").start()
    learner = Learner(settings, model, topics.events, labels, dlq, topics.changes, f"g-{model}",
                      tmp_path / "learner.log", "--every-labels", "100", "--every-seconds", "600",
                      "--promote", "direct").start()
    collector = Collector(bootstrap, [topics.predictions, dlq]).start()
    try:
        scorer.wait_ready()
        sent = 0
        accuracy = before
        while sent < RECOVER_WITHIN and accuracy < 0.85:
            X, y = rows(AFTER, 100, rng)
            send(bootstrap, topics.events, labels, model, "SFO", X, y, sent)
            sent += 100
            wait(lambda n=sent: len(checkpoints(settings, model, "SFO")) >= n // 100, 60, f"checkpoint of {sent}",
                 learner)
            with CassandraModelStore(settings) as store:
                accuracy = float((build(store.load(model, "SFO")).predict(X_test).argmax(axis=1) == y_test).mean())
        assert accuracy >= 0.85, f"SFO at {accuracy:.2f} after {sent} drifted labels"
        print(f"SFO: accuracy {before:.2f} -> {accuracy:.2f} after {sent} labels of the drifted regime")
        latest = checkpoints(settings, model, "SFO")[0]
        learned = learnable(CassandraModelStore(settings).load(model, "SFO", latest.version))
        assert learned.labels == sent and learned.state.t > 1 and learned.offsets == {f"{labels}/0": sent}

        # the scoring worker serves the checkpoint
        probe_X, _ = rows(AFTER, 50, rng)
        produce_sync(bootstrap, topics.events, [event(f"probe-{i}", "SFO", dict(zip(FEATURES, x.tolist(),
                                                                                     strict=True)), model)
                                                for i, x in enumerate(probe_X)])
        collector.wait_for(lambda c: sum(1 for r in c.snapshot(topics.predictions)
                                         if r.value["id"].startswith("probe-")
                                         and r.value["version"] == latest.version) >= 50, 60,
                           "probe predictions on the learned version")

        # bad labels: each dead-lettered with its reason
        X, y = rows(AFTER, 3, rng)
        ids = [f"bad-{i}" for i in range(3)]
        produce_sync(bootstrap, topics.events, [event(i, "SFO", dict(zip(FEATURES, x.tolist(), strict=True)), model)
                                                for i, x in zip(ids, X, strict=True)])
        produce_sync(bootstrap, labels, [(b"SFO", orjson.dumps({"id": "bad-0", "label": 7})),
                                         (b"SFO", orjson.dumps({"id": "bad-1", "label": [1]})),
                                         (b"SFO", b'{"id": "bad-2", "label": NaN}'),
                                         (b"SFO", orjson.dumps({"id": "never-sent", "label": 1}))])
        collector.wait_for(lambda c: len(c.snapshot(dlq)) >= 4, 60, "four dead letters")
        reasons = sorted(r.value["reason"].split(":")[0].split(" ")[0] for r in collector.snapshot(dlq))
        assert reasons == ["NaN", "unknown", "unknown", "wrong"], reasons

        # a hand-made rollback pauses SFO: its labels are dead-lettered, no checkpoint is written
        assert run_cli(settings, "rollback", model, "SFO", "--reason", "test").returncode == 0
        time.sleep(3)
        n_before = len(checkpoints(settings, model, "SFO"))
        X, y = rows(AFTER, 100, rng)
        send(bootstrap, topics.events, labels, model, "SFO", X, y, 10_000)
        collector.wait_for(lambda c: sum("paused" in r.value["reason"] for r in c.snapshot(dlq)) >= 100, 60,
                           "paused dead letters")
        assert len(checkpoints(settings, model, "SFO")) == n_before
        done = run_cli(settings, "learn", "resume", model, "SFO", "--reason", "checked")
        assert done.returncode == 0, done.stderr
        time.sleep(3)
        X, y = rows(AFTER, 100, rng)
        send(bootstrap, topics.events, labels, model, "SFO", X, y, 20_000)
        wait(lambda: len(checkpoints(settings, model, "SFO")) > n_before, 60, "a checkpoint after resume", learner)
    finally:
        collector.stop()
        learner.stop()
        scorer.close()


def test_sigkill_and_restart_end_with_the_weights_of_an_uninterrupted_run(
        settings: Settings, new_topic: Callable[..., str], bootstrap: str, tmp_path: Path) -> None:
    segments = ("A", "B", "C")
    rng = np.random.default_rng(5)
    stream = {s: rows(AFTER if s == "B" else BEFORE, 1200, rng) for s in segments}
    results = {}
    for run, kill in (("calm", False), ("killed", True)):
        model = f"k{run}{os.getpid()}"
        events, labels, dlq, changes = (new_topic("ev", 2), new_topic("lab", 1), new_topic("dlq", 1),
                                        new_topic("ch", 1))
        publish_sgd(settings, model, segments)
        learner = Learner(settings, model, events, labels, dlq, changes, f"g-{model}", tmp_path / f"{run}.log",
                          "--every-labels", "50", "--every-seconds", "600", "--promote", "none",
                          "--join-ttl", "600").start()
        try:
            for lo in range(0, 1200, 130):  # rounds of 130: 30 labels per segment wait past each checkpoint
                for s in segments:
                    X, y = stream[s]
                    send(bootstrap, events, labels, model, s, X[lo:lo + 130], y[lo:lo + 130], lo)
                if kill and lo == 390:  # 520 sent: 10 checkpoints each, 20 labels learned but not checkpointed
                    wait(lambda m=model: all(len(checkpoints(settings, m, s)) >= 10 for s in segments), 60,
                         "ten checkpoints per segment", learner)
                    time.sleep(1.0)
                    learner.kill()
                    learner.start()
            wait(lambda m=model: all(len(checkpoints(settings, m, s)) == 24 for s in segments), 120,
                 "24 checkpoints per segment", learner)
            with CassandraModelStore(settings) as store:
                results[run] = {s: store.load(model, s, checkpoints(settings, model, s)[0].version)
                                for s in segments}
        finally:
            learner.stop()
        if kill:  # the restarted learner resumed each segment from a checkpoint, not from the start
            resumed = re.findall(r"learns from version \d+ \(t=[\d.]+, (\d+) labels so far\)",
                                 learner.log_path.read_text())
            assert resumed[3:] == ["500", "500", "500"], resumed  # the 20 uncheckpointed ones were learned again
    for s in segments:
        calm, killed = learnable(results["calm"][s]), learnable(results["killed"][s])
        assert calm.labels == killed.labels == 1200
        assert calm.state.t == killed.state.t
        for name in ("learn.coef", "learn.intercept", "coef", "intercept"):
            np.testing.assert_array_equal(np.asarray(results["killed"][s].arrays[name]),
                                          np.asarray(results["calm"][s].arrays[name]))
    print(json.dumps({s: learnable(results["calm"][s]).state.coef.round(4).tolist() for s in segments}))


def test_gated_checkpoint_goes_live_only_through_the_canary_trial(
        settings: Settings, new_topic: Callable[..., str], bootstrap: str, model: str, tmp_path: Path) -> None:
    topics = make_topics(new_topic)
    labels, dlq = new_topic("labels", 1), new_topic("labels-dlq", 1)
    publish_sgd(settings, model, ("SFO",))
    scorer = WorkerProcess(settings, topics, name="learn-gated").start()
    learner = Learner(settings, model, topics.events, labels, dlq, topics.changes, f"g-{model}",
                      tmp_path / "gated.log", "--every-labels", "100", "--every-seconds", "600",
                      "--promote", "gated", "--gate-mode", "canary", "--canary-fraction", "0.5",
                      "--min-trial-outcomes", "100", "--predictions-topic", topics.predictions).start()
    rng = np.random.default_rng(2)
    try:
        scorer.wait_ready()
        X, y = rows(AFTER, 100, rng)
        send(bootstrap, topics.events, labels, model, "SFO", X, y, 0)
        wait(lambda: len(checkpoints(settings, model, "SFO")) >= 1, 60, "the first checkpoint", learner)
        first = checkpoints(settings, model, "SFO")[-1].version
        with CassandraModelStore(settings) as store:
            wait(lambda: store.active(model, "SFO")["SFO"].canary_version == first, 30, "the canary", learner)
            assert store.active(model, "SFO")["SFO"].version == 1  # not live before the trial's verdict
            sent = 100
            while store.active(model, "SFO")["SFO"].version == 1 and sent < 1500:
                X, y = rows(AFTER, 100, rng)
                ids = [f"{model}-SFO-{sent + i}" for i in range(100)]
                produce_sync(bootstrap, topics.events, [event(i, "SFO", dict(zip(FEATURES, x.tolist(), strict=True)),
                                                              model) for i, x in zip(ids, X, strict=True)])
                time.sleep(1.0)  # scored first, labelled later, as in life
                produce_sync(bootstrap, labels, [(b"SFO", orjson.dumps({"id": i, "label": int(v)}))
                                                 for i, v in zip(ids, y, strict=True)])
                sent += 100
                time.sleep(1.0)
                learner.check()
            row = store.active(model, "SFO")["SFO"]
            assert row.version == first, f"not promoted after {sent} labels:\n{learner.tail()}"
            entry = store.activations(model, "SFO", limit=1)[0]
            assert entry.actor == "learn-worker" and entry.action == "promote"
            assert "candidate beat live" in (entry.reason or "")
    finally:
        learner.stop()
        scorer.close()
