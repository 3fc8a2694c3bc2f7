"""When to retrain a segment, and whether its candidate replaces the live version: a pure state machine.

Per (model, segment)::

    idle --trigger--> collecting --enough new labelled rows--> training --published--> trial
      ^                                                           |                      |
      +------------------- fit failed / decision (cooldown) ------+----------------------+

Triggers: a drift alert on the live version, the live version's rolling metric worse than its holdout
baseline by more than ``accuracy_drop`` (relative), or every ``every_labels`` labelled events. A drift or
accuracy trigger waits for ``min_train_rows`` labelled rows that arrived *after* it, so the refit sees the
new regime rather than a mix. During the trial both the live and the candidate version accumulate outcomes
from the trial's start only; once each side has ``min_trial_outcomes``, the candidate is promoted if it
beats the live version by ``margin`` on ``metric``, and retired otherwise (also after
``max_trial_seconds`` without enough evidence). A pointer that someone else changes ends our trial; a
human rollback of a version we promoted holds the segment for ``veto_hold_seconds``.

No I/O: the worker feeds observations in, executes the returned actions and reports their outcome back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scorer.errors import ConfigError
from scorer.monitor.accuracy import HIGHER_IS_BETTER, LOWER_IS_BETTER, REGRESSION, RollingWindow, better

IDLE, COLLECTING, TRAINING, TRIAL, HOLD = "idle", "collecting", "training", "trial", "hold"
MODES = ("canary", "shadow")


@dataclass(frozen=True)
class RetrainConfig:
    metric: str | None = None
    """Decision metric (log_loss, accuracy, roc_auc, rmse, mae); None: log_loss for classifiers, rmse otherwise."""
    margin: float = 0.01
    """The candidate must beat the live version by at least this much (absolute, in the metric's units)."""
    mode: str = "canary"
    """canary: the candidate scores ``canary_fraction`` of the traffic; shadow: it scores all of it on the side."""
    canary_fraction: float = 0.2
    min_train_rows: int = 300
    """Labelled rows needed for a fit (after the trigger, for drift and accuracy triggers)."""
    train_rows: int = 1000
    """A fit uses at most this many of the newest rows."""
    every_labels: int = 0
    """Scheduled retrain every N labelled events of a segment; 0 turns it off."""
    min_trial_outcomes: int = 200
    """Labelled outcomes needed on each side before deciding."""
    max_trial_seconds: float = 3600.0
    accuracy_drop: float = 0.2
    """Relative degradation of the live metric versus its holdout value that triggers a retrain."""
    min_live_outcomes: int = 200
    """Live outcomes in the rolling window before the accuracy check applies."""
    cooldown_seconds: float = 30.0
    """No new trigger for a segment this long after a decision or a failed fit."""
    veto_hold_seconds: float = 86_400.0
    """How long a segment is left alone after a human rolled back a version this worker promoted."""
    test_size: float = 0.2
    """Holdout share of each refit (its metrics are stored with the version and become the new baseline)."""
    arch: str | None = None
    """Architecture for refits; None reuses the live version's (``metrics["arch"]``), else the task default."""
    params: dict[str, Any] = field(default_factory=dict)
    """Estimator overrides for refits, as ``scorer train --param``."""
    actor: str = "retrain-worker"

    def __post_init__(self) -> None:
        if self.metric is not None and self.metric not in LOWER_IS_BETTER | HIGHER_IS_BETTER:
            known = sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)
            raise ConfigError(f"metric must be one of {known}; got {self.metric!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be canary or shadow; got {self.mode!r}")
        if not 0.0 < self.canary_fraction < 1.0:
            raise ConfigError(f"canary_fraction must be strictly between 0 and 1; got {self.canary_fraction}")
        for name in ("min_train_rows", "train_rows", "min_trial_outcomes", "min_live_outcomes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.train_rows < self.min_train_rows:
            raise ConfigError(f"train_rows ({self.train_rows}) must be >= min_train_rows ({self.min_train_rows})")
        if self.every_labels < 0 or self.margin < 0 or self.accuracy_drop <= 0:
            raise ConfigError("every_labels and margin must be >= 0 and accuracy_drop > 0")

    def metric_for(self, task: str) -> str:
        if self.metric is not None:
            if task == REGRESSION and self.metric not in ("rmse", "mae"):
                raise ConfigError(f"metric {self.metric!r} does not apply to a regressor; use rmse or mae")
            if task != REGRESSION and self.metric in ("rmse", "mae"):
                raise ConfigError(f"metric {self.metric!r} does not apply to a classifier")
            return self.metric
        return "rmse" if task == REGRESSION else "log_loss"


@dataclass(frozen=True)
class Fit:
    """Refit (model, segment) on the newest ``rows`` labelled rows, for ``reason`` (with ``evidence``)."""

    model: str
    segment: str
    rows: int
    live_version: int
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """End the trial of ``candidate``: promote it or retire it, with the comparison as evidence."""

    model: str
    segment: str
    candidate: int
    live_version: int
    promote: bool
    evidence: dict[str, Any]


@dataclass
class SegmentState:
    phase: str = IDLE
    live_version: int | None = None
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    rows_at_trigger: int = 0
    rows_needed: int = 0
    candidate: int | None = None
    task: str | None = None
    trial_started: float = 0.0
    trial_live: RollingWindow | None = None
    trial_candidate: RollingWindow | None = None
    cooldown_until: float = 0.0
    labels_since_fit: int = 0
    promoted: int | None = None
    """The version this worker last promoted here (to recognise a human veto)."""
    accuracy_alerted: bool = False


class RetrainPolicy:
    """Per-segment states and the rules above. Not thread-safe: one task drives it."""

    def __init__(self, config: RetrainConfig | None = None) -> None:
        self.config = config or RetrainConfig()
        self._states: dict[tuple[str, str], SegmentState] = {}

    def state(self, model: str, segment: str) -> SegmentState:
        key = (model, segment)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = SegmentState()
        return state

    def states(self) -> dict[tuple[str, str], SegmentState]:
        return dict(self._states)

    def forget_idle(self, keep: int) -> None:
        """Drop idle states beyond ``keep`` (they hold nothing but counters), bounding memory."""
        if len(self._states) <= keep:
            return
        for key in [k for k, s in self._states.items() if s.phase == IDLE and s.promoted is None]:
            del self._states[key]
            if len(self._states) <= keep:
                break

    # -- pointers ---------------------------------------------------------------------------------------
    def pointer(self, model: str, segment: str, version: int | None, canary: int | None, shadow: int | None,
                now: float) -> None:
        """The segment's row in active_models, as last read; notices changes made by someone else."""
        state = self.state(model, segment)
        if state.phase == TRIAL and state.candidate not in (canary, shadow) and version != state.candidate:
            self._idle(state, now)  # our candidate was taken off (a human, or another tool): stop the trial
        if state.promoted is not None and state.live_version == state.promoted and version != state.promoted \
                and state.phase != TRIAL:
            state.phase = HOLD  # a version we promoted was replaced by someone else: a veto
            state.cooldown_until = now + self.config.veto_hold_seconds
            state.promoted = None
        if version != state.live_version:
            state.accuracy_alerted = False
            if state.phase == COLLECTING:  # the trigger was about the version that just left
                self._idle(state, now)
        state.live_version = version

    # -- triggers ---------------------------------------------------------------------------------------
    def trigger(self, model: str, segment: str, version: int, reason: str, evidence: dict[str, Any], now: float,
                rows_seen: int) -> bool:
        """Start collecting for a retrain of the live ``version``; False when the segment is busy or resting."""
        state = self.state(model, segment)
        if state.phase == HOLD and now >= state.cooldown_until:
            state.phase = IDLE
        if state.phase != IDLE or now < state.cooldown_until or state.live_version is None \
                or version != state.live_version:
            return False
        state.phase = COLLECTING
        state.reason = reason
        state.evidence = evidence
        state.rows_at_trigger = rows_seen
        state.rows_needed = self.config.min_train_rows
        return True

    def on_example(self, model: str, segment: str, rows_seen: int, rows_held: int, now: float) -> Fit | None:
        """A labelled event joined its features (``rows_seen`` counts them all, ``rows_held`` is the window)."""
        state = self.state(model, segment)
        cfg = self.config
        state.labels_since_fit += 1
        if cfg.every_labels and state.labels_since_fit >= cfg.every_labels and state.phase == IDLE \
                and state.live_version is not None and rows_held >= cfg.min_train_rows:
            if self.trigger(model, segment, state.live_version, "schedule",
                            {"labels": state.labels_since_fit}, now, rows_seen - rows_held):
                state.rows_needed = cfg.min_train_rows
        if state.phase != COLLECTING or state.live_version is None:
            return None
        new_rows = rows_seen - state.rows_at_trigger
        if new_rows < state.rows_needed:
            return None
        state.phase = TRAINING
        return Fit(model, segment, min(new_rows, rows_held, cfg.train_rows), state.live_version, state.reason or "",
                   dict(state.evidence))

    def check_live(self, model: str, segment: str, version: int, window: RollingWindow, baseline: float | None,
                   now: float, rows_seen: int) -> dict[str, Any] | None:
        """Accuracy-drop rule for the live version; returns the alert evidence when it fires (once per drop)."""
        state = self.state(model, segment)
        if version != state.live_version or len(window) < self.config.min_live_outcomes or baseline is None:
            return None
        metric = self.config.metric_for(window.task)
        value = window.metrics().get(metric)
        if value is None or not math.isfinite(baseline):
            return None
        drop = self.config.accuracy_drop
        if metric in LOWER_IS_BETTER:
            limit = baseline * (1 + drop) if baseline > 0 else drop
            worse = value > limit
        else:
            limit = baseline * (1 - drop)
            worse = value < limit
        if not worse:
            state.accuracy_alerted = False
            return None
        if state.accuracy_alerted:
            return None
        state.accuracy_alerted = True
        evidence = {"metric": metric, "live": round(value, 5), "baseline": round(baseline, 5),
                    "limit": round(limit, 5), "n": len(window)}
        self.trigger(model, segment, version, "accuracy", evidence, now, rows_seen)
        return evidence

    # -- training and trial -----------------------------------------------------------------------------
    def fit_failed(self, model: str, segment: str, now: float) -> None:
        self._idle(self.state(model, segment), now)

    def trial_started(self, model: str, segment: str, candidate: int, task: str, now: float) -> None:
        state = self.state(model, segment)
        state.phase = TRIAL
        state.candidate = candidate
        state.task = task
        state.trial_started = now
        capacity = max(4 * self.config.min_trial_outcomes, 1000)
        state.trial_live = RollingWindow(task, capacity)
        state.trial_candidate = RollingWindow(task, capacity)
        state.labels_since_fit = 0

    def on_outcome(self, model: str, segment: str, version: int, score: float, truth: float) -> None:
        state = self._states.get((model, segment))
        if state is None or state.phase != TRIAL or state.trial_live is None or state.trial_candidate is None:
            return
        if version == state.candidate:
            state.trial_candidate.add(score, truth)
        elif version == state.live_version:
            state.trial_live.add(score, truth)

    def decisions(self, now: float) -> list[Decision]:
        """Trials with enough evidence (or out of time), each decided once; the caller reports back."""
        out = []
        for (model, segment), state in self._states.items():
            if state.phase != TRIAL or state.trial_live is None or state.trial_candidate is None:
                continue
            assert state.candidate is not None and state.live_version is not None and state.task is not None
            metric = self.config.metric_for(state.task)
            n_live, n_candidate = len(state.trial_live), len(state.trial_candidate)
            live = state.trial_live.metrics().get(metric)
            candidate = state.trial_candidate.metrics().get(metric)
            evidence = {"metric": metric, "live": _round(live), "candidate": _round(candidate), "n_live": n_live,
                        "n_candidate": n_candidate, "margin": self.config.margin, "trigger": state.reason}
            enough = min(n_live, n_candidate) >= self.config.min_trial_outcomes
            if enough and live is not None and candidate is not None:
                promote = better(metric, candidate, live, self.config.margin)
            elif now - state.trial_started >= self.config.max_trial_seconds:
                promote = False
                evidence["timeout_s"] = self.config.max_trial_seconds
            else:
                continue
            state.phase = TRAINING  # decided: waiting for the store to carry it out
            out.append(Decision(model, segment, state.candidate, state.live_version, promote, evidence))
        return out

    def finished(self, model: str, segment: str, promoted: bool, now: float) -> None:
        state = self.state(model, segment)
        if promoted and state.candidate is not None:
            state.live_version = state.candidate
            state.promoted = state.candidate
            state.accuracy_alerted = False
        self._idle(state, now)

    def _idle(self, state: SegmentState, now: float) -> None:
        state.phase = IDLE
        state.candidate = None
        state.trial_live = state.trial_candidate = None
        state.reason = None
        state.evidence = {}
        state.cooldown_until = now + self.config.cooldown_seconds
        state.labels_since_fit = 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)
