"""One batch of input messages -> predictions and dead letters (no Kafka here, no awaiting but the cache's).

Steps: decode every message (:mod:`scorer.stream.events`), group valid events by (model, segment), resolve
each group to the cache's current :class:`~scorer.stream.cache.Serving` once (so the whole batch uses the
versions it started with), split canary events off by id, build one matrix per (model, segment, version)
and call ``predict`` once on it, then serialise outputs with orjson.

Hooks (``BatchScorer.hooks``) run after each scored group with a :class:`ScoredGroup` (ids, matrix, outputs,
the Serving with its canary/shadow models); whatever messages they return are sent with the batch, before
its offsets are acknowledged. That is the seam for shadow scoring, drift histograms and live accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

from scorer.stream.cache import LoadedModel, ModelCache, Serving, Unservable, canary_point
from scorer.stream.events import (
    DEFAULT_LIMITS,
    MISSING_FEATURE,
    MODEL_ERROR,
    Event,
    Invalid,
    Limits,
    decode_batch,
    feature_block,
    raw_text,
    row_errors,
)
from scorer.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)
_dumps = orjson.dumps


class InputRecord(Protocol):
    """What the scorer reads from a Kafka message (faust's Message and aiokafka's ConsumerRecord both fit)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class ScoredGroup:
    """One predict call: events of one (model, segment) scored by one version, for hooks."""

    model: str
    segment: str
    serving: Serving
    scored_by: LoadedModel
    canary: bool
    events: list[Event]
    X: np.ndarray
    output: np.ndarray


ExtraMessage = tuple[str, bytes | None, bytes]
"""(topic, key, value) a hook wants sent with the batch."""
BatchHook = Callable[[ScoredGroup], Iterable[ExtraMessage] | None]


@dataclass(slots=True)
class ModelFailure:
    """A group whose predict raised: retried with the batch, dead-lettered only when retries run out."""

    scored_by: LoadedModel
    error: BaseException
    indices: list[int]


@dataclass(slots=True)
class BatchResult:
    """Outputs of one batch, ready to send. ``predictions`` items are (key, value, input index)."""

    predictions: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes, int]] = field(default_factory=list)
    extra: list[ExtraMessage] = field(default_factory=list)
    failures: list[ModelFailure] = field(default_factory=list)
    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BatchScorer:
    """Scores batches against a :class:`ModelCache`; stateless apart from its hooks and metrics."""

    def __init__(self, cache: ModelCache, limits: Limits = DEFAULT_LIMITS, metrics: WorkerMetrics | None = None,
                 hooks: Sequence[BatchHook] = ()) -> None:
        self.cache = cache
        self.limits = limits
        self.metrics = metrics if metrics is not None else cache.metrics
        self.hooks: list[BatchHook] = list(hooks)
        self._event_counters: dict[tuple[str, str, str, str], Any] = {}

    async def resolve(self, events: list[Event]) -> tuple[dict[tuple[str, str], list[Event]],
                                                          dict[tuple[str, str], Serving | Unservable]]:
        """Group events by (model, segment) and resolve each group once (loading missing models)."""
        groups: dict[tuple[str, str], list[Event]] = {}
        for event in events:
            key = (event.model, event.segment)
            bucket = groups.get(key)
            if bucket is None:
                groups[key] = [event]
            else:
                bucket.append(event)
        lookup = self.cache.lookup
        resolved: dict[tuple[str, str], Serving | Unservable] = {}
        missing = []
        for key in groups:
            answer = lookup(*key)
            if answer is None:
                missing.append(key)
            else:
                resolved[key] = answer
        if missing:
            resolved.update(await self.cache.ensure(missing))
        return groups, resolved

    def score(self, records: Sequence[InputRecord], events: list[Event], invalid: list[Invalid],
              groups: dict[tuple[str, str], list[Event]], resolved: dict[tuple[str, str], Serving | Unservable],
              *, dead_letter_failures: bool = False) -> BatchResult:
        """Score resolved groups; model errors go to ``failures`` unless ``dead_letter_failures``.

        Events of every group whose model reads the same feature layout go into one matrix (one pass over
        the dicts, one finiteness check); each (segment, version) then predicts on its own row slice, except
        models with a fused kernel (linear, binary logistic), which score all their slices in one call.
        """
        result = BatchResult()
        for inv in invalid:
            self._dead_letter(result, records, inv.index, inv.reason, inv.kind)
        # (key, serving, model version, canary?, events), bucketed by the feature layout they read
        layouts: dict[tuple[str, ...], list[tuple[tuple[str, str], Serving, LoadedModel, bool, list[Event]]]] = {}
        for key, group in groups.items():
            answer = resolved[key]
            if isinstance(answer, Unservable):
                for event in group:
                    self._dead_letter(result, records, event.index, answer.reason, answer.kind)
                continue
            if answer.canary is not None:
                fraction = answer.canary_fraction
                canary_events: list[Event] = []
                primary_events: list[Event] = []
                for event in group:
                    (canary_events if canary_point(event.id) < fraction else primary_events).append(event)
                parts = [(answer.primary, False, primary_events), (answer.canary, True, canary_events)]
            else:
                parts = [(answer.primary, False, group)]
            for scored_by, is_canary, part in parts:
                if part:
                    bucket = layouts.get(scored_by.feature_names)
                    if bucket is None:
                        bucket = layouts[scored_by.feature_names] = []
                    bucket.append((key, answer, scored_by, is_canary, part))
        scored_at = utc_stamp()
        for names, parts_of_layout in layouts.items():
            X_all, nonfinite = feature_block([e.features for p in parts_of_layout for e in p[4]], names)
            fused = _fused_outputs(parts_of_layout, X_all)
            start = 0
            for i, (key, answer, scored_by, is_canary, part) in enumerate(parts_of_layout):
                stop = start + len(part)
                self._score_part(result, records, key, answer, scored_by, is_canary, part, X_all[start:stop],
                                 None if nonfinite is None else nonfinite[start:stop], scored_at,
                                 dead_letter_failures, fused.get(i))
                start = stop
        return result

    def _score_part(self, result: BatchResult, records: Sequence[InputRecord], key: tuple[str, str],
                    answer: Serving, scored_by: LoadedModel, is_canary: bool, part: list[Event], X: np.ndarray,
                    nonfinite: np.ndarray | None, scored_at: str, dead_letter_failures: bool,
                    precomputed: np.ndarray | None = None) -> None:
        model, segment = key
        version = scored_by.version
        counts = result.counts
        # Metrics are labelled with the row that served (the fallback's for made-up segments): segment names come
        # from events, and a label per name would grow the worker's memory and /metrics without bound.
        served = answer.segment
        rows_bad = None
        if nonfinite is not None:
            rows_bad, errors = row_errors(X, nonfinite, scored_by.feature_names, scored_by.accepts_missing,
                                          scored_by.what)
        if rows_bad is not None:
            for position, reason in errors:
                self._dead_letter(result, records, part[position].index, reason, MISSING_FEATURE)
            dead_key = (model, served, str(version), "dead_letter")
            counts[dead_key] = counts.get(dead_key, 0) + len(errors)
            keep = ~rows_bad
            part = [e for e, ok in zip(part, keep.tolist(), strict=True) if ok]
            if not part:
                return
            X = np.ascontiguousarray(X[keep])
            if precomputed is not None:
                precomputed = precomputed[keep]
        try:
            output = scored_by.predictor.predict(X) if precomputed is None else precomputed
            values, labels = _format(scored_by, output)
        except Exception as exc:  # noqa: BLE001 - a model failing must not drop the batch; retried
            if dead_letter_failures:
                reason = f"model {scored_by.what} failed to score: {type(exc).__name__}: {exc}"
                for event in part:
                    self._dead_letter(result, records, event.index, reason, MODEL_ERROR)
                dead_key = (model, served, str(version), "dead_letter")
                counts[dead_key] = counts.get(dead_key, 0) + len(part)
            else:
                result.failures.append(ModelFailure(scored_by, exc, [e.index for e in part]))
            return
        append = result.predictions.append
        for event, value, label in zip(part, values, labels, strict=True):
            event_id = event.id
            append((event_id.encode(), _dumps({
                "id": event_id, "model": model, "segment": segment, "version": version,
                "canary": is_canary, "prediction": value, "label": label, "scored_at": scored_at,
            }), event.index))
        count_key = (model, served, str(version), "canary" if is_canary else "scored")
        counts[count_key] = counts.get(count_key, 0) + len(part)
        if self.hooks:
            scored = ScoredGroup(model, segment, answer, scored_by, is_canary, part, X, output)
            for hook in self.hooks:
                try:
                    extra = hook(scored)
                except Exception:  # noqa: BLE001 - a hook must never fail scoring
                    log.exception("batch hook %r failed", hook)
                    continue
                if extra:
                    result.extra.extend(extra)

    def _dead_letter(self, result: BatchResult, records: Sequence[InputRecord], index: int, reason: str,
                     kind: str) -> None:
        record = records[index]
        result.dead_letters.append((record.key, _dumps({
            "error": reason, "raw": raw_text(record.value, self.limits), "topic": record.topic,
            "partition": record.partition, "offset": record.offset,
        }), index))
        result.reasons[kind] = result.reasons.get(kind, 0) + 1

    def record_metrics(self, result: BatchResult) -> None:
        """Count outcomes once the batch is delivered (so retried batches are not counted twice)."""
        children = self._event_counters
        for key, n in result.counts.items():
            child = children.get(key)
            if child is None:
                if len(children) > 100_000:  # versions come and go; the label lookup is only a cache
                    children.clear()
                child = children[key] = self.metrics.events.labels(*key)
            child.inc(n)
        dead = self.metrics.dead_letters
        for kind, n in result.reasons.items():
            dead.labels(kind).inc(n)


def _fused_outputs(parts: list[tuple[Any, Any, LoadedModel, bool, list[Event]]], X_all: np.ndarray
                   ) -> dict[int, np.ndarray]:
    """Outputs of the parts whose models share a fused kernel, by part index, from one call per kernel.

    Rows with NaN/inf are scored too (their outputs are dropped with the rows when dead-lettered); a fused
    kernel that raises leaves its parts to their own ``predict``, which reports the error per model.
    """
    by_key: dict[tuple, list[int]] = {}
    for i, part in enumerate(parts):
        predictor = part[2].predictor
        fuse_key = getattr(predictor, "fuse_key", None)  # any object with predict() can serve; few can fuse
        key = fuse_key() if fuse_key is not None else None
        if key is not None:
            by_key.setdefault((type(predictor), *key), []).append(i)
    out: dict[int, np.ndarray] = {}
    if not by_key:
        return out
    bounds = np.cumsum([0] + [len(part[4]) for part in parts])
    for (kind, *_), members in by_key.items():
        if len(members) < 2:
            continue
        owner = np.repeat(np.arange(len(members)), [bounds[i + 1] - bounds[i] for i in members])
        if owner.size == X_all.shape[0]:  # the usual case: every part of the layout fuses
            X = X_all
        else:
            X = np.ascontiguousarray(X_all[np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in members])])
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                fused = kind.predict_fused([parts[i][2].predictor for i in members], X, owner)
        except Exception:  # noqa: BLE001 - each part then predicts on its own and reports its own error
            log.exception("fused kernel %s failed; scoring its %d models one by one", kind.__name__, len(members))
            continue
        start = 0
        for i in members:
            stop = start + int(bounds[i + 1] - bounds[i])
            out[i] = fused[start:stop]
            start = stop
    return out


def decode(records: Sequence[InputRecord], limits: Limits) -> tuple[list[Event], list[Invalid]]:
    return decode_batch([r.value for r in records], limits)


def _format(scored_by: LoadedModel, output: np.ndarray) -> tuple[list[Any], list[Any]]:
    """Model output -> (prediction values, labels) as plain Python lists for orjson."""
    kind = scored_by.kind
    n = output.shape[0]
    if kind == "regression":
        values = np.asarray(output, dtype=np.float64).reshape(n).tolist()
        return values, [None] * n
    labels = scored_by.labels
    assert labels is not None
    if kind == "binary":
        # argmax of two columns: the second wins only when strictly larger (ties go to the first, like argmax)
        positive = output[:, 1]
        first, second = labels
        chosen = [second if win else first for win in (positive > output[:, 0]).tolist()]
        return positive.astype(np.float64, copy=False).tolist(), chosen
    winners = output.argmax(axis=1).tolist()
    return output.astype(np.float64, copy=False).tolist(), [labels[i] for i in winners]
