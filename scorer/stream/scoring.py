"""One batch of input messages -> predictions and dead letters (no Kafka here, no awaiting but the cache's).

Steps, each filling in the :class:`~scorer.stream.batch.Batch`: ``decode`` every message
(:mod:`scorer.stream.events`); ``resolve``: group valid events by (model, segment) and resolve each group to the
cache's current :class:`~scorer.stream.cache.Serving` once (so the whole batch uses the versions it started
with); ``score``: split canary events off by id into :class:`~scorer.stream.batch.Part` s, build one matrix per
feature layout, predict once per part (or once per fused kernel), serialise outputs in bulk
(:class:`~scorer.stream.batch.PredictionEncoder`). A layout whose groups all share one fused kernel takes the fast
lane (:mod:`scorer.stream.lanes`): one matrix, one kernel call, one encoding, a few list operations per group.

Hooks (``BatchScorer.hooks``) run after each scored group with a :class:`ScoredGroup` (ids, matrix, outputs,
the Serving with its canary/shadow models); whatever messages they return are sent with the batch, before
its offsets are acknowledged. That is the seam for shadow scoring, drift histograms and live accuracy. A hook
with a ``lane`` method gets each fast lane in one call instead (a :class:`ScoredLane`), so that groups of a few
events each (10,000 segments) cost it no call apiece.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
import orjson

from scorer.stream.batch import (
    Batch,
    BatchResult,
    ExtraMessage,
    Key,
    ModelFailure,
    Part,
    PredictionEncoder,
    Scored,
    format_outputs,
    prediction_values,
    utc_stamp,
)
from scorer.stream.cache import LoadedModel, ModelCache, Serving, Unservable
from scorer.stream.events import (
    BAD_VALUE,
    DEFAULT_LIMITS,
    MISSING_FEATURE,
    MODEL_ERROR,
    Event,
    Limits,
    decode_batch,
    feature_block,
    object_block,
    raw_text,
    row_errors,
    text_errors,
)
from scorer.stream.lanes import Lane, LaneHooks, fuse, score_lane, split
from scorer.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)
_dumps = orjson.dumps


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


@dataclass(slots=True)
class ScoredLane:
    """One fast lane's groups, for hooks with a ``lane`` method: each group is its Serving's primary scoring the
    events of its own segment (no canary, no fallback), and a fused kernel (never a categorical model) scored
    them; group ``i`` holds ``sizes[i]`` consecutive rows of ``X`` and ``output``."""

    items: list[Lane]
    sizes: list[int]
    X: np.ndarray
    output: np.ndarray

    def group(self, i: int, start: int) -> ScoredGroup:
        """Group ``i`` as a :class:`ScoredGroup` (its rows start at ``start``)."""
        (model, segment), serving, events = self.items[i]
        stop = start + self.sizes[i]
        return ScoredGroup(model, segment, serving, serving.primary, False, events, self.X[start:stop],
                           self.output[start:stop])


BatchHook = Callable[[ScoredGroup], Iterable[ExtraMessage] | None]
_Done = tuple[Part, str, list[Event], np.ndarray, "tuple[list[Any], list[Any]] | None"]
"""A scored part: (part, the segment that served, its events left, output, formatted values or None to encode);
or a list of ready predictions (key, value, input index) from the fast lane."""


def _call_hook(result: BatchResult, hook: Any, call: Callable[[Any], Iterable[ExtraMessage] | None], scored: Any
               ) -> None:
    """``call(scored)`` (a hook, or its ``lane`` method); its messages join the batch's. A hook never fails scoring."""
    try:
        extra = call(scored)
    except Exception:
        log.exception("batch hook %r failed", hook)
        return
    if extra:
        result.extra.extend(extra)


class BatchScorer:
    """Scores batches against a :class:`ModelCache`; stateless apart from its hooks and metrics."""

    def __init__(self, cache: ModelCache, limits: Limits = DEFAULT_LIMITS, metrics: WorkerMetrics | None = None,
                 hooks: Sequence[BatchHook] = ()) -> None:
        self.cache = cache
        self.limits = limits
        self.metrics = metrics if metrics is not None else cache.metrics
        self.hooks: list[BatchHook] = list(hooks)
        self._event_counters: dict[tuple[str, str, str, str], Any] = {}
        self.encoder = PredictionEncoder()

    def decode(self, batch: Batch) -> None:
        """Decode every message of the batch into events (or invalid ones, with their reasons)."""
        batch.events, batch.invalid = decode_batch([r.value for r in batch.records], self.limits)

    async def resolve(self, batch: Batch) -> None:
        """Group the batch's events by (model, segment) and resolve each group once (loading missing models)."""
        groups: dict[Key, list[Event]] = {}
        for event in batch.events:
            key = (event.model, event.segment)
            bucket = groups.get(key)
            if bucket is None:
                groups[key] = [event]
            else:
                bucket.append(event)
        keys = list(groups)
        resolved: dict[Key, Serving | Unservable] = dict(zip(keys, self.cache.lookup_many(keys), strict=True))
        missing = [key for key, answer in resolved.items() if answer is None]
        if missing:
            resolved.update(await self.cache.ensure(missing))
        batch.groups, batch.resolved = groups, resolved

    def score(self, batch: Batch, *, final_attempt: bool = False) -> BatchResult:
        """Score the resolved groups into ``batch.result`` (a fresh one each call, since a batch may be retried).

        Model errors go to ``failures`` unless ``final_attempt``, when they become dead letters. Events of every
        group whose model reads the same feature layout go into one matrix (one pass over the dicts, one
        finiteness check); each (segment, version) then predicts on its own row slice, except models with a
        fused kernel (linear, binary logistic), which score all their slices in one call.
        """
        result = batch.result = BatchResult()
        done: list[_Done | list[tuple[bytes, bytes, int]]] = []
        any_text = any(e.text for e in batch.events)
        for inv in batch.invalid:
            self._dead_letter(batch, inv.index, inv.reason, inv.kind)
        # by LoadedModel.layout (an int, or the names themselves): the feature names and the groups or parts
        layouts: dict[Any, tuple[tuple[str, ...], list[Part | Lane]]] = {}
        categorical: list[Part] = []
        for key, group in batch.groups.items():
            answer = batch.resolved[key]
            if type(answer) is Serving and answer.canary is None and not any_text:
                loaded = answer.primary
                if loaded.fuse_key is not None and key[1] == answer.segment:  # the fast lane (lanes.score_lane)
                    bucket = layouts.get(loaded.layout)
                    if bucket is None:
                        bucket = layouts[loaded.layout] = (loaded.feature_names, [])
                    bucket[1].append((key, answer, group))
                    continue
            if isinstance(answer, Unservable):
                for event in group:
                    self._dead_letter(batch, event.index, answer.reason, answer.kind)
                continue
            for part in split(key, answer, group):
                if getattr(part.scored_by.predictor, "categorical", None) is not None:
                    categorical.append(part)
                    continue
                if any_text:
                    part.events, bad = text_errors(part.events, part.scored_by.feature_names, part.scored_by.what)
                    for event, reason in bad:
                        self._dead_letter(batch, event.index, reason, BAD_VALUE)
                    if not part.events:
                        continue
                bucket = layouts.get(part.scored_by.layout)
                if bucket is None:
                    bucket = layouts[part.scored_by.layout] = (part.scored_by.feature_names, [])
                bucket[1].append(part)
        scored_at = utc_stamp()
        for part in categorical:
            try:
                encoded = self._encode_part(batch, part)
            except Exception as exc:  # noqa: BLE001 - an encoder bug costs this part's events, never the batch
                reason = f"model {part.scored_by.what} could not encode the events: {type(exc).__name__}: {exc}"
                for event in part.events:
                    self._dead_letter(batch, event.index, reason[:500], MODEL_ERROR)
                continue
            if encoded:
                self._score_part(batch, part, final_attempt, done)
        hooks = bool(self.hooks)
        lane_hooks = self._lane_hooks(result) if hooks else None
        for names, items in layouts.values():
            ready = score_lane(result.counts, items, names, scored_at, self.encoder, lane_hooks)
            if ready is not None:
                done.append(ready)
                continue
            parts = [item if type(item) is Part else Part(item[0], item[1], item[1].primary, False, item[2])
                     for item in items]
            X_all, nonfinite = feature_block([e.features for part in parts for e in part.events], names)
            bounds = [0, *accumulate([len(part.events) for part in parts])]
            fuse(parts, X_all, bounds)
            for part, start, stop in zip(parts, bounds, bounds[1:]):  # noqa: B905 - bounds has one more
                if nonfinite is not None:
                    part.nonfinite = nonfinite[start:stop]
                    part.X = X_all[start:stop]
                elif hooks or part.output is None:  # a fused part's rows are needed only by hooks
                    part.X = X_all[start:stop]
                self._score_part(batch, part, final_attempt, done)
        self._emit(result, done, scored_at)
        return result

    def _encode_part(self, batch: Batch, part: Part) -> bool:
        """Categorical inputs -> codes for one part; unknown or mistyped values are dead-lettered per event.
        False when no event is left."""
        scored_by = part.scored_by
        X_obj = object_block([e.features for e in part.events], scored_by.feature_names)
        X, keep, errors = scored_by.predictor.categorical.encode_rows(X_obj, scored_by.what)
        if errors:
            for row, reason, kind in errors:
                self._dead_letter(batch, part.events[row].index, reason, kind)
            dead_key = (part.key[0], part.serving.segment, str(scored_by.version), "dead_letter")
            batch.result.counts[dead_key] = batch.result.counts.get(dead_key, 0) + len(errors)
            part.events = [part.events[i] for i in keep.tolist()]
        finite = np.isfinite(X)
        part.X, part.nonfinite = X, None if finite.all() else ~finite
        return bool(part.events)

    def _score_part(self, batch: Batch, part: Part, final_attempt: bool, done: list[Any]) -> None:
        """Predict one part (unless a fused kernel did), dead-letter the rows it cannot score, run the hooks, and
        queue its outputs in ``done`` for :meth:`_emit`."""
        result = batch.result
        model, segment = part.key
        scored_by = part.scored_by
        version = scored_by.version
        counts = result.counts
        # Metrics are labelled with the row that served (the fallback's for made-up segments): segment names come
        # from events, and a label per name would grow the worker's memory and /metrics without bound.
        served = part.serving.segment
        events, X, output = part.events, part.X, part.output
        if part.nonfinite is not None and X is not None:
            rows_bad, errors = row_errors(X, part.nonfinite, scored_by.feature_names, scored_by.accepts_missing,
                                          scored_by.what)
            if rows_bad is not None:
                for position, reason in errors:
                    self._dead_letter(batch, events[position].index, reason, MISSING_FEATURE)
                dead_key = (model, served, str(version), "dead_letter")
                counts[dead_key] = counts.get(dead_key, 0) + len(errors)
                keep = ~rows_bad
                events = [e for e, ok in zip(events, keep.tolist(), strict=True) if ok]
                if not events:
                    return
                X = np.ascontiguousarray(X[keep])
                if output is not None:
                    output = output[keep]
        try:
            if output is None:
                predictor = scored_by.predictor
                if getattr(predictor, "categorical", None) is not None:
                    output = predictor.predict_encoded(X)  # codes already (see _encode_part)
                else:
                    output = predictor.predict(X)
            simple = self.encoder.simple(scored_by, output, len(events))
            formatted = None if simple else format_outputs(scored_by, output)
        except Exception as exc:  # noqa: BLE001 - a model failing must not drop the batch; retried
            if final_attempt:
                reason = f"model {scored_by.what} failed to score: {type(exc).__name__}: {exc}"
                for event in events:
                    self._dead_letter(batch, event.index, reason, MODEL_ERROR)
                dead_key = (model, served, str(version), "dead_letter")
                counts[dead_key] = counts.get(dead_key, 0) + len(events)
            else:
                result.failures.append(ModelFailure(scored_by, exc, [e.index for e in events]))
            return
        done.append((part, served, events, output, formatted))
        count_key = (model, served, str(version), "canary" if part.canary else "scored")
        counts[count_key] = counts.get(count_key, 0) + len(events)
        if self.hooks and X is not None:
            self._run_hooks(result, ScoredGroup(model, segment, part.serving, scored_by, part.canary, events, X,
                                                output))

    def _run_hooks(self, result: BatchResult, scored: ScoredGroup, hooks: Sequence[BatchHook] | None = None) -> None:
        for hook in self.hooks if hooks is None else hooks:
            _call_hook(result, hook, hook, scored)

    def _lane_hooks(self, result: BatchResult) -> LaneHooks:
        """The hooks of a fast lane: each hook's ``lane`` method once, or the hook per group (as a ScoredGroup)."""
        def run(items: list[Lane], sizes: list[int], X: np.ndarray, output: np.ndarray) -> None:
            lane = ScoredLane(items, sizes, X, output)
            per_group: list[BatchHook] = []
            for hook in self.hooks:
                whole = getattr(hook, "lane", None)
                if whole is None:
                    per_group.append(hook)
                else:
                    _call_hook(result, hook, whole, lane)
            if per_group:
                start = 0
                for i, size in enumerate(sizes):
                    self._run_hooks(result, lane.group(i, start), per_group)
                    start += size

        return run

    def _emit(self, result: BatchResult, done: list[_Done | list[tuple[bytes, bytes, int]]], scored_at: str) -> None:
        """The prediction messages of every scored part, in order: runs of binary/regression parts encoded in bulk
        (:class:`~scorer.stream.batch.PredictionEncoder`), others (multiclass) one by one."""
        encoder = self.encoder
        tails: dict[str | None, bytes] = {}
        run: list[tuple[bytes, bytes, LoadedModel, list[Event], np.ndarray]] = []
        predictions = result.predictions

        def flush() -> None:
            if run:
                messages = encoder.encode(run)
                keys = [e.id.encode() for *_, events, _ in run for e in events]
                indices = [e.index for *_, events, _ in run for e in events]
                predictions.extend(zip(keys, messages, indices, strict=True))
                run.clear()

        for item in done:
            if type(item) is list:
                flush()
                predictions.extend(item)
                continue
            part, served, events, output, formatted = item
            model, segment = part.key
            served_by = served if served != segment else None
            if formatted is None:
                if run and run[0][2].kind != part.scored_by.kind:
                    flush()
                tail = tails.get(served_by)
                if tail is None:
                    tail = tails[served_by] = encoder.tail(scored_at, served_by)
                run.append((encoder.head(model, segment, part.scored_by.version, part.canary), tail, part.scored_by,
                            events, output))
                continue
            flush()
            head = Scored(model, segment, part.scored_by.version, part.canary, scored_at, served_by=served_by)
            predictions.extend(
                (event.id.encode(), value, event.index)
                for event, value in zip(events, prediction_values(head, events, *formatted), strict=True))
        flush()

    def _dead_letter(self, batch: Batch, index: int, reason: str, kind: str) -> None:
        record = batch.records[index]
        result = batch.result
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
