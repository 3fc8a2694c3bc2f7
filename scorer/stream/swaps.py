"""How a cached entry changes version (refresh, background swap) and where a swap's time goes.

:class:`SwapSide` is a mixin of :class:`scorer.stream.cache.ModelCache` (it uses the cache's state): a refresh
re-reads one model's pointers and starts a swap task per cached entry whose target changed; the swap loads and
builds in a thread, then installs the new Serving unless a newer change overtook it.

Each swap leaves a :class:`SwapTrace` (when the change was noticed, its pointer read, its weights built, the new
model live); the cache keeps the latest swaps (bounded) and ``/models`` shows them under ``recent_swaps``, so a
slow swap can be taken apart stage by stage (benchmarks/bench_swap.py does) without debug logging in the hot
path. The count of installed swaps also lets the exactly-once reader commit early once a batch scored by a new
model is in its transaction, instead of holding that output back for a whole commit interval.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scorer.stream.serving import assemble, missing_versions, target_of

if TYPE_CHECKING:
    from scorer.stream.serving import LRU, Entry, Target, Unservable

log = logging.getLogger("scorer.stream.cache")

SWITCH_INTERVAL = 0.001
"""The worker process's GIL switch interval (seconds), see :func:`prompt_handoffs`."""


def prompt_handoffs() -> None:
    """Set the process's GIL switch interval to ``SWITCH_INTERVAL`` (the worker does, once started).

    A swap's pointer read, load and build run in threads (and the driver's I/O thread parses replies): each
    handoff waits for the batch loop to release the GIL, up to the switch interval (5 ms by default), several
    times per swap. 1 ms shortens swaps and the loop's stalls behind a build; idle threads cost nothing."""
    sys.setswitchinterval(SWITCH_INTERVAL)


Key = tuple[str, str]


@dataclass(slots=True)
class SwapTrace:
    """Wall-clock stamps (time.time()) of one swap; None for a stage it never reached."""

    model: str
    segment: str
    version: int
    trigger: str
    """``notice`` (a model-changes notice) or ``poll`` (the periodic pointer read)."""
    triggered_at: float
    """The notice's arrival, or the start of the poll's read."""
    read_at: float
    """The pointer read returned, naming the new target."""
    sent_at: float | None = None
    """The notice's own ``at`` (the publisher's clock), for notices."""
    loaded_at: float | None = None
    """Weights read and built (warmed)."""
    installed_at: float | None = None
    """The new Serving is live: the next batch scores with it."""
    outcome: str = "pending"

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "segment": self.segment, "version": self.version, "trigger": self.trigger,
                "sent_at": self.sent_at, "triggered_at": self.triggered_at, "read_at": self.read_at,
                "loaded_at": self.loaded_at, "installed_at": self.installed_at, "outcome": self.outcome}


FRESH_SECONDS = 5.0
"""How long a newly installed Serving counts as fresh (a segment with no events for this long is not waited for)."""
MAX_FRESH = 1024


@dataclass
class SwapLog:
    """The latest ``size`` swap traces, how many swaps went live in all, and which Servings are fresh."""

    size: int = 256
    installed: int = 0
    """Swaps installed so far."""
    traces: deque[SwapTrace] = field(default_factory=deque)
    fresh: dict[Key, tuple[Any, float]] = field(default_factory=dict)
    """Servings installed by a swap and not yet seen scoring a batch, with when (monotonic): the exactly-once
    reader commits as soon as a batch scored by one of them is in its transaction (:meth:`used_by`)."""

    def went_live(self, key: Key, serving: Any) -> None:
        self.fresh.pop(key, None)
        self.fresh[key] = (serving, time.monotonic())
        self._prune()

    def used_by(self, resolved: Mapping[Any, Any]) -> bool:
        """True when a batch resolved to a fresh Serving (which then stops being fresh); cheap when none is."""
        if not self.fresh:
            return False
        self._prune()
        ids = {id(serving): key for key, (serving, _) in self.fresh.items()}
        used = [ids[id(answer)] for answer in resolved.values() if id(answer) in ids]
        for key in used:
            self.fresh.pop(key, None)
        return bool(used)

    def _prune(self) -> None:
        horizon = time.monotonic() - FRESH_SECONDS
        while self.fresh:
            key, (_, at) = next(iter(self.fresh.items()))
            if at >= horizon and len(self.fresh) <= MAX_FRESH:
                return
            del self.fresh[key]

    def start(self, trace: SwapTrace) -> SwapTrace:
        self.traces.append(trace)
        while len(self.traces) > self.size:
            self.traces.popleft()
        return trace

    @staticmethod
    def loaded(trace: SwapTrace | None) -> None:
        if trace is not None:
            trace.loaded_at = time.time()

    def done(self, trace: SwapTrace | None, outcome: str) -> None:
        """``outcome``: ``installed``, ``failed`` or ``overtaken`` (a newer change came first)."""
        if outcome == "installed":
            self.installed += 1
        if trace is not None:
            trace.outcome = outcome
            if outcome == "installed":
                trace.installed_at = time.time()

    def describe(self) -> list[dict[str, Any]]:
        return [trace.describe() for trace in self.traces]


class SwapSide:
    """Refreshes and swaps of the model cache (see the module docstring)."""

    _entries: LRU[Key, Entry]
    _rows: dict[str, dict[str, Any]]
    _broken: dict[Key, tuple[Target, Unservable]]
    _served: dict[str, None]
    swap_log: SwapLog
    metrics: Any
    store_ok: bool
    # and, from the cache and its StoreSide: _read, _build_many, _install, _update_gauges

    async def refresh(self, model: str, trigger: str = "poll", sent_at: float | None = None,
                      hint: tuple[str, int] | None = None) -> None:
        """Re-read one model's pointers and start a background swap for every cached entry that changed
        (``trigger`` and ``sent_at``, a notice's own time, only label the swaps' traces).

        ``hint``: the (segment, version) a notice names. That version's weights are read and built while the
        pointer is read, and the swap uses them if the pointer confirms it (the pointer alone decides)."""
        triggered_at = time.time()
        prefetch = None
        if hint is not None:
            entry = self._entries.peek((model, hint[0]))
            if entry is not None and hint[1] not in entry.serving.loaded():
                prefetch = asyncio.ensure_future(self._load_versions([(model, *hint)]))
        rows = await self._read(model)
        if rows is None:
            return
        read_at = time.time()
        for key, entry in self._entries.items():
            if key[0] != model:
                continue
            target = target_of(rows.get(key[1]))
            if target is None:
                continue  # the row was removed: keep serving what we have (events resolve to the fallback anew)
            if target == entry.serving.target:
                entry.blocked = None
                continue
            if entry.swap is not None and entry.swap[0] == target and not entry.swap[1].done():
                continue
            trace = self.swap_log.start(
                SwapTrace(model, key[1], target.version, trigger, triggered_at, read_at, sent_at))
            early = prefetch if hint is not None and key[1] == hint[0] else None
            task = asyncio.get_running_loop().create_task(self._swap(key, target, trace, early),
                                                          name=f"swap {model}/{key[1]}")
            entry.swap = (target, task)
        for key in [k for k in self._broken if k[0] == model]:
            if target_of(rows.get(key[1])) is not None and key not in self._entries:
                self._broken.pop(key, None)  # retried by the next batch that needs it

    async def refresh_all(self) -> bool:
        """Refresh every served model (the poll); True when every read succeeded."""
        ok = True
        for model in list(self._served):
            try:
                await self.refresh(model)
            except Exception:  # one model's failure must not stop the others
                log.exception("refresh of %s failed", model)
                ok = False
        return ok and self.store_ok

    async def _swap(self, key: Key, target: Target, trace: SwapTrace | None = None,
                    prefetched: asyncio.Future | None = None) -> None:
        """Load what ``target`` needs (using what a notice prefetched), then install the new Serving, unless the
        pointer moved on meanwhile."""
        started = time.perf_counter()
        try:
            entry = self._entries.peek(key)
            if entry is None:
                return
            current = entry.serving
            needed = [(key[0], key[1], v) for v in missing_versions(current, target)]
            early = {}
            if prefetched is not None:  # what failed there is loaded again below, and accounted for then
                got = await prefetched
                early = {k: r for k, r in got.items() if k in needed and not isinstance(r, BaseException)}
                self._account(early)
            results = {**early, **await self._build_many([k for k in needed if k not in early])}
            self.swap_log.loaded(trace)
            if any(isinstance(r, BaseException) for r in results.values()):
                self.swap_log.done(trace, "failed")
                entry.blocked = target
                self.metrics.swaps.labels(key[0], "failed").inc()
                self._update_gauges()
                return
            latest = target_of(self._rows.get(key[0], {}).get(key[1]))
            if latest != target or self._entries.peek(key) is not entry:
                self.swap_log.done(trace, "overtaken")
                return  # a newer change (or an eviction) overtook this one; never install a stale pointer
            current = entry.serving
            loaded = current.loaded()
            loaded.update({k[2]: r for k, r in results.items()})  # type: ignore[misc]
            new = assemble(key[0], key[1], target, loaded)
            self._install(key, new)
            self.swap_log.done(trace, "installed")
            self.swap_log.went_live(key, new)
            self._update_gauges()
            elapsed = time.perf_counter() - started
            self.metrics.swaps.labels(key[0], "ok").inc()
            self.metrics.swap_seconds.observe(elapsed)
            log.info("swapped %s/%s: v%d -> v%d%s in %.0f ms", key[0], key[1], current.target.version, target.version,
                     f" (canary v{target.canary_version} at {target.canary_fraction:g})" if new.canary else "",
                     elapsed * 1000)
        except asyncio.CancelledError:
            raise
        except Exception:  # a swap must never take the worker down
            log.exception("swap of %s/%s to %s failed", key[0], key[1], target)
            self.swap_log.done(trace, "failed")
            self.metrics.swaps.labels(key[0], "failed").inc()
        finally:
            entry = self._entries.peek(key)
            if entry is not None and entry.swap is not None and entry.swap[0] == target:
                entry.swap = None

    async def wait_swaps(self) -> None:
        """Wait for every background swap started so far (tests and shutdown)."""
        tasks = [entry.swap[1] for _, entry in self._entries.items() if entry.swap is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
