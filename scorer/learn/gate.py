"""``--promote gated``: a checkpoint goes live only through the retrain worker's canary/shadow gate.

The gate is the retrain worker's own machinery, reused: ``RetrainPolicy`` holds each segment's trial and
decides on the evidence, and ``Actions._decide`` carries the decision out (promote or retire, with the
evidence as the activation log's reason, and a model-changes notice). What the learner adds is the start of
a trial (a checkpoint becomes the canary, or the shadow, of a segment that has no trial running) and the
outcomes: predictions of the live and candidate versions joined to the same labels it learns from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from scorer.config import Settings
from scorer.monitor.accuracy import outcome, task_of
from scorer.monitor.join import LabelJoin
from scorer.monitor.topics import Publisher
from scorer.retrain.actions import Actions, _reason
from scorer.retrain.config import WorkerConfig
from scorer.retrain.policy import IDLE, RetrainConfig, RetrainPolicy
from scorer.store.base import ModelStore


class Gate(Actions):
    """Trials of learned checkpoints. Feed it predictions and labels; call ``step`` periodically."""

    def __init__(self, settings: Settings, retrain: RetrainConfig, store: ModelStore, publisher: Publisher,
                 clock: Callable[[], float] = time.time, join_ttl: float = 3600.0, join_max: int = 200_000) -> None:
        self.settings = settings
        self.config = WorkerConfig(retrain=retrain)
        self.policy = RetrainPolicy(retrain)
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._last_write: dict[tuple[str, str], float] = {}
        self._fit_fn = None
        self._infos: dict[tuple[str, str, int], Any] = {}
        self.join = LabelJoin(ttl=join_ttl, max_entries=join_max, clock=clock)
        self.decisions: list[dict[str, Any]] = []
        self._classes: dict[tuple[str, str], tuple | None] = {}

    def _record(self, model: str, segment: str, what: str, evidence: dict[str, Any]) -> None:
        self.decisions.append({"model": model, "segment": segment, "what": what, "at": self._clock(), **evidence})

    def pointer(self, model: str, segment: str, row: Any) -> None:
        if row is not None:
            self.policy.pointer(model, segment, row.version, row.canary_version, getattr(row, "shadow_version", None),
                                self._clock())

    async def offer(self, model: str, segment: str, version: int, live: int | None, classes: tuple | None) -> bool:
        """Try ``version`` as candidate unless the segment is already on trial; True when a trial started."""
        state = self.policy.state(model, segment)
        if state.phase != IDLE or live is None or self._clock() < state.cooldown_until:
            return False
        state.live_version = live
        self._classes[(model, segment)] = classes
        cfg = self.config.retrain
        reason = _reason("learned checkpoint on trial", {"version": version, "live_version": live})
        if cfg.mode == "canary":
            await asyncio.to_thread(self._store.canary, model, segment, version, cfg.canary_fraction,
                                    actor=cfg.actor, reason=reason)
        else:
            await asyncio.to_thread(self._store.shadow, model, segment, version, actor=cfg.actor, reason=reason)
        await self._notify(model, segment, cfg.mode, version)
        self.policy.trial_started(model, segment, version, task_of(classes), self._clock())
        self._record(model, segment, f"trial_{cfg.mode}", {"version": version, "live_version": live})
        return True

    def on_prediction(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("id"), str) \
                or not isinstance(message.get("version"), int):
            return
        key = (message.get("model"), str(message.get("segment")))
        if key not in self._classes:
            return
        part = (key, message["version"], message.get("prediction"))
        self._joined(self.join.add_prediction(message["id"], message["version"], part))

    def on_label(self, event_id: str, label: Any) -> None:
        self._joined(self.join.add_label(event_id, label))

    def _joined(self, items: list[Any]) -> None:
        for item in items:
            (model, segment), version, prediction = item.part
            classes = self._classes.get((model, segment))
            pair = outcome(task_of(classes), prediction, item.label, classes)
            if pair is not None:
                self.policy.on_outcome(model, segment, version, *pair)

    async def step(self) -> None:
        """Carry out every trial decision that is due (promote or retire, through the retrain worker's code)."""
        self.join.expire()
        for decision in self.policy.decisions(self._clock()):
            await self._decide(decision)
