"""What a worker serves: loaded model versions, targets, Servings, the LRU, and the pure decisions around them.

Pure pieces of the model cache (:mod:`scorer.stream.cache`): canary selection, building and warming a
version (``prepare``), what a pointer row asks for (``Target``), what one (model, segment) serves
(``Serving``), what a swap must load (``missing_versions``), the LRU, and which store errors are worth a
retry. No I/O here.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np
import orjson

from scorer.errors import ChecksumMismatch, ConfigError, InvalidWeights, NotFound, ScorerError

K = TypeVar("K")
V = TypeVar("V")


# ------------------------------------------------------------------------------------------- canary

_TWO_64 = float(2**64)


def canary_point(event_id: str) -> float:
    """Where an event id falls in [0, 1): blake2b of its UTF-8 bytes, so every run and worker agree."""
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def in_canary(event_id: str, fraction: float) -> bool:
    """True for the ``fraction`` of ids whose point is below it (the same ids whatever else is running)."""
    return fraction > 0.0 and canary_point(event_id) < fraction


# ------------------------------------------------------------------------------------------- models


def kept_json(value: Any) -> bytes:
    """``orjson.dumps(value)`` for keeping: orjson's result holds a 4 KB allocation however short its JSON is (RSS
    measured: 4.1 KB per kept ``orjson.dumps(1)``), which was 8 KB per cached binary model for its two labels."""
    return memoryview(orjson.dumps(value)).tobytes()


_LAYOUTS: dict[tuple[str, ...], tuple[tuple[str, ...], int]] = {}
_LAYOUT_CODES = itertools.count()
MAX_LAYOUTS = 100_000
"""Distinct feature layouts given a code; beyond that (a process that has seen this many) a layout is its own key."""


def shared_layout(names: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
    """One tuple object and one int code per distinct feature layout, process-wide.

    10,000 segments of a model then keep their feature names once, and the scorer groups a batch's events by an
    int instead of hashing and comparing 20 names per group (300 ns -> 20 ns a lookup). A tuple never equals an
    int, so the layouts beyond ``MAX_LAYOUTS``, keyed by their names, stay distinct. Models are built in worker
    threads too: a code comes from one atomic ``next`` and the entry from one ``setdefault``, so two threads
    never give two layouts one code (a race only skips a code).
    """
    found = _LAYOUTS.get(names)
    if found is not None:
        return found
    if len(_LAYOUTS) >= MAX_LAYOUTS:
        return names, names
    return _LAYOUTS.setdefault(names, (names, next(_LAYOUT_CODES)))


@dataclass(frozen=True, slots=True, eq=False)
class LoadedModel:
    """One built, warmed model version, ready to score, plus what output formatting needs."""

    model: str
    segment: str
    version: int
    predictor: Any
    """A ``scorer.models.Model``: ``predict(X)`` with X (n, n_features) float64 in ``feature_names`` order."""
    feature_names: tuple[str, ...]
    accepts_missing: bool
    kind: str
    """``binary`` (prediction = P(classes[1])), ``multiclass`` (list of probabilities) or ``regression``."""
    labels: tuple[Any, ...] | None
    loaded_at: datetime
    load_seconds: float
    label_json: tuple[bytes, ...] = ()
    """The JSON of a binary model's two labels as prediction messages write them (set by ``__post_init__``; empty
    when a label is not JSON-serialisable, and then the scorer's slow path reports it)."""

    fuse_key: tuple[Any, ...] | None = None
    """(kernel class, its fuse key) when the predictor scores with others of that key in one fused call (set by
    ``__post_init__``: a built model's key does not change)."""

    layout: Any = None
    """Its feature layout's key (:func:`shared_layout`; set by ``__post_init__``): equal for equal
    ``feature_names``, which then are one shared tuple."""

    def __post_init__(self) -> None:
        names, layout = shared_layout(tuple(self.feature_names))
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "layout", layout)
        fuse_key = getattr(self.predictor, "fuse_key", None)  # any object with predict() can serve; few can fuse
        key = fuse_key() if fuse_key is not None else None
        if key is not None:
            object.__setattr__(self, "fuse_key", (type(self.predictor), *key))
        if self.kind == "binary" and self.labels is not None:
            try:
                object.__setattr__(self, "label_json", tuple(kept_json(label) for label in self.labels))
            except TypeError:
                pass

    @property
    def what(self) -> str:
        return f"{self.model}/{self.segment} v{self.version}"

    def describe(self) -> dict[str, Any]:
        """This version as ``/models`` shows it."""
        return {"version": self.version, "loaded_at": self.loaded_at.isoformat(),
                "arch": self.predictor.weights.arch, "load_ms": round(self.load_seconds * 1000, 1)}


def prepare(model: str, segment: str, version: int, weights: Any, load_seconds: float = 0.0) -> LoadedModel:
    """Build and warm weights (or an already built Model, e.g. a bound ensemble) into a :class:`LoadedModel`
    (raises InvalidWeights if it cannot score)."""
    from scorer.models import Model, build

    started = time.perf_counter()
    predictor = weights if isinstance(weights, Model) else build(weights)
    classes = predictor.classes
    if classes is None:
        kind = "regression"
        labels = None
    else:
        kind = "binary" if len(classes) == 2 else "multiclass"
        labels = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    try:
        # Warm: one real predict, so the first batch pays nothing extra and a model that cannot score is refused
        # here, while the old one still serves.
        categorical = getattr(predictor, "categorical", None)
        row = np.zeros((1, predictor.n_features)) if categorical is None else categorical.sample_row()
        out = predictor.predict(row)
    except Exception as exc:  # any failure to score means this version is not servable
        raise InvalidWeights(f"{model}/{segment} v{version} does not score a row of zeros: "
                             f"{type(exc).__name__}: {exc}") from exc
    expected = (1, len(classes)) if classes is not None else (1,)
    if np.shape(out) != expected:
        raise InvalidWeights(f"{model}/{segment} v{version} returns shape {np.shape(out)} for one row; "
                             f"expected {expected}")
    return LoadedModel(
        model=model, segment=segment, version=version, predictor=predictor,
        feature_names=tuple(predictor.feature_names), accepts_missing=bool(predictor.accepts_missing),
        kind=kind, labels=labels, loaded_at=datetime.now(UTC),
        load_seconds=load_seconds + (time.perf_counter() - started),
    )


@dataclass(frozen=True, slots=True)
class Target:
    """What an ``active_models`` row asks a segment to serve."""

    version: int
    canary_version: int | None = None
    canary_fraction: float = 0.0
    shadow_version: int | None = None

    def versions(self) -> tuple[int, ...]:
        out = [self.version]
        for extra in (self.canary_version, self.shadow_version):
            if extra is not None and extra not in out:
                out.append(extra)
        return tuple(out)


def target_of(row: Any) -> Target | None:
    """The :class:`Target` of an ActiveModel row, or None when it names no primary version.

    A canary needs both a version and a fraction strictly between 0 and 1; otherwise it is ignored.
    """
    if row is None or row.version is None:
        return None
    canary_version = row.canary_version
    fraction = row.canary_fraction
    if canary_version is None or fraction is None or not 0.0 < float(fraction) < 1.0 or canary_version == row.version:
        canary_version, fraction = None, 0.0
    return Target(int(row.version), canary_version, float(fraction), getattr(row, "shadow_version", None))


def message_head(model: str, segment: str, version: int, canary: bool) -> bytes:
    """``","model":...,"prediction":``: a prediction message from the end of its id to its value, as orjson writes
    the message's dict (see :class:`scorer.stream.batch.PredictionEncoder`)."""
    return b"".join((b'","model":', orjson.dumps(model), b',"segment":', orjson.dumps(segment), b',"version":',
                     orjson.dumps(version), b',"canary":', b"true" if canary else b"false", b',"prediction":'))


@dataclass(frozen=True, slots=True, eq=False)
class Serving:
    """What one (model, segment) serves right now. Replaced as a whole, never mutated."""

    model: str
    segment: str
    """The segment whose ``active_models`` row this is (the fallback segment when events' own has none)."""
    target: Target
    primary: LoadedModel
    canary: LoadedModel | None = None
    canary_fraction: float = 0.0
    shadow: LoadedModel | None = None
    head: bytes = b""
    """The primary's prediction messages for this segment from the end of the id to the value (``message_head``)."""
    scored_key: tuple[str, str, str, str] = ("", "", "", "")
    """The primary's label set of the scored-events counter."""

    def __post_init__(self) -> None:
        version = self.primary.version
        object.__setattr__(self, "head", message_head(self.model, self.segment, version, False))
        object.__setattr__(self, "scored_key", (self.model, self.segment, str(version), "scored"))

    def loaded(self) -> dict[int, LoadedModel]:
        out = {self.primary.version: self.primary}
        for extra in (self.canary, self.shadow):
            if extra is not None:
                out[extra.version] = extra
        return out


def assemble(model: str, segment: str, target: Target, loaded: Mapping[int, LoadedModel]) -> Serving:
    """The Serving for ``target`` from built versions (every version of the target must be in ``loaded``)."""
    canary = loaded[target.canary_version] if target.canary_version is not None else None
    shadow = loaded[target.shadow_version] if target.shadow_version is not None else None
    return Serving(model, segment, target, loaded[target.version], canary, target.canary_fraction if canary else 0.0,
                   shadow)


def missing_versions(serving: Serving | None, target: Target) -> list[int]:
    """Versions ``target`` needs that ``serving`` does not already hold (those must be loaded first)."""
    have = serving.loaded() if serving is not None else {}
    return [v for v in target.versions() if v not in have]


class LRU(Generic[K, V]):
    """A size-bounded mapping that forgets the least recently used key first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"LRU capacity must be at least 1; got {capacity}")
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def get_many(self, keys: Sequence[K]) -> list[V | None]:
        """``get`` of each key in one call (the hot path resolves a batch's groups at once)."""
        data = self._data
        touch = data.move_to_end
        found = [data.get(key) for key in keys]
        for key, value in zip(keys, found):  # noqa: B905 - found is built from keys
            if value is not None:
                touch(key)
        return found

    def peek(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Insert or replace (as most recent); returns the evicted items."""
        self._data[key] = value
        self._data.move_to_end(key)
        evicted = []
        while len(self._data) > self.capacity:
            evicted.append(self._data.popitem(last=False))
        return evicted

    def keys(self) -> list[K]:
        return list(self._data)

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class Unservable:
    """Why events of a (model, segment) cannot be scored: the dead letter's reason and its class."""

    reason: str
    kind: str


def is_transient(exc: BaseException) -> bool:
    """Store failures worth retrying (the store is down or busy), as opposed to bad data or names."""
    if isinstance(exc, NotFound | ChecksumMismatch | InvalidWeights | ConfigError):
        return False
    return isinstance(exc, ScorerError | OSError | TimeoutError) or "cassandra" in type(exc).__module__


@dataclass(slots=True, eq=False)
class Entry:
    """Everything the cache holds for one cached (model, segment): one record, replaced field by field."""

    serving: Serving
    """What it serves now (replaced as a whole by a swap)."""
    blocked: Target | None = None
    """A newer target that failed to load: the row asks for it, ``serving`` still serves."""
    swap: tuple[Target, asyncio.Task[None]] | None = None
    """The swap in flight, and the target it is loading."""
