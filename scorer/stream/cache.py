"""The model cache of a worker: what each (model, segment) serves, and how it changes without a restart.

Each cached (model, segment) holds one immutable :class:`Serving` (primary model, optional canary with its
fraction, optional shadow). A swap builds and warms every model the new pointer needs in a thread, then
replaces that one reference; a batch that already looked up the old :class:`Serving` finishes with it.
Anything that fails (missing version, checksum mismatch, weights that do not build, store down) leaves the
old :class:`Serving` in place, is logged once per (model, segment, version), counted, and retried at the
next poll.

The store API is synchronous; every call runs in a thread (``asyncio.to_thread``) so the event loop that
feeds Kafka never blocks on Cassandra. The pure pieces (canary selection, targets, Servings, the LRU) are in
:mod:`scorer.stream.serving`; refreshes and swaps (with their stage times) in :mod:`scorer.stream.swaps`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from scorer.ensemble import MemberLoader
from scorer.errors import ConfigError
from scorer.stream.cache_store import StoreSide
from scorer.stream.events import MODEL_UNAVAILABLE, UNKNOWN_MODEL, UNKNOWN_SEGMENT
from scorer.stream.metrics import WorkerMetrics
from scorer.stream.serving import (  # noqa: F401 - re-exported: the cache's public vocabulary
    LRU,
    Entry,
    LoadedModel,
    Serving,
    Target,
    Unservable,
    assemble,
    canary_point,
    in_canary,
    is_transient,
    missing_versions,
    prepare,
    target_of,
)
from scorer.stream.swaps import SwapLog, SwapSide

if TYPE_CHECKING:
    from scorer.store import ModelStore

log = logging.getLogger(__name__)

Key = tuple[str, str]
VersionKey = tuple[str, str, int]
MAX_MODEL_READS = 16
"""Models looked up in the store per batch (names come from events, so this bounds what garbage can cost)."""


# -------------------------------------------------------------------------------------------- cache


class ModelCache(StoreSide, SwapSide):
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
        poll_interval: float = 0.25,
        metrics: WorkerMetrics | None = None,
        prepare_fn: Callable[[str, str, int, Any, float], LoadedModel] = prepare,
        max_backoff: float = 10.0,
    ) -> None:
        if max_models < 1 or poll_interval <= 0:
            raise ConfigError(f"max_models must be at least 1 and poll_interval positive; got {max_models} and "
                              f"{poll_interval}")
        self.store = store
        self.models: tuple[str, ...] | None = tuple(models) if models else None
        self.max_models = max_models
        self.fallback_segment = fallback_segment or None
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self._prepare = prepare_fn
        self.members = MemberLoader()
        """Members of referenced ensembles, each built once while an ensemble uses it."""
        self._entries: LRU[Key, Entry] = LRU(max_models)
        self._rows: dict[str, dict[str, Any]] = {}  # model -> segment -> ActiveModel (latest read)
        self._read_at: dict[str, float] = {}  # model -> monotonic time of the latest successful read
        self._unknown: dict[str, tuple[float, Unservable]] = {}  # models with no rows (checked at)
        self._broken: dict[Key, tuple[Target, Unservable]] = {}  # entries that never loaded, per target
        self._failed: dict[VersionKey, str] = {}  # versions whose load failed (logged once)
        self._locks: dict[str, asyncio.Lock] = {}
        self._served: dict[str, None] = dict.fromkeys(self.models or ())
        self.store_ok = True
        self.store_error: str | None = None
        self.store_failures = 0
        self.started = asyncio.Event()
        self.swap_log = SwapLog()
        """The latest swaps' stage times (``/models`` recent_swaps) and the count of swaps installed."""
        self.swap_listeners: list[Callable[[Serving | None, Serving], None]] = []
        """Called after each swap/install with (old, new): hooks for logs, tests, shadow/drift state."""

    # ---------------------------------------------------------------- hot path (sync, no I/O)

    def lookup(self, model: str, segment: str) -> Serving | Unservable | None:
        """The Serving for an event's (model, segment), an Unservable, or None when it must be loaded first."""
        entry = self._entries.get((model, segment))
        if entry is not None:
            return entry.serving
        source = self._source(model, segment)
        if isinstance(source, Unservable) or source is None:
            return source
        if source != segment:
            entry = self._entries.get((model, source))
            if entry is not None:
                return entry.serving
        broken = self._broken.get((model, source))
        if broken is not None:
            target = target_of(self._rows.get(model, {}).get(source))
            if target == broken[0]:
                return broken[1]
        return None

    def lookup_many(self, keys: list[Key]) -> list[Serving | Unservable | None]:
        """``lookup`` of each key, in order; one call for a batch's groups, cached entries without a call each."""
        return [entry.serving if entry is not None else self.lookup(*key)
                for key, entry in zip(keys, self._entries.get_many(keys), strict=True)]

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
        return Unservable(f"no model for {model}/{segment} (no active version, no fallback segment)", UNKNOWN_SEGMENT)

    # ---------------------------------------------------------------- loading

    async def start(self) -> None:
        """Read the served models' pointers and load every active version concurrently (up to max_models)."""
        models = list(self.models) if self.models is not None else await self._call("list models", self.store.models)
        for model in models:
            self._served.setdefault(model, None)
            self.metrics.model_seen(model)
        keys: list[Key] = []
        for model in models:
            rows = await self._read(model) or {}
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
        installed = await self._load_entries(list(dict.fromkeys(sources.values())), raise_transient=True)
        out: dict[Key, Serving | Unservable] = {}
        for key, answer in answers.items():
            if answer is None and key in sources:
                source_key = sources[key]
                held = self._entries.peek(source_key)
                answer = installed.get(source_key) or (held.serving if held else None) or self.lookup(*key)
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
        self._update_gauges()
        if transient is not None and raise_transient:
            raise transient
        return installed

    def _install(self, key: Key, serving: Serving) -> None:
        """The one way a Serving goes live (loaded lazily or swapped in); callers update the summing gauges after."""
        entry = self._entries.peek(key)
        old = entry.serving if entry is not None else None
        if entry is None:
            for evicted_key, _ in self._entries.put(key, Entry(serving)):
                self.metrics.evictions.inc()
                log.debug("evicted %s/%s (least recently used, max_models=%d)", *evicted_key, self.max_models)
        else:
            entry.serving, entry.blocked = serving, None
        self.metrics.segments_loaded.set(len(self._entries))  # the others sum over entries: once per load, not here
        self.metrics.version_served(key[0], serving.segment, serving.primary.version, False)
        if serving.canary is not None:
            self.metrics.version_served(key[0], serving.segment, serving.canary.version, True)
        for listener in self.swap_listeners:
            try:
                listener(old, serving)
            except Exception:  # a listener must never break a swap
                log.exception("swap listener failed")

    def add_swap_listener(self, listener: Callable[[Serving | None, Serving], None]) -> None:
        """Call ``listener(old, new)`` for every Serving going live from now on, and now (old None) for each live."""
        for _, entry in self._entries.items():
            listener(None, entry.serving)
        self.swap_listeners.append(listener)

    def _update_gauges(self) -> None:
        self.metrics.segments_loaded.set(len(self._entries))
        self.metrics.models_loaded.set(self.n_versions())
        self.metrics.swaps_blocked.set(sum(entry.blocked is not None for _, entry in self._entries.items()))

    def n_versions(self) -> int:
        return sum(len(entry.serving.loaded()) for _, entry in self._entries.items())

    # ---------------------------------------------------------------- reporting

    def describe(self) -> dict[str, Any]:
        """What ``/models`` shows: each cached segment's versions and load times, the store's state."""
        models: dict[str, dict[str, Any]] = {}
        for (model, segment), entry in self._entries.items():
            serving = entry.serving
            wanted = target_of(self._rows.get(model, {}).get(segment))
            models.setdefault(model, {})[segment] = {
                "version": serving.primary.version,
                "loaded_at": serving.primary.loaded_at.isoformat(),
                "primary": serving.primary.describe(),
                "canary": None if serving.canary is None else {**serving.canary.describe(),
                                                               "fraction": serving.canary_fraction},
                "shadow": None if serving.shadow is None else serving.shadow.describe(),
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
            "recent_swaps": self.swap_log.describe(),
        }
