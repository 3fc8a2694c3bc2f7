"""The closed loop on the real Kafka and Cassandra, with no manual command.

A scoring worker (shadow + drift hooks) and ``scorer retrain-worker`` run as subprocesses. Three segments
stream events with delayed labels; part-way, segment B's inputs shift and its feature-label relation flips.
Drift must be flagged for B only, a new version trained, canaried and promoted by the retrain worker, B's
live accuracy must recover, and A and C must keep their versions. A second test gives the retrain worker a
crippled trainer: its candidate is worse than the live model and must be retired, not promoted.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from support.stream import (
    SCORER,
    Collector,
    Topics,
    cli_env,
    event,
    free_port,
    metric_value,
    produce_sync,
    run_cli,
)

from scorer.config import Settings
from scorer.store import CassandraModelStore
from trainers.segment import TrainConfig, fit_segment

pytestmark = pytest.mark.slow

MODEL = "delay"
FEATURES = ("f0", "f1", "f2", "f3")
WEIGHTS = {"A": np.array([1.5, -1.0, 0.5, 0.0]), "B": np.array([1.0, 1.0, 0.0, -1.0]),
           "C": np.array([-1.0, 0.5, 1.0, 0.5])}
DRIFTED_B = np.array([-1.0, -1.0, 0.0, 1.0])
SHIFT_B = np.array([1.5, 0.0, 0.0, 0.0])
ROOT = Path(__file__).resolve().parents[2]



def labelled(segment: str, n: int, rng: np.random.Generator, drifted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 4))
    weights = WEIGHTS[segment]
    if drifted:
        X = X + SHIFT_B
        weights = DRIFTED_B
    y = ((X @ weights + 0.3 * rng.normal(size=n)) > 0).astype(int)
    return X.round(4), y


def publish_initial(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    with CassandraModelStore(settings) as store:
        for segment in WEIGHTS:
            X, y = labelled(segment, 2000, rng)
            result = fit_segment(X, y, TrainConfig(arch="logistic"), segment=segment, feature_names=FEATURES)
            store.publish(MODEL, segment, result.weights, metrics=result.metrics, stats=result.stats,
                          author="test", activate=True)


class Stack:
    """Topics plus the two worker subprocesses, their logs under tmp_path."""

    def __init__(self, settings: Settings, new_topic: Callable[..., str], tmp_path: Path) -> None:
        self.settings = settings
        self.topics = Topics(new_topic("events", 4), new_topic("predictions", 4), new_topic("dlq", 1),
                             new_topic("changes", 1))
        self.shadow, self.labels = new_topic("shadow", 4), new_topic("labels", 4)
        self.drift, self.alerts, self.metrics = new_topic("drift", 2), new_topic("alerts", 1), new_topic("metrics", 2)
        self.tmp = tmp_path
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.env = cli_env(settings, SCORER_CHANGES_TOPIC=self.topics.changes)
        self.port = free_port()
        self.retrain_port = free_port()

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=ROOT)
        self.procs.append((proc, log_path))

    def start_scoring_worker(self) -> None:
        t = self.topics
        self._spawn("worker", [
            SCORER, "worker", "--input-topic", t.events, "--output-topic", t.predictions, "--dlq-topic", t.dlq,
            "--changes-topic", t.changes, "--app-id", f"t-{self.port}", "--web-port", str(self.port),
            "--web-host", "127.0.0.1", "--poll-interval", "0.5", "--partitions", "4", "--shadow-topic", self.shadow,
            "--drift-topic", self.drift, "--alerts-topic", self.alerts, "--drift-events", "300",
            "--drift-seconds", "2", "--drift-min-events", "150"])

    def start_retrain_worker(self, *extra: str) -> None:
        t = self.topics
        self._spawn("retrain", [
            SCORER, "-v", "retrain-worker", "--models", MODEL, "--events-topic", t.events,
            "--predictions-topic", t.predictions, "--shadow-topic", self.shadow, "--labels-topic", self.labels,
            "--alerts-topic", self.alerts, "--metrics-topic", self.metrics, "--group-id", f"r-{self.port}",
            "--from-beginning", "--poll-interval", "0.5", "--metrics-interval", "1", "--canary-fraction", "0.5",
            "--min-train-rows", "300", "--train-rows", "600", "--min-trial-outcomes", "150", "--margin", "0.02",
            "--cooldown", "5", "--web-port", str(self.retrain_port), *extra])

    def scrape(self, port: int) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    def wait_worker_ready(self, timeout: float = 90) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/models", timeout=2) as r:
                    state = orjson.loads(r.read())
                if state["worker"]["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"scoring worker not ready:\n{self.tails()}")

    def check_alive(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited with {proc.returncode}:\n{self.tails()}")

    def tails(self, lines: int = 40) -> str:
        out = []
        for _, path in self.procs:
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            out.append(f"---- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def stack(settings: Settings, new_topic: Callable[..., str], tmp_path: Path) -> Iterator[Stack]:
    running = Stack(settings, new_topic, tmp_path)
    try:
        yield running
    finally:
        running.close()


class Stream:
    """Rounds of events for every segment, each round's labels sent one round later (delayed labels)."""

    def __init__(self, stack: Stack, bootstrap: str, seed: int = 1) -> None:
        self.stack = stack
        self.bootstrap = bootstrap
        self.rng = np.random.default_rng(seed)
        self.truth: dict[str, int] = {}
        self.phase: dict[str, str] = {}
        self.pending: list[tuple[bytes, bytes]] = []
        self.n = 0

    def round(self, per_segment: int = 100, drift_b: bool = False) -> None:
        events, labels = [], []
        for segment in WEIGHTS:
            drifted = drift_b and segment == "B"
            X, y = labelled(segment, per_segment, self.rng, drifted=drifted)
            for row, label in zip(X, y, strict=True):
                event_id = f"e-{self.n}"
                self.n += 1
                events.append(event(event_id, segment, dict(zip(FEATURES, row.tolist(), strict=True)), MODEL))
                labels.append((event_id.encode(), orjson.dumps({"id": event_id, "label": int(label)})))
                self.truth[event_id] = int(label)
                self.phase[event_id] = "drift" if drifted else "normal"
        produce_sync(self.bootstrap, self.stack.topics.events, events)
        if self.pending:
            produce_sync(self.bootstrap, self.stack.labels, self.pending)
        self.pending = labels
        self.stack.check_alive()

    def flush_labels(self) -> None:
        if self.pending:
            produce_sync(self.bootstrap, self.stack.labels, self.pending)
            self.pending = []


def active(settings: Settings) -> dict:
    with CassandraModelStore(settings) as store:
        return store.active(MODEL)


def accuracy(records: list, stream: Stream, segment: str, version: int, phase: str) -> tuple[float, int]:
    hits = [int((r.value["prediction"] > 0.5) == (stream.truth[r.value["id"]] == 1)) for r in records
            if r.value["segment"] == segment and r.value["version"] == version
            and stream.phase.get(r.value["id"]) == phase]
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def test_drifting_segment_is_retrained_canaried_and_promoted_on_its_own(
        settings: Settings, bootstrap: str, stack: Stack) -> None:
    publish_initial(settings)
    collector = Collector(bootstrap, [stack.topics.predictions, stack.topics.dlq, stack.shadow, stack.alerts,
                                      stack.metrics]).start()
    try:
        stack.start_scoring_worker()
        # Accuracy triggers off (a drop of 1000x): the refit must come from the drift alert of the scoring worker.
        stack.start_retrain_worker("--accuracy-drop", "1000")
        stack.wait_worker_ready()
        time.sleep(3)  # the retrain worker joins its consumer group
        stream = Stream(stack, bootstrap)
        started = time.monotonic()
        for _ in range(8):  # 800 events per segment in the old regime
            stream.round()
        promoted_at = None
        drift_started = time.time()
        while time.monotonic() - started < 240:
            stream.round(drift_b=True)
            pointers = active(settings)
            if pointers["B"].version != 1 and promoted_at is None:
                promoted_at = stream.n
            if promoted_at is not None and stream.n - promoted_at >= 1500:  # 500 more B events after promotion
                break
            time.sleep(0.2)
        stream.flush_labels()
        assert promoted_at is not None, f"B was never promoted:\n{stack.tails()}"
        loop_seconds = time.monotonic() - started
        collector.wait_for(lambda c: len(c.ids(stack.topics.predictions)) >= stream.n, 60, "all predictions")
        time.sleep(3)  # last metrics interval

        pointers = active(settings)
        assert pointers["B"].version == 2 and pointers["B"].canary_version is None
        assert (pointers["A"].version, pointers["C"].version) == (1, 1)
        assert pointers["A"].canary_version is None and pointers["C"].canary_version is None

        alerts = [r.value for r in collector.snapshot(stack.alerts)]
        drift_alerts = [a for a in alerts if a["kind"] == "drift"]
        assert {a["segment"] for a in drift_alerts} == {"B"}, drift_alerts
        summary = [(a["version"], a["feature"], a["statistic"], round(a["value"], 3), a["window"]["n"])
                   for a in drift_alerts]
        assert all(a["version"] == 1 for a in drift_alerts), summary

        with CassandraModelStore(settings) as store:
            log_b = list(reversed(store.activations(MODEL, "B")))
            assert [e.action for e in log_b] == ["activate", "canary", "promote"], log_b
            canary, promote = log_b[1], log_b[2]
            assert canary.actor == promote.actor == "retrain-worker"
            assert canary.canary_version == 2 and promote.to_version == 2
            trigger = json.loads(canary.reason[canary.reason.index("{"):])
            assert trigger["trigger"] == "drift" and trigger["feature"] == "f0" and trigger["rows"] >= 300
            evidence = json.loads(promote.reason[promote.reason.index("{"):])
            assert evidence["candidate"] < evidence["live"] - 0.02 and min(evidence["n_live"],
                                                                          evidence["n_candidate"]) >= 150
            assert [e.action for e in store.activations(MODEL, "A")] == ["activate"]
            assert [e.action for e in store.activations(MODEL, "C")] == ["activate"]
            stats_b2 = store.version_info(MODEL, "B", 2).stats
            assert stats_b2["features"]["f0"]["mean"] > 1.0  # trained on the shifted inputs

        predictions = collector.snapshot(stack.topics.predictions)
        old_acc, n_old = accuracy(predictions, stream, "B", 1, "drift")
        new_acc, n_new = accuracy(predictions, stream, "B", 2, "drift")
        a_acc, _ = accuracy(predictions, stream, "A", 1, "normal")
        assert n_old >= 300 and n_new >= 300
        assert old_acc < 0.4 and new_acc > 0.85, (old_acc, new_acc)
        assert a_acc > 0.85

        metrics = {(m.value["segment"], m.value["version"]): m.value for m in collector.snapshot(stack.metrics)}
        assert metrics[("B", 2)]["metrics"]["accuracy"] > 0.85
        assert not collector.snapshot(stack.topics.dlq)
        assert not collector.snapshot(stack.shadow)  # canary mode: no shadow outputs

        worker_metrics = stack.scrape(stack.port)
        assert metric_value(worker_metrics, "scorer_drift_max_psi", segment="B", version="1") > 0.2
        assert 0 < metric_value(worker_metrics, "scorer_drift_max_psi", segment="A", version="1") < 0.2
        retrain_metrics = stack.scrape(stack.retrain_port)
        assert metric_value(retrain_metrics, "scorer_live_metric", segment="B", version="2", metric="accuracy") > 0.85
        assert metric_value(retrain_metrics, "scorer_retrain_actions_total", action="promoted") == 1

        drift_cli = run_cli(settings, "drift", MODEL, "--topic", stack.drift, "--all-versions", "--json",
                            env=stack.env)
        assert drift_cli.returncode == 0, drift_cli.stderr
        snapshots = {(s["segment"], s["version"]): s for s in json.loads(drift_cli.stdout)}
        assert snapshots[("B", 1)]["max_psi"] > 0.2
        assert snapshots[("A", 1)]["max_psi"] < 0.2 and snapshots[("C", 1)]["max_psi"] < 0.2
        canary_s = canary.at.timestamp() - drift_started
        promote_s = promote.at.timestamp() - drift_started
        print(f"\nclosed loop: {stream.n} events in {loop_seconds:.1f} s; drift began at event 2400; canary after "
              f"{canary_s:.1f} s ({trigger['trigger']}), promoted after {promote_s:.1f} s (event {promoted_at}); "
              f"B accuracy v1 after drift {old_acc:.3f} (n={n_old}), v2 {new_acc:.3f} (n={n_new}); "
              f"A v1 {a_acc:.3f}; trial evidence {evidence}")
    finally:
        collector.stop()


def test_worse_candidate_is_retired_not_promoted(settings: Settings, bootstrap: str, stack: Stack) -> None:
    """Shadow trials this time: candidates score every event on the shadow topic, never the predictions topic."""
    publish_initial(settings)
    collector = Collector(bootstrap, [stack.topics.predictions, stack.shadow]).start()
    try:
        stack.start_scoring_worker()
        # Scheduled refits every 300 labels, with a crippled estimator (almost no signal): a worse candidate.
        stack.start_retrain_worker("--mode", "shadow", "--every-labels", "300", "--param", "C=0.00001",
                                   "--accuracy-drop", "0.5")
        stack.wait_worker_ready()
        time.sleep(3)
        stream = Stream(stack, bootstrap, seed=2)
        started = time.monotonic()
        retired = False
        while time.monotonic() - started < 150 and not retired:
            stream.round()
            with CassandraModelStore(settings) as store:
                retired = any(e.action == "shadow" and e.canary_version is None
                              for e in store.activations(MODEL, "A"))
            time.sleep(0.2)
        stream.flush_labels()
        assert retired, f"no shadow candidate of A was retired:\n{stack.tails()}"
        with CassandraModelStore(settings) as store:
            for segment in WEIGHTS:
                log = store.activations(MODEL, segment)
                assert "promote" not in [e.action for e in log] and "activate" == log[-1].action
                assert [e.action for e in log].count("activate") == 1
                assert store.active(MODEL, segment)[segment].version == 1
            log_a = list(reversed(store.activations(MODEL, "A")))
            started_trial, ended_trial = log_a[1], log_a[2]
            assert (started_trial.action, started_trial.canary_version, started_trial.actor) == (
                "shadow", 2, "retrain-worker")
            assert ended_trial.action == "shadow" and ended_trial.canary_version is None
            evidence = json.loads(ended_trial.reason[ended_trial.reason.index("{"):])
            assert "not better" in ended_trial.reason and evidence["trigger"] == "schedule"
            assert evidence["candidate"] > evidence["live"], evidence  # log loss: the candidate was worse
        collector.wait_for(lambda c: len(c.ids(stack.topics.predictions)) >= stream.n, 60, "all predictions")
        shadow = collector.snapshot(stack.shadow)
        predictions = collector.snapshot(stack.topics.predictions)
        assert shadow and all(r.value["shadow"] is True and r.value["version"] == 2 for r in shadow)
        assert {r.value["version"] for r in predictions} == {1}  # shadow outputs never reach predictions
        assert {r.value["id"] for r in shadow} <= {r.value["id"] for r in predictions}
        shadow_a = [r for r in shadow if r.value["segment"] == "A"]
        assert len(shadow_a) >= 150  # every event of A while its candidate was on shadow (the trial needs 150)
        print(f"\nworse candidate retired (shadow): {evidence}; {len(shadow)} shadow outputs")
    finally:
        collector.stop()
