"""The learner's pure core: segments placed in banks, labelled examples learned in arrival order, and
checkpoints cut when a segment has enough new labels or has waited long enough. No I/O.

A checkpoint is where scikit-learn's ``partial_fit`` call would end (``Bank.state`` folds the lazy parts),
so a run checkpointed every N labels equals ``partial_fit`` on those N-label mini-batches, and a restart
from a checkpoint continues exactly as the run that did not stop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from scorer.errors import ConfigError
from scorer.learn.bank import Bank, LearnerState
from scorer.learn.block import Groups, LabelBlock, front, group, numeric_rows, stacked_transform
from scorer.learn.labels import CachedEvent
from scorer.learn.sgd import encode_targets
from scorer.learn.state import Learnable, checkpoint
from scorer.models import ModelWeights, build
from scorer.models.base import Model
from scorer.stream.events import feature_matrix, object_block, row_errors


@dataclass
class Segment:
    """One learning (model, segment): its base version, model (for the preprocessing), rows in its bank."""

    model: str
    segment: str
    base: ModelWeights
    base_version: int
    learned: Learnable
    scorer: Model
    bank: Bank
    rows: np.ndarray
    offsets: dict[str, int]
    """Label-topic position ("topic/partition" -> next offset) that the learned state includes."""
    labels: int
    expected_live: int | None = None
    """The live version as this learner last saw or set it; any other change is a human's."""
    paused: bool = False
    pending: list[Example] = field(default_factory=list)
    """Examples learned since the last checkpoint: their records are safe once it is written."""
    pending_labels: int = 0
    pending_since: float = 0.0
    checkpointing: bool = False
    front: tuple[np.ndarray, np.ndarray] | None = None
    """(scale, offset) of its preprocessing when it folds to that (``block.front``): transformed in a stack."""
    sort_key: int = 0
    """``kind << 32 | code``: groups a batch by kind (shared features, bank and outputs), then by segment."""

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.segment

    @property
    def classes(self) -> tuple | None:
        return self.base.classes

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.base.feature_names


@dataclass(frozen=True)
class Example:
    segment: Segment
    features: Mapping[str, Any]
    target: float | int
    records: tuple[Any, ...]
    """(kind, partition, offset) of the label and its event: safe once a checkpoint holds the example."""
    source: Any = None
    """The label record itself, quoted if the example ends as a dead letter."""
    text: bool = True
    """Some feature value may be a string (``Event.text``): such examples take the per-segment path, which
    rejects strings a model does not encode (a float conversion would accept ``"1.5"``)."""


class Learner:
    """Segments and their banks; ``learn`` takes examples in arrival order. Not thread-safe."""

    def __init__(self, every_labels: int, every_seconds: float, clock: Callable[[], float]) -> None:
        self.every_labels, self.every_seconds, self._clock = every_labels, every_seconds, clock
        self.segments: dict[tuple[str, str], Segment] = {}
        self._banks: dict[tuple, Bank] = {}
        self._kinds: dict[tuple, int] = {}
        self._codes = itertools.count()
        self.learned = 0

    def add(self, model: str, segment: str, base: ModelWeights, base_version: int, learned: Learnable,
            offsets: Mapping[str, int] | None = None, expected_live: int | None = None) -> Segment:
        """Place a segment (replacing any earlier placement of it) learning from ``learned``."""
        self.remove(model, segment)
        params = learned.params
        width = learned.state.coef.shape[1]
        key = (params.loss, params.penalty, params.learning_rate, width)
        bank = self._banks.get(key)
        if bank is None:
            bank = self._banks[key] = Bank(params.loss, params.penalty, params.learning_rate, width)
        rows = bank.add(params, learned.state)
        scorer = build(base)
        stack = front(scorer)
        kind_key = (base.feature_names, id(bank), rows.shape[0], base.classes is None, stack is not None)
        kind = self._kinds.setdefault(kind_key, len(self._kinds))
        seg = Segment(model, segment, base, base_version, learned, scorer, bank, rows,
                      dict(learned.offsets if offsets is None else offsets), learned.labels, expected_live,
                      front=stack, sort_key=(kind << 32) | (next(self._codes) & 0xFFFFFFFF))
        self.segments[seg.key] = seg
        return seg

    def remove(self, model: str, segment: str) -> None:
        seg = self.segments.pop((model, segment), None)
        if seg is not None:
            seg.bank.remove(seg.rows)

    def learn(self, examples: list[Example]) -> list[tuple[Example, str]]:
        """Learn examples in order: per segment sequentially, across segments in lockstep. Returns the
        examples whose features the model cannot take (e.g. a missing value and no imputer), with why.

        One pass for the batch: a stable sort by segment key, one feature matrix per kind of segment, the
        segments' preprocessing stacked, one bank update per kind (:mod:`scorer.learn.block`). Segments
        that cannot be stacked, and batches with strings or missing values, go segment by segment."""
        n = len(examples)
        if not n:
            return []
        # C-level walks over the examples (zip(*rows) would cost several times as much on big batches)
        groups = group(np.fromiter(map(_KEY, examples), dtype=np.int64, count=n))
        target = np.fromiter(map(_TARGET, examples), dtype=np.float64, count=n)
        text = np.fromiter(map(_TEXT, examples), dtype=bool, count=n)
        take = itemgetter(*groups.order.tolist()) if n > 1 else (lambda seq: (seq[0],))
        return self._learn_groups(groups, take(examples), target[groups.order], None,
                                  list(map(_FEATURES, examples)), text)

    def learn_block(self, block: LabelBlock) -> list[tuple[Example, str]]:
        """:meth:`learn` for labels already in arrays (features a float matrix): the same result, without
        reading feature dicts. Rows with a missing or non-finite value go through the per-segment path."""
        n = block.owner.shape[0]
        if not n:
            return []
        seg_keys = np.fromiter([seg.sort_key for seg in block.segments], dtype=np.int64, count=len(block.segments))
        groups = group(seg_keys[block.owner])
        ordered = itemgetter(*groups.order.tolist())(block.items) if n > 1 else (block.items[0],)
        X = np.asarray(block.X, dtype=np.float64)[groups.order]
        return self._learn_groups(groups, ordered, np.asarray(block.target, dtype=np.float64)[groups.order], X)

    def _learn_groups(self, groups: Groups, ordered: Sequence[Example], target: np.ndarray, X: np.ndarray | None,
                      features: Sequence[Any] = (), text: np.ndarray | None = None) -> list[tuple[Example, str]]:
        """Learn a sorted batch kind by kind: ``ordered``, ``target`` and ``X`` (its feature matrix, from
        ``learn_block``; or None) in sorted order; or else ``features`` (dicts) and ``text`` (may hold strings)
        per example in arrival order: dicts are read in the order they were made (sorted order would jump
        around memory), then the rows put in sorted order."""
        rejected: list[tuple[Example, str]] = []
        firsts = groups.first.tolist()
        starts, counts = groups.starts, groups.counts
        n = len(ordered)
        now = self._clock()
        cuts = groups.kind_cuts
        for a, b in zip(cuts[:-1], cuts[1:], strict=False):
            segs = [ordered[int(starts[j])].segment for j in range(a, b)]
            lo = int(starts[a])
            hi = int(starts[b]) if b < len(firsts) else n
            items = ordered[lo:hi]
            first = segs[0]
            Xk = None
            if first.front is not None:
                if X is not None:
                    Xk = X[lo:hi] if np.isfinite(X[lo:hi]).all() else None
                else:
                    arrival = groups.order[lo:hi]
                    if not text[arrival].any():
                        Xk = _numeric_sorted(features, arrival, first.feature_names)
            if Xk is not None:
                inputs = stacked_transform(Xk, [seg.front for seg in segs], counts[a:b])  # Xk is ours
                self._update(segs, counts[a:b], items, inputs, target[lo:hi], now)
                continue
            # segment by segment: reasons for the rows a model cannot take, any preprocessing
            kept_segs, kept_counts, kept_items, xs, ys = [], [], [], [], []
            for j, seg in enumerate(segs):
                s_lo, s_hi = int(starts[a + j]) - lo, int(starts[a + j] + counts[a + j]) - lo
                seg_items = items[s_lo:s_hi]
                if X is None:
                    Xs, errors = _inputs(seg, [features[i] for i in groups.order[lo + s_lo:lo + s_hi].tolist()])
                else:
                    Xs, errors = _rows(seg, X[lo + s_lo:lo + s_hi])
                if errors:
                    bad = {position for position, _ in errors}
                    rejected.extend((seg_items[position], reason) for position, reason in errors)
                    keep = [i for i in range(len(seg_items)) if i not in bad]
                    seg_items = [seg_items[i] for i in keep]
                    ys.append(target[lo + s_lo:lo + s_hi][keep])
                else:
                    ys.append(target[lo + s_lo:lo + s_hi])
                if not seg_items:
                    ys.pop()
                    continue
                kept_segs.append(seg)
                kept_counts.append(len(seg_items))
                kept_items.extend(seg_items)
                xs.append(seg.scorer.transform(Xs))
            if kept_segs:
                self._update(kept_segs, np.array(kept_counts), kept_items, np.concatenate(xs), np.concatenate(ys),
                             now)
        self.learned += n - len(rejected)
        return rejected

    def _update(self, segs: list[Segment], counts: np.ndarray, items: Sequence[Example], inputs: np.ndarray,
                target: np.ndarray, now: float) -> None:
        """One bank update for segments of one kind (inputs grouped by segment), then their bookkeeping."""
        first = segs[0]
        n_rows = first.rows.shape[0]
        Y = encode_targets(first.learned.params.loss, target, None if first.classes is None else n_rows)
        rows = np.stack([seg.rows for seg in segs]) if len(segs) > 1 else first.rows.reshape(1, -1)
        first.bank.learn_grouped(rows, counts, inputs, Y)
        lo = 0
        for seg, count in zip(segs, counts.tolist(), strict=True):
            if not seg.pending:
                seg.pending_since = now
            seg.pending.extend(items[lo:lo + count])
            lo += count
            seg.pending_labels += count
            seg.labels += count

    def due(self) -> list[Segment]:
        """Segments whose pending labels call for a checkpoint (enough of them, or waiting long enough)."""
        now = self._clock()
        out = []
        for seg in self.segments.values():
            if not seg.pending or seg.checkpointing:
                continue
            if seg.pending_labels >= self.every_labels or now - seg.pending_since >= self.every_seconds:
                out.append(seg)
        return out

    def cut(self, seg: Segment, positions: Mapping[str, int], paused: bool = False
            ) -> tuple[ModelWeights, list[Example]]:
        """The checkpoint weights of ``seg`` and the examples they include (their records become safe once
        it is written); ``positions`` is how far each label partition has been processed (every label of the
        segment below it is in the state)."""
        return self.cut_many([seg], positions, [paused])[0]

    def cut_many(self, segs: list[Segment], positions: Mapping[str, int], paused: list[bool] | None = None
                 ) -> list[tuple[ModelWeights, list[Example]]]:
        """:meth:`cut` for several segments, their learner states read per bank in one pass."""
        states: dict[int, LearnerState] = {}
        by_bank: dict[int, list[Segment]] = {}
        for seg in segs:
            by_bank.setdefault(id(seg.bank), []).append(seg)
        for group_segs in by_bank.values():
            for seg, state in zip(group_segs, group_segs[0].bank.states([s.rows for s in group_segs]), strict=True):
                states[id(seg)] = state
        out = []
        for seg, stop in zip(segs, paused or [seg.paused for seg in segs], strict=True):
            seg.offsets.update(positions)
            learned = Learnable(seg.learned.params, states[id(seg)], dict(seg.offsets), seg.labels, paused=stop)
            out.append((checkpoint(seg.base, learned), seg.pending))
            seg.pending, seg.pending_labels = [], 0
        return out

    def restart_schedule(self, seg: Segment) -> None:
        seg.bank.restart_schedule(seg.rows)



def _numeric_sorted(features: Sequence[Any], arrival: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """``numeric_rows`` of ``features[arrival]`` (sorted order), reading the dicts in arrival order."""
    if arrival.shape[0] == len(features):  # the whole batch (one kind): no selection to make
        X = numeric_rows(features, names)
        return None if X is None else X[arrival]
    by_arrival = np.sort(arrival)
    picked = itemgetter(*by_arrival.tolist())(features) if by_arrival.shape[0] > 1 else (features[by_arrival[0]],)
    X = numeric_rows(picked, names)
    if X is None:
        return None
    out = np.empty_like(X)
    out[np.argsort(arrival)] = X  # row j of X is label by_arrival[j]; sorted position of it: rank in arrival
    return out


_KEY, _TARGET, _TEXT, _FEATURES = (attrgetter(name) for name in ("segment.sort_key", "target", "text", "features"))


def rejected_letters(rejected: list[tuple[Example, str]]) -> list[Any]:
    """Dead letters (label record, partition, reason, event) for examples ``Learner.learn`` refused."""
    out = []
    for example, reason in rejected:
        (_, tp, _), (_, event_tp, event_offset) = example.records
        out.append((example.source, tp, reason, CachedEvent(example.segment.model, example.segment.segment, {},
                                                              event_tp, event_offset, 0.0)))
    return out


def _inputs(seg: Segment, features: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The rows the segment's model reads, as the scoring worker builds them (categories to codes for models
    with categorical inputs), and (position, reason) for the rows it cannot take."""
    what = f"{seg.model}/{seg.segment}"
    names = seg.feature_names
    categorical = seg.scorer.categorical
    if categorical is None:
        texts = [(i, n) for i, row in enumerate(features) for n in names if type(row.get(n)) is str]
        if not texts:
            return feature_matrix(features, names, seg.scorer.accepts_missing, what)
        bad = dict(texts[::-1])  # the first such feature of each row
        errors = [(i, f"feature '{n}' for {what} must be a number or null; got a string")
                  for i, n in sorted(bad.items())]
        good = [row for i, row in enumerate(features) if i not in bad]
        X, more = feature_matrix(good, names, seg.scorer.accepts_missing, what)
        positions = [i for i in range(len(features)) if i not in bad]
        return X, sorted(errors + [(positions[j], reason) for j, reason in more])
    X, keep, failed = categorical.encode_rows(object_block(features, names), what)
    errors = [(row, reason) for row, reason, _ in failed]
    if not seg.scorer.accepts_missing and X.size:
        missing = ~np.isfinite(X).all(axis=1)
        if missing.any():
            errors += [(int(keep[j]), f"missing feature for {what} (model cannot impute)")
                       for j in np.flatnonzero(missing).tolist()]
            X = X[~missing]
    return X, sorted(errors)


def _rows(seg: Segment, X: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """:func:`_inputs` for rows already in a float matrix (numeric models only)."""
    what = f"{seg.model}/{seg.segment}"
    if seg.scorer.categorical is not None:
        raise ConfigError(f"{what} has categorical inputs: its labels need feature dicts (Learner.learn)")
    finite = np.isfinite(X)
    bad, errors = row_errors(X, None if finite.all() else ~finite, seg.feature_names, seg.scorer.accepts_missing,
                             what)
    return (X if bad is None else X[~bad]), errors
