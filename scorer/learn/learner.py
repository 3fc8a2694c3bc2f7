"""The learner's pure core: segments placed in banks, labelled examples learned in arrival order, and
checkpoints cut when a segment has enough new labels or has waited long enough. No I/O.

A checkpoint is where scikit-learn's ``partial_fit`` call would end (``Bank.state`` folds the lazy parts),
so a run checkpointed every N labels equals ``partial_fit`` on those N-label mini-batches, and a restart
from a checkpoint continues exactly as the run that did not stop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.learn.bank import Bank, step_ranks
from scorer.learn.labels import CachedEvent
from scorer.learn.sgd import encode_targets
from scorer.learn.state import Learnable, checkpoint
from scorer.models import ModelWeights, build
from scorer.models.base import Model
from scorer.stream.events import feature_matrix, object_block


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


class Learner:
    """Segments and their banks; ``learn`` takes examples in arrival order. Not thread-safe."""

    def __init__(self, every_labels: int, every_seconds: float, clock: Callable[[], float]) -> None:
        self.every_labels, self.every_seconds, self._clock = every_labels, every_seconds, clock
        self.segments: dict[tuple[str, str], Segment] = {}
        self._banks: dict[tuple, Bank] = {}
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
        seg = Segment(model, segment, base, base_version, learned, build(base), bank, rows,
                      dict(learned.offsets if offsets is None else offsets), learned.labels, expected_live)
        self.segments[seg.key] = seg
        return seg

    def remove(self, model: str, segment: str) -> None:
        seg = self.segments.pop((model, segment), None)
        if seg is not None:
            seg.bank.remove(seg.rows)

    def learn(self, examples: list[Example]) -> list[tuple[Example, str]]:
        """Learn examples in order: per segment sequentially, across segments in lockstep. Returns the
        examples whose features the model cannot take (e.g. a missing value and no imputer), with why."""
        if not examples:
            return []
        rejected: list[tuple[Example, str]] = []
        _, owner = np.unique(np.fromiter((id(ex.segment) for ex in examples), dtype=np.int64,
                                         count=len(examples)), return_inverse=True)
        order = np.argsort(owner, kind="stable")
        cuts = np.flatnonzero(np.diff(owner[order])) + 1
        groups = [part.tolist() for part in np.split(order, cuts)]
        ranks = step_ranks(owner)
        per_bank: dict[int, tuple[Bank, list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
        now = self._clock()
        for idxs in groups:
            seg = examples[idxs[0]].segment
            X, errors = _inputs(seg, [examples[i].features for i in idxs])
            if errors:
                bad = {position for position, _ in errors}
                rejected.extend((examples[idxs[position]], reason) for position, reason in errors)
                idxs = [i for position, i in enumerate(idxs) if position not in bad]
                if not idxs:
                    continue
            inputs = seg.scorer.transform(X)
            n_rows = seg.rows.shape[0]
            targets = encode_targets(seg.learned.params.loss, np.array([examples[i].target for i in idxs]),
                                     None if seg.classes is None else n_rows)
            bank, rows, xs, ys, rk = per_bank.setdefault(id(seg.bank), (seg.bank, [], [], [], []))
            rows.append(np.tile(seg.rows, len(idxs)))
            xs.append(np.repeat(inputs, n_rows, axis=0))
            ys.append(targets.ravel())
            rk.append(np.repeat(ranks[idxs], n_rows))
            if not seg.pending:
                seg.pending_since = now
            seg.pending.extend(examples[i] for i in idxs)
            seg.pending_labels += len(idxs)
            seg.labels += len(idxs)
        for bank, rows, xs, ys, rk in per_bank.values():
            bank.learn(np.concatenate(rows), np.concatenate(xs), np.concatenate(ys), np.concatenate(rk))
        self.learned += len(examples) - len(rejected)
        return rejected

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
            ) -> tuple[ModelWeights, list[Any]]:
        """The checkpoint weights of ``seg`` and the records they make safe; ``positions`` is how far each
        label partition has been processed (every label of the segment below it is in the state)."""
        seg.offsets.update(positions)
        state = seg.bank.state(seg.rows)
        learned = Learnable(seg.learned.params, state, dict(seg.offsets), seg.labels, paused=paused)
        records = [record for example in seg.pending for record in example.records]
        seg.pending, seg.pending_labels = [], 0
        return checkpoint(seg.base, learned), records

    def restart_schedule(self, seg: Segment) -> None:
        seg.bank.restart_schedule(seg.rows)



def rejected_letters(rejected: list[tuple[Example, str]]) -> list[Any]:
    """Dead letters (label record, partition, reason, event) for examples ``Learner.learn`` refused."""
    out = []
    for example, reason in rejected:
        (_, tp, _), (_, event_tp, event_offset) = example.records
        out.append((example.source, tp, reason, CachedEvent(example.segment.model, example.segment.segment, {},
                                                              event_tp, event_offset, 0.0)))
    return out


def _inputs(seg: Segment, features: list[Mapping[str, Any]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
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
