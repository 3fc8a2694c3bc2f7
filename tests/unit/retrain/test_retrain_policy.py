"""The retrain state machine and its bounded training windows, without any service."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import ConfigError
from scorer.monitor.accuracy import BINARY, RollingWindow
from scorer.retrain.policy import COLLECTING, HOLD, IDLE, TRAINING, TRIAL, RetrainConfig, RetrainPolicy
from scorer.retrain.window import SegmentWindow, TrainingWindows


def config(**overrides: object) -> RetrainConfig:
    base = {"min_train_rows": 10, "train_rows": 50, "min_trial_outcomes": 20, "min_live_outcomes": 20,
            "cooldown_seconds": 5.0, "margin": 0.02}
    base.update(overrides)
    return RetrainConfig(**base)  # type: ignore[arg-type]


def feed_trial(policy: RetrainPolicy, live_p: float, candidate_p: float, n: int, version: int = 1,
               candidate: int = 2) -> None:
    """Outcomes where the truth is always 1: a higher probability is a better model."""
    for _ in range(n):
        policy.on_outcome("m", "s", version, live_p, 1.0)
        policy.on_outcome("m", "s", candidate, candidate_p, 1.0)


def test_drift_trigger_waits_for_new_rows_then_fits_on_them_only() -> None:
    policy = RetrainPolicy(config())
    policy.pointer("m", "s", 1, None, None, now=0)
    assert policy.trigger("m", "s", 1, "drift", {"feature": "x"}, now=1, rows_seen=500)
    assert not policy.trigger("m", "s", 1, "drift", {}, now=1, rows_seen=500)  # busy: one trigger at a time
    for i in range(9):
        assert policy.on_example("m", "s", rows_seen=501 + i, rows_held=50, now=2) is None
    fit = policy.on_example("m", "s", rows_seen=510, rows_held=50, now=2)
    assert fit is not None and fit.rows == 10 and fit.reason == "drift" and fit.evidence == {"feature": "x"}
    assert policy.state("m", "s").phase == TRAINING


def test_trigger_for_another_version_or_during_cooldown_is_ignored() -> None:
    policy = RetrainPolicy(config())
    policy.pointer("m", "s", 3, None, None, now=0)
    assert not policy.trigger("m", "s", 2, "drift", {}, now=1, rows_seen=0)  # alert about an old version
    assert policy.trigger("m", "s", 3, "drift", {}, now=1, rows_seen=0)
    policy.fit_failed("m", "s", now=2)
    assert not policy.trigger("m", "s", 3, "drift", {}, now=3, rows_seen=0)
    assert policy.trigger("m", "s", 3, "drift", {}, now=8, rows_seen=0)


def test_better_candidate_is_promoted_worse_one_retired() -> None:
    for candidate_p, promote in ((0.9, True), (0.55, False), (0.61, False)):
        policy = RetrainPolicy(config())
        policy.pointer("m", "s", 1, None, None, now=0)
        policy.trigger("m", "s", 1, "drift", {}, now=0, rows_seen=0)
        policy.on_example("m", "s", rows_seen=10, rows_held=10, now=0)
        policy.trial_started("m", "s", 2, BINARY, now=1)
        feed_trial(policy, 0.6, candidate_p, 19)
        assert policy.decisions(now=2) == []  # not enough evidence yet
        feed_trial(policy, 0.6, candidate_p, 1)
        (decision,) = policy.decisions(now=2)
        assert decision.promote is promote and decision.candidate == 2 and decision.live_version == 1
        assert decision.evidence["metric"] == "log_loss" and decision.evidence["n_candidate"] == 20
        assert policy.decisions(now=3) == []  # decided once
        policy.finished("m", "s", decision.promote, now=3)
        state = policy.state("m", "s")
        assert state.phase == IDLE and state.live_version == (2 if promote else 1)


def test_trial_without_evidence_times_out_as_retire() -> None:
    policy = RetrainPolicy(config(max_trial_seconds=100))
    policy.pointer("m", "s", 1, None, None, now=0)
    policy.trigger("m", "s", 1, "drift", {}, now=0, rows_seen=0)
    policy.on_example("m", "s", rows_seen=10, rows_held=10, now=0)
    policy.trial_started("m", "s", 2, BINARY, now=0)
    feed_trial(policy, 0.6, 0.9, 5)
    assert policy.decisions(now=50) == []
    (decision,) = policy.decisions(now=100)
    assert not decision.promote and decision.evidence["timeout_s"] == 100


def test_accuracy_drop_triggers_once_per_drop() -> None:
    policy = RetrainPolicy(config(accuracy_drop=0.2))
    policy.pointer("m", "s", 1, None, None, now=0)
    window = RollingWindow(BINARY, 100)
    for _ in range(30):
        window.add(0.9, 1.0)
    assert policy.check_live("m", "s", 1, window, baseline=0.2, now=1, rows_seen=0) is None  # 0.105 < 0.2
    for _ in range(30):
        window.add(0.2, 1.0)  # log loss of the window rises to about 0.86
    evidence = policy.check_live("m", "s", 1, window, baseline=0.2, now=1, rows_seen=0)
    assert evidence is not None and evidence["metric"] == "log_loss" and evidence["live"] > 0.24
    assert policy.state("m", "s").phase == COLLECTING
    assert policy.check_live("m", "s", 1, window, baseline=0.2, now=2, rows_seen=0) is None


def test_scheduled_retrain_every_n_labels() -> None:
    policy = RetrainPolicy(config(every_labels=25))
    policy.pointer("m", "s", 1, None, None, now=0)
    fits = [policy.on_example("m", "s", rows_seen=i, rows_held=min(i, 50), now=0) for i in range(1, 26)]
    assert fits[:-1] == [None] * 24
    assert fits[-1] is not None and fits[-1].reason == "schedule" and fits[-1].rows == 25


def test_pointer_changed_by_someone_else_ends_trial_and_a_veto_holds() -> None:
    policy = RetrainPolicy(config(veto_hold_seconds=1000))
    policy.pointer("m", "s", 1, None, None, now=0)
    policy.trigger("m", "s", 1, "drift", {}, now=0, rows_seen=0)
    policy.on_example("m", "s", rows_seen=10, rows_held=10, now=0)
    policy.trial_started("m", "s", 2, BINARY, now=0)
    policy.pointer("m", "s", 1, 2, None, now=1)
    assert policy.state("m", "s").phase == TRIAL
    policy.pointer("m", "s", 1, None, None, now=2)  # a human cleared our canary
    assert policy.state("m", "s").phase == IDLE
    # promote, then a human rolls back: hold
    policy.trigger("m", "s", 1, "drift", {}, now=10, rows_seen=0)
    policy.on_example("m", "s", rows_seen=10, rows_held=10, now=10)
    policy.trial_started("m", "s", 3, BINARY, now=10)
    policy.finished("m", "s", True, now=11)
    policy.pointer("m", "s", 3, None, None, now=12)
    assert policy.state("m", "s").phase == IDLE
    policy.pointer("m", "s", 1, None, None, now=20)
    assert policy.state("m", "s").phase == HOLD
    assert not policy.trigger("m", "s", 1, "drift", {}, now=500, rows_seen=0)
    assert policy.trigger("m", "s", 1, "drift", {}, now=1021, rows_seen=0)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="mode"):
        RetrainConfig(mode="yolo")
    with pytest.raises(ConfigError, match="metric"):
        RetrainConfig(metric="f1")
    with pytest.raises(ConfigError, match="regressor"):
        RetrainConfig(metric="accuracy").metric_for("regression")
    assert RetrainConfig().metric_for("regression") == "rmse"


def test_segment_window_keeps_the_newest_rows_in_order() -> None:
    window = SegmentWindow(n_features=2, capacity=5, initial=2)
    for i in range(8):
        window.add(np.array([i, -i], dtype=float), i % 2)
    X, y = window.latest()
    assert X[:, 0].tolist() == [3, 4, 5, 6, 7] and y.tolist() == [1, 0, 1, 0, 1]
    X, y = window.latest(2)
    assert X[:, 0].tolist() == [6, 7] and window.total == 8
    small = SegmentWindow(n_features=1, capacity=100, initial=4)
    for i in range(6):
        small.add(np.array([i], dtype=float), i)
    assert small.latest(3)[0][:, 0].tolist() == [3, 4, 5]


def test_training_windows_are_bounded_with_many_segments() -> None:
    windows = TrainingWindows(capacity=100, max_segments=500)
    x = np.zeros(20)
    for i in range(10_000):
        windows.add("m", f"s{i}", x, 1)
    assert len(windows) == 500 and windows.evicted == 9_500
    assert windows.nbytes <= 500 * 100 * 21 * 8


def test_worker_turns_a_drift_alert_of_the_live_version_into_a_trigger() -> None:
    """The retrain worker's message dispatch, without services: alerts for other models or versions are ignored."""
    import orjson

    from scorer.config import load_settings
    from scorer.retrain.config import WorkerConfig
    from scorer.retrain.worker import RetrainWorker

    worker = RetrainWorker(load_settings(), WorkerConfig(models=("delay",)), store=object())
    worker.policy.pointer("delay", "ORD", 3, None, None, now=0)
    alert = {"kind": "drift", "model": "delay", "segment": "ORD", "version": 2, "feature": "x", "statistic": "psi",
             "value": 0.5, "threshold": 0.2, "window": {"n": 500}}
    worker._dispatch("model-alerts", orjson.dumps(alert))  # an older version: ignored
    worker._dispatch("model-alerts", orjson.dumps({**alert, "model": "other", "version": 3}))
    assert worker.policy.state("delay", "ORD").phase == "idle"
    worker._dispatch("model-alerts", orjson.dumps({**alert, "version": 3}))
    state = worker.policy.state("delay", "ORD")
    assert state.phase == "collecting" and state.reason == "drift"
    assert state.evidence == {"feature": "x", "statistic": "psi", "value": 0.5, "threshold": 0.2, "window_n": 500}
    worker._dispatch("model-alerts", b"not json")
    assert worker.counters["ignored"] == 1
