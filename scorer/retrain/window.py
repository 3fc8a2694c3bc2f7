"""Recent labelled events per segment: the data a retrain fits on, in bounded rings.

Each (model, segment) gets a ring of at most ``capacity`` rows (features in the model's order, NaN for
missing, and the label), grown by doubling from a small start, so a quiet segment costs little. At most
``max_segments`` rings are kept (least recently fed dropped): memory is bounded by
``max_segments * capacity * (n_features + 1) * 8`` bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np


class SegmentWindow:
    """The last ``capacity`` labelled rows of one segment; ``total`` counts every row ever added."""

    __slots__ = ("capacity", "_x", "_y", "_next", "_size", "total")

    def __init__(self, n_features: int, capacity: int, initial: int = 64) -> None:
        if capacity < 1 or n_features < 1:
            raise ValueError(f"window needs capacity >= 1 and n_features >= 1; got {capacity}, {n_features}")
        self.capacity = capacity
        size = min(initial, capacity)
        self._x = np.empty((size, n_features), dtype=np.float64)
        self._y: list[Any] = [None] * size
        self._next = 0
        self._size = 0
        self.total = 0

    def __len__(self) -> int:
        return self._size

    @property
    def n_features(self) -> int:
        return int(self._x.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self._x.nbytes) + 8 * len(self._y)

    def add(self, x: np.ndarray, y: Any) -> None:
        if self._size == self._x.shape[0] and self._size < self.capacity:
            grown = np.empty((min(self._size * 2, self.capacity), self._x.shape[1]), dtype=np.float64)
            grown[:self._size] = self._x  # not wrapped yet: rows are in arrival order
            self._x = grown
            self._y.extend([None] * (grown.shape[0] - len(self._y)))
            self._next = self._size
        self._x[self._next] = x
        self._y[self._next] = y
        self._next = (self._next + 1) % self._x.shape[0]
        self._size = min(self._size + 1, self.capacity)
        self.total += 1

    def latest(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``n`` rows (all when None), oldest first: (X copy, y as a numpy array)."""
        n = self._size if n is None else max(0, min(n, self._size))
        if n == 0:
            return np.empty((0, self._x.shape[1])), np.empty(0)
        end = self._next if self._size == self._x.shape[0] else self._size
        index = (np.arange(end - n, end)) % self._x.shape[0]
        return self._x[index].copy(), np.asarray([self._y[i] for i in index])


class TrainingWindows:
    """A SegmentWindow per (model, segment), least recently fed dropped above ``max_segments``."""

    def __init__(self, capacity: int = 2000, max_segments: int = 2000) -> None:
        if capacity < 1 or max_segments < 1:
            raise ValueError(f"training windows need capacity and max_segments >= 1; got {capacity}, {max_segments}")
        self.capacity = capacity
        self.max_segments = max_segments
        self._windows: OrderedDict[tuple[str, str], SegmentWindow] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._windows)

    def add(self, model: str, segment: str, x: np.ndarray, y: Any) -> SegmentWindow:
        key = (model, segment)
        window = self._windows.get(key)
        if window is None or window.n_features != x.shape[0]:
            window = self._windows[key] = SegmentWindow(x.shape[0], self.capacity)
            while len(self._windows) > self.max_segments:
                self._windows.popitem(last=False)
                self.evicted += 1
        self._windows.move_to_end(key)
        window.add(x, y)
        return window

    def get(self, model: str, segment: str) -> SegmentWindow | None:
        return self._windows.get((model, segment))

    @property
    def nbytes(self) -> int:
        return sum(window.nbytes for window in self._windows.values())
