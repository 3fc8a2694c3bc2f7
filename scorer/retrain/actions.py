"""The retrain worker's actions: refit a segment, start its trial, and promote or retire the candidate.

A mixin of :class:`scorer.retrain.worker.RetrainWorker` (it uses the worker's store, policy, windows and
publisher). Every pointer change goes through the store with ``actor`` = the worker and a compact JSON
``reason`` holding the evidence, then a model-changes notice so scoring workers follow at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from scorer.errors import ConfigError
from scorer.monitor.accuracy import task_of
from scorer.retrain.policy import Decision, Fit
from scorer.retrain.refit import RefitRequest, RefitSkipped

if TYPE_CHECKING:
    from scorer.config import Settings
    from scorer.monitor.topics import Publisher
    from scorer.retrain.config import WorkerConfig
    from scorer.retrain.policy import RetrainPolicy
    from scorer.retrain.refit import RefitFn
    from scorer.retrain.window import TrainingWindows
    from scorer.store.base import ModelStore

log = logging.getLogger("scorer.retrain.worker")


class Actions:
    """Refit, decide and notify (see the module docstring)."""

    settings: Settings
    config: WorkerConfig
    policy: RetrainPolicy
    windows: TrainingWindows
    _store: ModelStore | None
    _fit_fn: RefitFn | None
    _publisher: Publisher
    _infos: dict[tuple[str, str, int], Any]
    _last_write: dict[tuple[str, str], float]
    _clock: Callable[[], float]

    async def _fit(self, fit: Fit) -> None:
        cfg = self.config.retrain
        info = self._infos.get((fit.model, fit.segment, fit.live_version))
        window = self.windows.get(fit.model, fit.segment)
        if info is None or window is None:
            raise RuntimeError(f"{fit.model}/{fit.segment}: no description or rows for live version {fit.live_version}")
        X, y = window.latest(fit.rows)
        task = "regression" if info.classes is None else "classification"
        arch = cfg.arch or (info.metrics or {}).get("arch")
        request = RefitRequest(X=X, y=y, task=task, arch=arch, segment=fit.segment,
                               feature_names=tuple(info.feature_names),
                               min_rows=min(cfg.min_train_rows, max(len(y), 2)), test_size=cfg.test_size,
                               seed=window.total, params=dict(cfg.params))
        if self._fit_fn is None:
            raise ConfigError(f"{fit.model}/{fit.segment}: this retrain worker has no fit function")
        try:
            result = await asyncio.to_thread(self._fit_fn, request)
        except RefitSkipped as exc:
            self.policy.fit_failed(fit.model, fit.segment, self._clock())
            self._record(fit.model, fit.segment, "fit_skipped", {"reason": str(exc)})
            return
        metric = cfg.metric_for(task_of(info.classes))
        evidence = {"trigger": fit.reason, **fit.evidence, "rows": int(len(y)), "from": fit.live_version,
                    "holdout": {metric: _round(result.metrics.get(metric))}}
        version = await asyncio.to_thread(self._store.publish, fit.model, fit.segment, result.weights,
                                          metrics=result.metrics, stats=result.stats, author=cfg.actor)
        evidence["version"] = version
        reason = _reason(f"retrained on {fit.reason}", evidence)
        if cfg.mode == "canary":
            await asyncio.to_thread(self._store.canary, fit.model, fit.segment, version, cfg.canary_fraction,
                                    actor=cfg.actor, reason=reason)
        else:
            await asyncio.to_thread(self._store.shadow, fit.model, fit.segment, version, actor=cfg.actor,
                                    reason=reason)
        self._last_write[(fit.model, fit.segment)] = self._clock()
        await self._notify(fit.model, fit.segment, cfg.mode, version)
        self.policy.trial_started(fit.model, fit.segment, version, task_of(info.classes), self._clock())
        self._record(fit.model, fit.segment, f"trial_{cfg.mode}", evidence)
        log.info("%s/%s: version %s on %s trial (%s)", fit.model, fit.segment, version, cfg.mode, evidence)

    async def _decide(self, decision: Decision) -> None:
        cfg = self.config.retrain
        evidence = {**decision.evidence, "candidate_version": decision.candidate, "live_version": decision.live_version}
        model, segment = decision.model, decision.segment
        if decision.promote:
            reason = _reason("candidate beat live", evidence)
            if cfg.mode == "canary":
                await asyncio.to_thread(self._store.promote, model, segment, actor=cfg.actor, reason=reason)
            else:
                await asyncio.to_thread(self._store.activate, model, segment, decision.candidate, actor=cfg.actor,
                                        reason=reason)
                await asyncio.to_thread(self._store.shadow, model, segment, None, actor=cfg.actor, reason=reason)
        else:
            reason = _reason("candidate retired: not better than live", evidence)
            if cfg.mode == "canary":
                await asyncio.to_thread(self._store.retire_canary, model, segment, actor=cfg.actor, reason=reason)
            else:
                await asyncio.to_thread(self._store.shadow, model, segment, None, actor=cfg.actor, reason=reason)
        self._last_write[(model, segment)] = self._clock()
        await self._notify(model, segment, "promote" if decision.promote else "retire",
                           decision.candidate if decision.promote else decision.live_version)
        self.policy.finished(model, segment, decision.promote, self._clock())
        self._record(model, segment, "promoted" if decision.promote else "retired", evidence)
        log.info("%s/%s: candidate %s %s (%s)", model, segment, decision.candidate,
                 "promoted" if decision.promote else "retired", evidence)


    async def _notify(self, model: str, segment: str, action: str, version: int) -> None:
        """A model-changes notice so scoring workers follow now rather than at their next poll (best effort)."""
        from scorer.kafka.notices import notice_fields, notice_key

        topic = self.settings.changes_topic
        if not topic:
            return
        try:
            await self._publisher.send(topic, notice_key(model), notice_fields(model, segment, action, version))
        except Exception:  # the scoring workers' poll catches the change anyway
            log.warning("could not publish a model-changes notice for %s/%s", model, segment, exc_info=True)


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 5)


def baseline(info: Any, metric: str) -> float | None:
    value = (info.metrics or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _reason(summary: str, evidence: dict[str, Any]) -> str:
    """The activation log's reason: a short phrase and the evidence as compact JSON, within the store's limit."""
    text = f"{summary} {orjson.dumps(evidence, default=str).decode()}"
    return text if len(text) <= 1900 else text[:1897] + "..."
