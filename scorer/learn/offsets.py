"""Which offsets the learner may commit: the lowest record per partition not yet safe, a low watermark.

A label is safe once the checkpoint that learned it is written (or its dead letter is acknowledged); an
event once its label is safe or it left the join unlabelled. Committing the watermark, never the read
position, is what makes a crash lose nothing: everything at or above it is read again, and each segment's
checkpoint says which of those labels it already holds (``scorer.learn.state`` offsets).
"""

from __future__ import annotations

from collections import deque

Partition = tuple[str, int]


class Watermarks:
    """In-flight offsets per (topic, partition), added in increasing order, resolved in any order."""

    def __init__(self) -> None:
        self._open: dict[Partition, deque[int]] = {}
        self._done: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}

    def add(self, tp: Partition, offset: int) -> None:
        self._open.setdefault(tp, deque()).append(offset)
        self._next[tp] = offset + 1

    def resolve(self, tp: Partition, offset: int) -> None:
        self._done.setdefault(tp, set()).add(offset)

    def commit_points(self) -> dict[Partition, int]:
        """The offset to commit per partition: its oldest unresolved record, or past everything read."""
        out = {}
        for tp, pending in self._open.items():
            done = self._done.get(tp, set())
            while pending and pending[0] in done:
                done.discard(pending.popleft())
            out[tp] = pending[0] if pending else self._next[tp]
        return out

    def in_flight(self) -> int:
        return sum(len(q) for q in self._open.values())
