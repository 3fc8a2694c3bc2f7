"""How a batch's groups become predict calls: canary parts, fused kernels, and the fast lane.

The general path (:class:`~scorer.stream.scoring.BatchScorer`) builds a :class:`~scorer.stream.batch.Part` per
group and version (``split``), scores every part whose model has a fused kernel with one call per kernel
(``fuse``), then formats each part. A layout whose groups all share one fused kernel and need nothing else
(no canary, no fallback segment, no categories) takes ``score_lane`` instead: one matrix, one kernel
call, one call of each hook and one bulk encoding, with a few list operations per group, so that events
spread over 10,000 segments cost little more than the same events over 100.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import chain, repeat
from typing import Any

import numpy as np

from scorer.stream.batch import Key, Part, PredictionEncoder
from scorer.stream.cache import LoadedModel, Serving, canary_point
from scorer.stream.events import Event, feature_block

log = logging.getLogger(__name__)

Lane = tuple[Key, Serving, list[Event]]
"""A group bound for the fast lane: its (model, segment), what serves it, its events."""
LaneHooks = Callable[[list[Lane], list[int], np.ndarray, np.ndarray], None]
"""Called once per scored lane with its groups, their sizes, the matrix and the outputs (the groups' rows in
order): the scorer's hooks."""


def score_lane(counts: dict[tuple[str, str, str, str], int], items: list[Any], names: tuple[str, ...],
               scored_at: str, encoder: PredictionEncoder, hooks: LaneHooks | None = None
               ) -> list[tuple[bytes, bytes, int]] | None:
    """The predictions (key, value, input index) of one layout's groups when they all qualify for the fast lane
    (every item a :data:`Lane`, one fused kernel, binary or regression); their counts are added to ``counts`` and
    ``hooks`` run once for the whole lane.

    None (and nothing counted) when the layout does not qualify or anything is unusual (a row the models cannot
    score, a kernel failure, an output of an unexpected shape): the general path then handles it and reports
    what it finds.
    """
    if len(items) < 2 or any(type(item) is Part for item in items):
        return None
    first: LoadedModel = items[0][1].primary
    fuse_key, kind, labels = first.fuse_key, first.kind, first.label_json
    if kind != "regression" and (kind != "binary" or len(labels) != 2):
        return None
    # Per group only list building, in comprehensions; the checks are list.count calls (identity first, in C).
    servings: list[Serving] = [item[1] for item in items]
    models: list[LoadedModel] = [serving.primary for serving in servings]
    n_models = len(models)
    if [m.fuse_key for m in models].count(fuse_key) != n_models or [m.kind for m in models].count(kind) != n_models:
        return None
    label_jsons = [m.label_json for m in models]
    same_labels = label_jsons.count(labels) == n_models
    if not same_labels and kind == "binary" and any(len(group_labels) != 2 for group_labels in label_jsons):
        return None
    sizes = [len(item[2]) for item in items]
    heads = list(chain.from_iterable(map(repeat, [serving.head for serving in servings], sizes)))
    events = [e for *_, group in items for e in group]
    X, nonfinite = feature_block([e.features for e in events], names)
    if nonfinite is not None:
        bad = np.isinf(X) if all(m.accepts_missing for m in models) else nonfinite
        if bad.any():
            return None
    n = len(events)
    owner = np.repeat(np.arange(len(models)), sizes)
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            output = fuse_key[0].predict_fused([m.predictor for m in models], X, owner)
    except Exception:  # noqa: BLE001 - the general path predicts part by part and reports the error
        return None
    if type(output) is not np.ndarray or output.shape != ((n, 2) if kind == "binary" else (n,)):
        return None
    for count_key, size in zip([serving.scored_key for serving in servings], sizes, strict=True):
        counts[count_key] = counts.get(count_key, 0) + size
    if hooks is not None:
        hooks(items, sizes, X, output)
    ids = [e.id for e in events]
    messages = encoder.encode_rows(ids, heads, [encoder.tail(scored_at, None)] * n,
                                   list(zip(models, sizes, strict=True)), output, same_labels)
    return list(zip(map(str.encode, ids), messages, [e.index for e in events], strict=True))


def split(key: Key, serving: Serving, group: list[Event]) -> list[Part]:
    """The parts of one group: the primary's events and, with a canary, the canary's (chosen by event id)."""
    if serving.canary is None:
        return [Part(key, serving, serving.primary, False, group)]
    fraction = serving.canary_fraction
    canary_events: list[Event] = []
    primary_events: list[Event] = []
    for event in group:
        (canary_events if canary_point(event.id) < fraction else primary_events).append(event)
    parts = [Part(key, serving, serving.primary, False, primary_events),
             Part(key, serving, serving.canary, True, canary_events)]
    return [part for part in parts if part.events]


def fuse(parts: list[Part], X_all: np.ndarray, bounds: list[int]) -> None:
    """Score the parts whose models share a fused kernel with one call per kernel (sets ``part.output``);
    part ``i`` holds rows ``bounds[i]:bounds[i + 1]`` of ``X_all``.

    Rows with NaN/inf are scored too (their outputs are dropped with the rows when dead-lettered); a fused
    kernel that raises leaves its parts to their own ``predict``, which reports the error per model.
    """
    by_key: dict[tuple, list[int]] = {}
    for i, part in enumerate(parts):
        key = part.scored_by.fuse_key
        if key is not None:
            members = by_key.get(key)
            if members is None:
                by_key[key] = [i]
            else:
                members.append(i)
    for (kind, *_), members in by_key.items():
        if len(members) < 2:
            continue
        sizes = [bounds[i + 1] - bounds[i] for i in members]
        owner = np.repeat(np.arange(len(members)), sizes)
        if len(members) == len(parts):  # the usual case: every part of the layout fuses
            X = X_all
        else:
            X = np.ascontiguousarray(X_all[np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in members])])
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                fused = kind.predict_fused([parts[i].scored_by.predictor for i in members], X, owner)
        except Exception:  # each part then predicts on its own and reports its own error
            log.exception("fused kernel %s failed; scoring its %d models one by one", kind.__name__, len(members))
            continue
        start = 0
        for i, size in zip(members, sizes, strict=True):
            stop = start + size
            parts[i].output = fused[start:stop]
            start = stop
