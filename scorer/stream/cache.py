"""The model cache of a worker: what each (model, segment) serves, and how it changes without a restart.

Each cached (model, segment) holds one immutable :class:`Serving` (primary model, optional canary with its
fraction, optional shadow). A swap builds and warms every model the new pointer needs in a thread, then
replaces that one reference; a batch that already looked up the old :class:`Serving` finishes with it.
Anything that fails (missing version, checksum mismatch, weights that do not build, store down) leaves the
old :class:`Serving` in place, is logged once per (model, segment, version), counted, and retried at the
next poll.

The store API is synchronous; every call runs in a thread (``asyncio.to_thread``) so the event loop that
feeds Kafka never blocks on Cassandra. Pure pieces (canary selection, targets, LRU) have no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from scorer.errors import ChecksumMismatch, ConfigError, InvalidWeights, NotFound, ScorerError
from scorer.stream.events import MODEL_UNAVAILABLE, UNKNOWN_MODEL, UNKNOWN_SEGMENT
from scorer.stream.metrics import WorkerMetrics

if TYPE_CHECKING:
    from scorer.store import ModelStore

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
Key = tuple[str, str]
VersionKey = tuple[str, str, int]
MAX_UNKNOWN_MODELS = 1024
MAX_MODEL_READS = 16
"""Models looked up in the store per batch (names come from events, so this bounds what garbage can cost)."""


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

    @property
    def what(self) -> str:
        return f"{self.model}/{self.segment} v{self.version}"


def prepare(model: str, segment: str, version: int, weights: Any, load_seconds: float = 0.0) -> LoadedModel:
    """Build and warm weights into a :class:`LoadedModel` (raises InvalidWeights if it cannot score)."""
    from scorer.models import build

    started = time.perf_counter()
    predictor = build(weights)
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
        out = predictor.predict(np.zeros((1, predictor.n_features), dtype=np.float64))
    except Exception as exc:  # noqa: BLE001 - any failure to score means this version is not servable
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

    def replace(self, key: K, value: V) -> bool:
        """Replace the value of a present key without touching recency; False when the key is absent."""
        if key not in self._data:
            return False
        self._data[key] = value
        return True

    def keys(self) -> list[K]:
        return list(self._data)

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


# -------------------------------------------------------------------------------------------- cache


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


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


class ModelCache:
    """Per (model, segment) live models for one worker, refreshed from the store.

    ``models``: the models this worker serves (None: every model that appears in events, plus all models
    with active rows at start). ``max_models``: cached (model, segment) entries before the least recently used
    one is evicted. ``fallback_segment``: the row that serves a segment with no row of its own (None: none).
    """

    def __init__(
        self,
        store: ModelStore | None,
        *,
        models: Sequence[str] | None = None,
        max_models: int = 10_000,
        fallback_segment: str | None = "__default__",
        poll_interval: float = 1.0,
        metrics: WorkerMetrics | None = None,
        prepare_fn: Callable[[str, str, int, Any, float], LoadedModel] = prepare,
        max_backoff: float = 10.0,
    ) -> None:
        if max_models < 1:
            raise ConfigError(f"max_models must be at least 1; got {max_models}")
        if poll_interval <= 0:
            raise ConfigError(f"poll_interval must be positive; got {poll_interval}")
        self.store = store
        self.models: tuple[str, ...] | None = tuple(models) if models else None
        self.max_models = max_models
        self.fallback_segment = fallback_segment or None
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self._prepare = prepare_fn
        self._entries: LRU[Key, Serving] = LRU(max_models)
        self._rows: dict[str, dict[str, Any]] = {}  # model -> segment -> ActiveModel (latest read)
        self._read_at: dict[str, float] = {}  # model -> monotonic time of the latest successful read
        self._unknown: dict[str, tuple[float, Unservable]] = {}  # models with no rows (checked at)
        self._broken: dict[Key, tuple[Target, Unservable]] = {}  # entries that never loaded, per target
        self._failed: dict[VersionKey, str] = {}  # versions whose load failed (logged once)
        self._blocked: dict[Key, Target] = {}  # entries whose wanted target is not servable
        self._inflight: dict[Key, tuple[Target, asyncio.Task]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._served: dict[str, None] = dict.fromkeys(self.models or ())
        self.store_ok = True
        self.store_error: str | None = None
        self.store_failures = 0
        self.started = asyncio.Event()
        self.swap_listeners: list[Callable[[Serving | None, Serving], None]] = []
        """Called after each swap/install with (old, new): hooks for logs, tests, shadow/drift state."""

    # ---------------------------------------------------------------- hot path (sync, no I/O)

    def lookup(self, model: str, segment: str) -> Serving | Unservable | None:
        """The Serving for an event's (model, segment), an Unservable, or None when it must be loaded first."""
        entry = self._entries.get((model, segment))
        if entry is not None:
            return entry
        source = self._source(model, segment)
        if isinstance(source, Unservable) or source is None:
            return source
        if source != segment:
            entry = self._entries.get((model, source))
            if entry is not None:
                return entry
        broken = self._broken.get((model, source))
        if broken is not None:
            target = target_of(self._rows.get(model, {}).get(source))
            if target == broken[0]:
                return broken[1]
        return None

    def _source(self, model: str, segment: str) -> str | Unservable | None:
        """The segment whose row serves ``segment``, an Unservable, or None when the model is not read yet."""
        if self.models is not None and model not in self._served:
            return Unservable(f"unknown model '{model}': this worker serves {', '.join(self.models)}", UNKNOWN_MODEL)
        rows = self._rows.get(model)
        if rows is None:
            unknown = self._unknown.get(model)
            return unknown[1] if unknown is not None else None
        row = rows.get(segment)
        if row is not None and row.version is not None:
            return segment
        fallback = self.fallback_segment
        if fallback is not None:
            row = rows.get(fallback)
            if row is not None and row.version is not None:
                return fallback
            return Unservable(f"no model for {model}/{segment} and no model for its fallback segment "
                              f"'{fallback}'", UNKNOWN_SEGMENT)
        return Unservable(f"no model for {model}/{segment} (no active version, no fallback segment)",
                          UNKNOWN_SEGMENT)

    # ---------------------------------------------------------------- loading

    async def start(self) -> None:
        """Read the served models' pointers and load every active version concurrently (up to max_models)."""
        models = list(self.models) if self.models is not None else await self._call("list models", self.store.models)
        for model in models:
            self._served.setdefault(model, None)
        keys: list[Key] = []
        for model in models:
            rows = await self._read(model)
            if rows is None:
                continue
            keys.extend((model, seg) for seg, row in sorted(rows.items()) if target_of(row) is not None)
        await self._load_entries(keys[: self.max_models])
        self.started.set()
        log.info("model cache ready: %d segment(s) of %d model(s), %d version(s) loaded",
                 len(self._entries), len(models), self.n_versions())

    async def ensure(self, keys: Iterable[Key]) -> dict[Key, Serving | Unservable]:
        """Resolve every (model, segment) in ``keys``, loading what is missing; the answer holds the references.

        Raises the store's error when it cannot be read (transient: the caller retries the batch); definitive
        problems (unknown model or segment, a version that does not load) become Unservable answers.
        The returned Servings stay valid for the batch even if the cache evicts them meanwhile.
        """
        keys = list(dict.fromkeys(keys))
        need_read = set()
        for model, segment in keys:
            if self.models is not None and model not in self._served:
                continue
            if model not in self._rows:
                unknown = self._unknown.get(model)
                if unknown is None or time.monotonic() - unknown[0] >= self.poll_interval:
                    need_read.add(model)
            elif segment not in self._rows[model] and self._age(model) >= min(self.poll_interval, 1.0):
                need_read.add(model)  # maybe a segment activated since the last poll
        if need_read:
            # Model names come from events: read a bounded number per batch, concurrently. A model we already
            # have a snapshot of keeps it when the store is down (a re-read is only for segments activated
            # since the last poll); only a model never read makes the batch wait for the store.
            reads = sorted(need_read)
            checked, skipped = reads[:MAX_MODEL_READS], reads[MAX_MODEL_READS:]
            results = await asyncio.gather(*(self._read(m, raise_transient=m not in self._rows) for m in checked),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            for model in skipped:
                if model not in self._rows:
                    self._set_unknown(model, f"unknown model '{model}' (not looked up: more than "
                                             f"{MAX_MODEL_READS} unknown models in one batch)")
        answers: dict[Key, Serving | Unservable | None] = {key: self.lookup(*key) for key in keys}
        sources: dict[Key, Key] = {}
        for (model, segment), answer in answers.items():
            if answer is None:
                source = self._source(model, segment)
                if isinstance(source, str):
                    sources[(model, segment)] = (model, source)
                elif isinstance(source, Unservable):
                    answers[(model, segment)] = source
        installed: dict[Key, Serving] = {}
        if sources:
            installed = await self._load_entries(list(dict.fromkeys(sources.values())), raise_transient=True)
        out: dict[Key, Serving | Unservable] = {}
        for key, answer in answers.items():
            if answer is None and key in sources:
                source_key = sources[key]
                answer = installed.get(source_key) or self._entries.peek(source_key) or self.lookup(*key)
            if answer is None:
                answer = Unservable(f"no model could be loaded for {key[0]}/{key[1]}", MODEL_UNAVAILABLE)
            out[key] = answer
        return out

    async def _load_entries(self, keys: list[Key], raise_transient: bool = False) -> dict[Key, Serving]:
        """Load and install entries that are not cached yet (their rows must be known); returns the installed."""
        jobs: dict[Key, Target] = {}
        for key in keys:
            target = target_of(self._rows.get(key[0], {}).get(key[1]))
            if target is not None and key not in self._entries:
                jobs[key] = target
        installed: dict[Key, Serving] = {}
        if not jobs:
            return installed
        version_keys = [(m, s, v) for (m, s), t in jobs.items() for v in t.versions()]
        results = await self._build_many(version_keys)
        transient: BaseException | None = None
        for key, target in jobs.items():
            got = {v: results[(key[0], key[1], v)] for v in target.versions()}
            errors = {v: r for v, r in got.items() if isinstance(r, BaseException)}
            if errors:
                version, exc = next(iter(errors.items()))
                if is_transient(exc):
                    transient = exc
                    continue
                self._broken[key] = (target, Unservable(
                    f"model {key[0]}/{key[1]} v{version} cannot be loaded: {exc}", MODEL_UNAVAILABLE))
                continue
            self._broken.pop(key, None)
            serving = assemble(key[0], key[1], target, got)  # type: ignore[arg-type]
            self._install(key, serving)
            installed[key] = serving
        if transient is not None and raise_transient:
            raise transient
        return installed

    async def _build_many(self, keys: list[VersionKey]) -> dict[VersionKey, LoadedModel | BaseException]:
        """Load (checksums verified by the store), build and warm versions in a thread; failures are values."""
        if not keys:
            return {}

        def work() -> dict[VersionKey, LoadedModel | BaseException]:
            started = time.perf_counter()
            try:
                loaded = self.store.load_many(keys)
            except Exception as exc:  # noqa: BLE001 - the whole read failed: every key gets the error
                return {key: exc for key in keys}
            read_seconds = (time.perf_counter() - started) / max(1, len(keys))
            out: dict[VersionKey, LoadedModel | BaseException] = {}
            for key in keys:
                weights = loaded.get(key)
                if weights is None:
                    out[key] = NotFound(f"{key[0]}/{key[1]} v{key[2]}: the store returned nothing")
                elif isinstance(weights, BaseException):
                    out[key] = weights
                else:
                    try:
                        out[key] = self._prepare(key[0], key[1], key[2], weights, read_seconds)
                    except Exception as exc:  # noqa: BLE001 - reported per version below
                        out[key] = exc if isinstance(exc, ScorerError) else InvalidWeights(
                            f"{key[0]}/{key[1]} v{key[2]} does not build: {type(exc).__name__}: {exc}")
            return out

        results = await asyncio.to_thread(work)
        store_down = None
        for key, result in results.items():
            if isinstance(result, BaseException):
                if is_transient(result):
                    store_down = result
                self._note_failure(key, result)
            else:
                self._failed.pop(key, None)
        if store_down is not None:
            self._store_failed("load", store_down)
        elif any(not isinstance(r, BaseException) for r in results.values()):
            self._store_recovered()
        return results

    def _note_failure(self, key: VersionKey, exc: BaseException) -> None:
        self.metrics.swap_failures.labels(key[0], _kind(exc)).inc()
        text = f"{type(exc).__name__}: {exc}"
        if self._failed.get(key) != text:
            self._failed[key] = text
            log.warning("cannot serve %s/%s v%d (the previous model keeps serving; retried every poll): %s",
                        key[0], key[1], key[2], text)

    def _install(self, key: Key, serving: Serving) -> None:
        old = self._entries.peek(key)
        evicted = self._entries.put(key, serving)
        self._blocked.pop(key, None)
        for evicted_key, _ in evicted:
            self.metrics.evictions.inc()
            self._blocked.pop(evicted_key, None)
            log.debug("evicted %s/%s (least recently used, max_models=%d)", *evicted_key, self.max_models)
        self._update_gauges()
        for listener in self.swap_listeners:
            try:
                listener(old, serving)
            except Exception:  # noqa: BLE001 - a listener must never break a swap
                log.exception("swap listener failed")

    def _update_gauges(self) -> None:
        self.metrics.segments_loaded.set(len(self._entries))
        self.metrics.models_loaded.set(self.n_versions())
        self.metrics.swaps_blocked.set(len(self._blocked))

    def n_versions(self) -> int:
        return sum(len(serving.loaded()) for _, serving in self._entries.items())

    # ---------------------------------------------------------------- watching

    async def refresh(self, model: str) -> None:
        """Re-read one model's pointers and start a background swap for every cached entry that changed."""
        rows = await self._read(model)
        if rows is None:
            return
        for key, serving in self._entries.items():
            if key[0] != model:
                continue
            target = target_of(rows.get(key[1]))
            if target is None:
                continue  # the row was removed: keep serving what we have (events resolve to the fallback anew)
            if target == serving.target:
                self._blocked.pop(key, None)
                continue
            inflight = self._inflight.get(key)
            if inflight is not None and inflight[0] == target and not inflight[1].done():
                continue
            task = asyncio.get_running_loop().create_task(self._swap(key, target), name=f"swap {key[0]}/{key[1]}")
            self._inflight[key] = (target, task)
        for key in [k for k in self._broken if k[0] == model]:
            if target_of(rows.get(key[1])) is not None and key not in self._entries:
                self._broken.pop(key, None)  # retried by the next batch that needs it

    async def refresh_all(self) -> bool:
        """Refresh every served model (the poll); True when every read succeeded."""
        ok = True
        for model in list(self._served):
            try:
                await self.refresh(model)
            except Exception:  # noqa: BLE001 - one model's failure must not stop the others
                log.exception("refresh of %s failed", model)
                ok = False
        return ok and self.store_ok

    async def _swap(self, key: Key, target: Target) -> None:
        """Load what ``target`` needs, then replace the entry's Serving, unless the pointer moved on meanwhile."""
        started = time.perf_counter()
        try:
            current = self._entries.peek(key)
            if current is None:
                return
            needed = missing_versions(current, target)
            results = await self._build_many([(key[0], key[1], v) for v in needed])
            failures = [r for r in results.values() if isinstance(r, BaseException)]
            if failures:
                self._blocked[key] = target
                self.metrics.swaps.labels(key[0], "failed").inc()
                self._update_gauges()
                return
            latest = target_of(self._rows.get(key[0], {}).get(key[1]))
            current = self._entries.peek(key)
            if latest != target or current is None:
                return  # a newer change (or an eviction) overtook this one; never install a stale pointer
            loaded = current.loaded()
            loaded.update({k[2]: r for k, r in results.items()})  # type: ignore[misc]
            new = assemble(key[0], key[1], target, loaded)
            if not self._entries.replace(key, new):
                return
            self._blocked.pop(key, None)
            self._update_gauges()
            elapsed = time.perf_counter() - started
            self.metrics.swaps.labels(key[0], "ok").inc()
            self.metrics.swap_seconds.observe(elapsed)
            log.info("swapped %s/%s: v%d -> v%d%s in %.0f ms", key[0], key[1], current.target.version, target.version,
                     f" (canary v{target.canary_version} at {target.canary_fraction:g})" if new.canary else "",
                     elapsed * 1000)
            for listener in self.swap_listeners:
                try:
                    listener(current, new)
                except Exception:  # noqa: BLE001
                    log.exception("swap listener failed")
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a swap must never take the worker down
            log.exception("swap of %s/%s to %s failed", key[0], key[1], target)
            self.metrics.swaps.labels(key[0], "failed").inc()
        finally:
            inflight = self._inflight.get(key)
            if inflight is not None and inflight[0] == target:
                self._inflight.pop(key, None)

    async def wait_swaps(self) -> None:
        """Wait for every background swap started so far (tests and shutdown)."""
        tasks = [task for _, task in self._inflight.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, model: str, raise_transient: bool = False) -> dict[str, Any] | None:
        """Read a model's whole active_models partition (one request); None when the store failed."""
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            try:
                rows = await asyncio.to_thread(self.store.active, model)
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_transient(exc):
                    self._store_failed("active", exc)
                    if raise_transient:
                        raise
                    return None
                self._set_unknown(model, f"unknown model '{model}': {exc}")
                return None
            self._store_recovered()
            self._read_at[model] = time.monotonic()
            if not rows:
                self._set_unknown(model, f"unknown model '{model}' (it has no active_models rows)")
                return None
            self._unknown.pop(model, None)
            self._rows[model] = rows
            self._served.setdefault(model, None)
            return rows

    def _set_unknown(self, model: str, reason: str) -> None:
        """Remember (for one poll interval) that a model has no rows; bounded, since names come from events."""
        self._rows.pop(model, None)
        self._locks.pop(model, None)  # names come from events: keep nothing per unknown name but this bounded entry
        self._unknown.pop(model, None)
        self._unknown[model] = (time.monotonic(), Unservable(reason, UNKNOWN_MODEL))
        while len(self._unknown) > MAX_UNKNOWN_MODELS:
            del self._unknown[next(iter(self._unknown))]

    def _age(self, model: str) -> float:
        at = self._read_at.get(model)
        return float("inf") if at is None else time.monotonic() - at

    async def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            result = await asyncio.to_thread(fn)
        except Exception as exc:
            if is_transient(exc):
                self._store_failed(what, exc)
            raise
        self._store_recovered()
        return result

    def _store_failed(self, operation: str, exc: BaseException) -> None:
        self.metrics.store_errors.labels(operation).inc()
        self.metrics.store_up.set(0)
        self.store_failures += 1
        text = f"{type(exc).__name__}: {exc}"
        if self.store_ok:
            log.warning("model store unavailable (%s); scoring continues with the loaded models: %s", operation, text)
        self.store_ok = False
        self.store_error = text

    def _store_recovered(self) -> None:
        if not self.store_ok:
            log.warning("model store reachable again after %d failed call(s); swaps resume", self.store_failures)
        self.store_ok = True
        self.store_error = None
        self.store_failures = 0
        self.metrics.store_up.set(1)

    def next_poll_delay(self) -> float:
        """The poll interval, backed off exponentially while the store is failing."""
        if self.store_ok:
            return self.poll_interval
        return min(self.max_backoff, self.poll_interval * 2 ** min(self.store_failures, 10))

    # ---------------------------------------------------------------- reporting

    def describe(self) -> dict[str, Any]:
        """What ``/models`` shows: each cached segment's versions and load times, the store's state."""
        models: dict[str, dict[str, Any]] = {}
        for (model, segment), serving in self._entries.items():
            def one(m: LoadedModel | None) -> dict[str, Any] | None:
                if m is None:
                    return None
                return {"version": m.version, "loaded_at": m.loaded_at.isoformat(), "arch": m.predictor.weights.arch,
                        "load_ms": round(m.load_seconds * 1000, 1)}
            wanted = target_of(self._rows.get(model, {}).get(segment))
            models.setdefault(model, {})[segment] = {
                "version": serving.primary.version,
                "loaded_at": serving.primary.loaded_at.isoformat(),
                "primary": one(serving.primary),
                "canary": None if serving.canary is None else {**(one(serving.canary) or {}),
                                                               "fraction": serving.canary_fraction},
                "shadow": one(serving.shadow),
                "pending": None if wanted is None or wanted == serving.target else {
                    "version": wanted.version, "canary_version": wanted.canary_version,
                    "canary_fraction": wanted.canary_fraction, "shadow_version": wanted.shadow_version},
                "errors": {str(v): text for (m, s, v), text in self._failed.items() if (m, s) == (model, segment)},
            }
        return {
            "store": {"up": self.store_ok, "error": self.store_error},
            "served_models": list(self._served),
            "max_models": self.max_models,
            "fallback_segment": self.fallback_segment,
            "segments_loaded": len(self._entries),
            "versions_loaded": self.n_versions(),
            "unservable": {f"{m}/{s}": u.reason for (m, s), (_, u) in self._broken.items()},
            "models": models,
        }
