"""The model cache's side that talks to the store: pointer reads, version loads, and outage bookkeeping.

A mixin of :class:`scorer.stream.cache.ModelCache` (it uses the cache's state, set in its ``__init__``):
every store call runs in a thread, a transient failure marks the store down (metrics, one warning, backed-off
polls) and the next success marks it up again; a model with no rows is remembered, bounded, as unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scorer.backoff import backoff
from scorer.errors import InvalidWeights, NotFound, ScorerError
from scorer.stream.events import UNKNOWN_MODEL
from scorer.stream.serving import LoadedModel, Unservable, is_transient

if TYPE_CHECKING:
    from scorer.ensemble import MemberLoader
    from scorer.store import ModelStore
    from scorer.stream.metrics import WorkerMetrics

log = logging.getLogger("scorer.stream.cache")

VersionKey = tuple[str, str, int]
MAX_UNKNOWN_MODELS = 1024


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


class StoreSide:
    """Store I/O of the model cache (see the module docstring)."""

    store: ModelStore | None
    metrics: WorkerMetrics
    poll_interval: float
    max_backoff: float
    store_ok: bool
    store_error: str | None
    store_failures: int
    _prepare: Callable[..., LoadedModel]
    members: MemberLoader
    _failed: dict[VersionKey, str]
    _rows: dict[str, dict[str, Any]]
    _read_at: dict[str, float]
    _unknown: dict[str, tuple[float, Unservable]]
    _locks: dict[str, asyncio.Lock]
    _served: dict[str, None]

    async def _build_many(self, keys: list[VersionKey]) -> dict[VersionKey, LoadedModel | BaseException]:
        """Load (checksums verified by the store), build and warm versions in a thread; failures are values."""
        if not keys:
            return {}
        return self._account(await self._load_versions(keys))

    async def _load_versions(self, keys: list[VersionKey]) -> dict[VersionKey, LoadedModel | BaseException]:
        """:meth:`_build_many` without its bookkeeping (a prefetch accounts only for what it gets to use)."""

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
                        if weights.arch == "ensemble":  # referenced members: loaded once, verified, bound
                            weights = self.members.resolve(self.store, key, weights)
                        out[key] = self._prepare(key[0], key[1], key[2], weights, read_seconds)
                    except Exception as exc:  # noqa: BLE001 - reported per version below
                        out[key] = exc if isinstance(exc, ScorerError) else InvalidWeights(
                            f"{key[0]}/{key[1]} v{key[2]} does not build: {type(exc).__name__}: {exc}")
            return out

        return await asyncio.to_thread(work)

    def _account(self, results: dict[VersionKey, LoadedModel | BaseException]
                 ) -> dict[VersionKey, LoadedModel | BaseException]:
        """Failures logged and counted, the store marked down or up by the outcome of a load."""
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

    async def _read(self, model: str, raise_transient: bool = False) -> dict[str, Any] | None:
        """Read a model's whole active_models partition (one request); None when the store failed."""
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            try:
                rows = await asyncio.to_thread(self.store.active, model)
            except Exception as exc:  # classified below
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
        return backoff(self.store_failures + 1, self.poll_interval, self.max_backoff)
