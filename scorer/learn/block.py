"""A micro-batch of labels as arrays: grouped by segment with one sort, features as one matrix, each segment's
preprocessing applied to its rows at once (stacked), so the learner's cost per label is numpy's, not Python's.

The learner groups a batch by a per-segment integer key ``kind << 32 | code``: segments of one *kind* share
their feature names, bank and outputs, and (when their preprocessing folds to ``X * scale + offset``) are
transformed together; ``code`` keeps each segment's labels together, in arrival order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from scorer.learn.bank import stable_order
from scorer.models.affine import AffineFront
from scorer.models.base import Model


@dataclass(frozen=True)
class LabelBlock:
    """Labels joined to their events, columnar, in arrival order: what an array-decoding front end hands
    ``Learner.learn_block``. Every segment of a block reads the same feature names."""

    segments: Sequence[Any]
    """The distinct segments (``scorer.learn.learner.Segment``) the labels belong to."""
    owner: np.ndarray
    """(n,) index into ``segments`` of each label."""
    X: np.ndarray
    """(n, n_features) the labelled events' raw feature values, in the segments' feature order."""
    target: np.ndarray
    """(n,) class index (classifiers) or value (regressors), as ``labels.target_of`` gives them."""
    items: Sequence[Any]
    """(n,) the ``Example`` of each label: kept until the checkpoint that includes it (its records)."""


@dataclass(frozen=True)
class Groups:
    """A batch sorted by segment: ``order`` takes arrival positions to sorted ones; segment ``j`` of
    ``first`` (an arrival position of its first label) owns sorted rows ``starts[j]:starts[j] + counts[j]``;
    ``kind_cuts`` split the segments into runs of one kind."""

    order: np.ndarray
    first: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    kind_cuts: list[int]


def group(keys: np.ndarray) -> Groups:
    """One stable sort of the labels' segment keys: segments grouped by kind, each one's labels in order."""
    order = stable_order(keys)
    ordered = keys[order]
    n = ordered.shape[0]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, n])
    kinds = ordered[starts] >> 32
    kind_cuts = [0, *(np.flatnonzero(kinds[1:] != kinds[:-1]) + 1).tolist(), starts.shape[0]]
    return Groups(order, order[starts], starts, counts, kind_cuts)


def front(model: Model) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) when the model's preprocessing is ``X * scale + offset`` on complete rows (none, impute,
    standard and min-max scalers; within 1e-15 of applying them in turn), else None (per-segment path)."""
    if model.categorical is not None:
        return None
    plan = model._plan  # the parsed steps, folded as the linear kernels fold them (AffineFront)
    if not plan:
        return np.ones(model.n_features), np.zeros(model.n_features)
    folded = AffineFront.from_plan(plan, model.n_features)
    if folded is None or folded.keep is not None or len(plan) != len(model._all_steps):
        return None
    return folded.scale, folded.offset


def numeric_rows(features: Sequence[Any], names: Sequence[str]) -> np.ndarray | None:
    """The (n, len(names)) float matrix of feature dicts whose values are all numbers and all present and
    finite, or None when any is not (the caller's per-segment path then says which and why).

    The caller has ruled out strings (``Example.text``): a float conversion would take ``"1.5"``."""
    n, width = len(features), len(names)
    if not width:
        return None
    getter = itemgetter(*names)
    try:
        values = map(getter, features) if width == 1 else chain.from_iterable(map(getter, features))
        X = np.fromiter(values, dtype=np.float64, count=n * width).reshape(n, width)
    except (KeyError, TypeError, ValueError):
        return None
    return X if np.isfinite(X).all() else None


def stacked_transform(X: np.ndarray, fronts: Sequence[tuple[np.ndarray, np.ndarray]], counts: np.ndarray
                      ) -> np.ndarray:
    """Each segment's ``X * scale + offset`` on its own rows (``X`` grouped by segment, ``counts`` rows each),
    as two array operations for the whole batch; in place."""
    scale = np.stack([f[0] for f in fronts])
    offset = np.stack([f[1] for f in fronts])
    if (scale != 1.0).any():
        X *= np.repeat(scale, counts, axis=0)
    if offset.any():
        X += np.repeat(offset, counts, axis=0)
    return X
