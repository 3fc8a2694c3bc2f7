"""The prediction-label join by event id, with a time-to-live and a hard size cap.

Labels arrive late (minutes to days) or never, in any order relative to the event and its predictions.
Each id gets one slot holding what has been seen of it (the event, one prediction per scoring version, the
label); whenever a slot holds a label, every part that meets it is emitted once. Slots leave in arrival
order, after ``ttl`` seconds or when ``max_entries`` is exceeded, so memory is bounded by
``max_entries`` slots whatever the number of segments and however many labels never come.

Why not a faust windowed table: its expiry runs on a timer (``table_cleanup_interval``, 30 s by default)
with no cap, so memory follows the arrival rate times the TTL and grows without limit while the timer
lags or events burst; every write also goes to a changelog topic (one extra Kafka record per prediction,
and a full replay on every rebalance), and writes must happen inside a stream iteration
(``current_event()``), which a batched consumer with explicit acks does not provide. Losing this state on
a restart only costs the outcomes in flight, which the rolling metrics tolerate.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MISSING = object()


class _Slot:
    __slots__ = ("born", "event", "predictions", "label", "emitted_event", "emitted")

    def __init__(self, born: float) -> None:
        self.born = born
        self.event: Any = None
        self.predictions: dict[Any, Any] = {}
        self.label: Any = _MISSING
        self.emitted_event = False
        self.emitted: set[Any] = set()


@dataclass(frozen=True)
class Joined:
    """A part of an event that met its label: ``kind`` is "prediction" or "event"."""

    id: str
    kind: str
    part: Any
    label: Any


@dataclass
class JoinStats:
    joined_predictions: int = 0
    joined_events: int = 0
    expired: int = 0
    """Slots dropped after the TTL (their label never came in time)."""
    evicted: int = 0
    """Slots dropped because the cap was reached before their TTL (memory pressure)."""
    duplicates: int = 0
    """Parts seen again for an id (at-least-once redelivery): ignored."""


class LabelJoin:
    """Joins events, predictions (one per ``version_key``) and labels by id; bounded by time and size.

    ``add_*`` return the parts that met their label because of this call. Not thread-safe: feed it from one
    task. ``clock`` is injectable for tests.
    """

    def __init__(self, ttl: float = 3600.0, max_entries: int = 200_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError(f"join needs ttl > 0 and max_entries >= 1; got ttl={ttl}, max_entries={max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self.stats = JoinStats()

    def __len__(self) -> int:
        return len(self._slots)

    def _slot(self, event_id: str) -> _Slot:
        now = self._clock()
        self.expire(now)
        slot = self._slots.get(event_id)
        if slot is None:
            slot = self._slots[event_id] = _Slot(now)
            if len(self._slots) > self.max_entries:
                self._slots.popitem(last=False)
                self.stats.evicted += 1
        return slot

    def expire(self, now: float | None = None) -> int:
        """Drop slots older than the TTL (oldest first, so this stops at the first young one)."""
        now = self._clock() if now is None else now
        dropped = 0
        while self._slots:
            first = next(iter(self._slots.values()))
            if now - first.born < self.ttl:
                break
            self._slots.popitem(last=False)
            dropped += 1
        self.stats.expired += dropped
        return dropped

    def add_event(self, event_id: str, event: Any) -> list[Joined]:
        slot = self._slot(event_id)
        if slot.event is not None:
            self.stats.duplicates += 1
            return []
        slot.event = event
        return self._emit(event_id, slot)

    def add_prediction(self, event_id: str, version_key: Any, prediction: Any) -> list[Joined]:
        slot = self._slot(event_id)
        if version_key in slot.predictions:
            self.stats.duplicates += 1
            return []
        slot.predictions[version_key] = prediction
        return self._emit(event_id, slot)

    def add_label(self, event_id: str, label: Any) -> list[Joined]:
        slot = self._slot(event_id)
        if slot.label is not _MISSING:
            self.stats.duplicates += 1
            return []
        slot.label = label
        return self._emit(event_id, slot)

    def _emit(self, event_id: str, slot: _Slot) -> list[Joined]:
        if slot.label is _MISSING:
            return []
        out: list[Joined] = []
        if slot.event is not None and not slot.emitted_event:
            slot.emitted_event = True
            event = slot.event
            slot.event = True  # a marker that it came (duplicates stay detectable); the payload is freed
            out.append(Joined(event_id, "event", event, slot.label))
            self.stats.joined_events += 1
        for key, prediction in slot.predictions.items():
            if key not in slot.emitted:
                slot.emitted.add(key)
                slot.predictions[key] = True  # marker only: the payload has been used
                out.append(Joined(event_id, "prediction", prediction, slot.label))
                self.stats.joined_predictions += 1
        return out
