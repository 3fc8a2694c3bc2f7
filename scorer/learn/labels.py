"""Labels as the learner takes them: the target a label gives a model, or the reason it cannot, and the
bounded cache of recent events that labels are joined to.

Label messages are the retrain worker's: ``{"id": str, "label": value}`` (``"value"`` also accepted) on the
labels topic, the id naming an event of the events topic.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

OTHER = object()
"""Cached in place of events of models this learner does not learn: their labels are skipped quietly."""
DONE = object()
"""Cached in place of an event whose label has been taken: another label for it is a duplicate."""


def loads_label(raw: bytes | None) -> Any:
    """A label message; plain ``json`` as the fallback reads NaN/Infinity, so they get their own reason."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except ValueError:
            return None


def label_value(message: Any) -> tuple[str | None, Any]:
    """(event id, raw label) of a label message; id None when the message is not a label at all."""
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        return None, None
    return message["id"], message["label"] if "label" in message else message.get("value")


def target_of(label: Any, classes: Sequence[Any] | None) -> tuple[float | int | None, str | None]:
    """(target, None) or (None, reason): a class index for classifiers, a finite float for regressors."""
    if label is None:
        return None, "missing label"
    if classes is None:
        if isinstance(label, bool) or not isinstance(label, int | float):
            return None, f"wrong type: a regression label must be a number; got {type(label).__name__}"
        if not math.isfinite(label):
            return None, f"NaN or infinite label {label!r}"
        return float(label), None
    if isinstance(label, float) and not math.isfinite(label):
        return None, f"NaN or infinite label {label!r}"
    if not isinstance(label, int | float | str | bool):
        return None, f"wrong type: a class label must be a scalar; got {type(label).__name__}"
    for i, cls in enumerate(classes):
        if type(cls) is type(label) and cls == label:
            return i, None
    for i, cls in enumerate(classes):  # 1 and 1.0, "1" and 1: the labels topic is JSON, the classes too
        if not isinstance(label, bool) and not isinstance(cls, bool) and str(cls) == str(label):
            return i, None
        if isinstance(label, float) and label.is_integer() and cls == int(label) and not isinstance(cls, bool):
            return i, None
    return None, f"unknown class {label!r}; the model knows {list(classes)[:20]}"


@dataclass
class CachedEvent:
    model: str
    segment: str
    features: dict[str, Any]
    partition: tuple[str, int]
    offset: int
    born: float
    text: bool = True
    """Some feature value is a string (``Event.text``)."""


class EventCache:
    """Recent events by id, oldest first, bounded by age and count. Evicted events are handed to
    ``on_evict`` (their offsets become safe to commit)."""

    def __init__(self, ttl: float, max_entries: int, on_evict: Callable[[Any], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._on_evict = on_evict
        self._clock = clock
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, event_id: str, item: Any) -> None:
        if event_id in self._items:  # redelivered: keep the first, the second is safe at once
            self._on_evict(item)
            return
        self._items[event_id] = item
        while len(self._items) > self.max_entries:
            self._drop()

    def get(self, event_id: str) -> Any:
        return self._items.get(event_id)

    def replace(self, event_id: str, item: Any) -> None:
        """Swap the entry in place (keeping its age order); the old one is not handed to ``on_evict``."""
        if event_id in self._items:
            self._items[event_id] = item

    def expire(self) -> None:
        now = self._clock()
        while self._items:
            first = next(iter(self._items.values()))
            born = first.born if isinstance(first, CachedEvent) else first[1]
            if now - born < self.ttl:
                return
            self._drop()

    def _drop(self) -> None:
        _, item = self._items.popitem(last=False)
        self.evicted += 1
        self._on_evict(item)
