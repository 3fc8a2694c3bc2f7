"""Batch hooks for the scoring worker (``BatchScorer.hooks``): shadow scoring and drift counting.

A hook receives each scored group (:class:`scorer.stream.scoring.ScoredGroup`) after its predict call and
returns extra messages that the worker sends with the batch, before the batch's offsets are acknowledged
(so shadow outputs are at-least-once like predictions). Hooks never raise into scoring: the worker logs and
skips a failing hook, and these catch their own model errors too.
"""

from __future__ import annotations

import logging

import numpy as np

from scorer.monitor.observer import DriftObserver
from scorer.monitor.topics import SHADOW_TOPIC
from scorer.stream.batch import ExtraMessage, Scored, format_outputs, prediction_values, utc_stamp
from scorer.stream.events import feature_matrix, object_block
from scorer.stream.scoring import ScoredGroup, ScoredLane

log = logging.getLogger(__name__)


class ShadowHook:
    """Scores every event of a segment with its shadow version too; outputs go to ``topic`` only.

    The shadow sees the same events as the live model (the primary part and the canary part of a group
    alike), and its messages look like predictions with ``"shadow": true``. They never reach the predictions
    topic. A shadow that cannot score a row (a feature it cannot impute) or fails outright only loses its
    own outputs, counted in ``failures``.
    """

    def __init__(self, topic: str = SHADOW_TOPIC) -> None:
        self.topic = topic
        self.scored = 0
        self.failures = 0

    def lane(self, lane: ScoredLane) -> list[ExtraMessage]:
        """A fast lane's groups: only those whose segment has a shadow version are scored again."""
        out: list[ExtraMessage] = []
        start = 0
        for i, ((_, serving, _), size) in enumerate(zip(lane.items, lane.sizes, strict=True)):
            if serving.shadow is not None:
                out += self(lane.group(i, start))
            start += size
        return out

    def __call__(self, group: ScoredGroup) -> list[ExtraMessage]:
        shadow = group.serving.shadow
        if shadow is None or shadow.version == group.scored_by.version or not group.events:
            return []
        try:
            events = group.events
            categorical = getattr(shadow.predictor, "categorical", None)
            predict = shadow.predictor.predict
            if categorical is not None or getattr(group.scored_by.predictor, "categorical", None) is not None:
                # codes differ between versions: encode the events' own values for the shadow
                raw = object_block([e.features for e in events], shadow.feature_names)
                if categorical is None:
                    X = np.where(np.equal(raw, None), np.nan, raw).astype(np.float64)
                else:
                    X, keep, errors = categorical.encode_rows(raw)
                    self.failures += len(errors)
                    events = [events[i] for i in keep.tolist()]
                    predict = shadow.predictor.predict_encoded
            elif shadow.feature_names == group.scored_by.feature_names:
                X = group.X  # same columns in the same order: no second matrix
                if not shadow.accepts_missing:
                    keep = np.isfinite(X).all(axis=1)
                    if not keep.all():
                        self.failures += int((~keep).sum())
                        X = X[keep]
                        events = [e for e, k in zip(events, keep.tolist(), strict=True) if k]
            else:
                X, errors = feature_matrix([e.features for e in events], shadow.feature_names,
                                           shadow.accepts_missing, shadow.what)
                if errors:
                    self.failures += len(errors)
                    bad = {position for position, _ in errors}
                    events = [e for i, e in enumerate(events) if i not in bad]
            if not events:
                return []
            values, labels = format_outputs(shadow, predict(X))
        except Exception:  # a broken shadow must not touch live scoring
            self.failures += len(group.events)
            log.exception("shadow %s failed on %d events", shadow.what, len(group.events))
            return []
        self.scored += len(events)
        served = group.serving.segment
        head = Scored(group.model, group.segment, shadow.version, False, utc_stamp(), shadow=True,
                      served_by=served if served != group.segment else None)
        return [(self.topic, event.id.encode(), value)
                for event, value in zip(events, prediction_values(head, events, values, labels), strict=True)]


class DriftHook:
    """Feeds each scored group's matrix to a :class:`DriftObserver` (the observer publishes on its timer)."""

    def __init__(self, observer: DriftObserver) -> None:
        self.observer = observer

    def __call__(self, group: ScoredGroup) -> None:
        # The version's own segment (a fallback segment serves others): its training stats are the reference.
        scored_by = group.scored_by
        X = group.X
        categorical = getattr(scored_by.predictor, "categorical", None)
        if categorical is not None:  # category frequencies: missing as missing, unseen beyond the known codes
            X = categorical.drift_codes(object_block([e.features for e in group.events], scored_by.feature_names))
        self.observer.observe(scored_by.model, scored_by.segment, scored_by.version, X)

    def lane(self, lane: ScoredLane) -> None:
        """A fast lane's groups in one call (their models are fused kernels, never categorical)."""
        models = [serving.primary for _, serving, _ in lane.items]
        self.observer.observe_many([(m.model, m.segment, m.version) for m in models], lane.sizes, lane.X)
