"""An in-memory ModelStore (like faust's ``memory://`` store): the same contract, no database.

For unit tests of everything above the store (the worker's cache and swap decisions, the CLI's logic) and
for trying scorer without Cassandra. Weights are kept as published bytes with their sha256 and verified at
every load, exactly as the Cassandra store does, so a corrupted version (:meth:`MemoryModelStore.corrupt`)
fails the same way. Pointer changes follow the same rules (``scorer.store.rules``) and are logged.
Thread-safe (one lock): callers use it from ``asyncio.to_thread`` like the real store.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from scorer.errors import ConfigError, NotFound, ScorerError, StoreError
from scorer.models import ModelWeights

from . import rules
from .base import Activation, ActiveModel, Progress, PublishItem, VersionInfo, active_version

Key = tuple[str, str, int]


@dataclass
class _Version:
    info: VersionInfo
    data: bytes


class MemoryModelStore:
    """ModelStore in a dict. ``fail_next`` makes the next calls raise (a store outage, for tests)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._versions: dict[Key, _Version] = {}
        self._pointers: dict[tuple[str, str], ActiveModel] = {}
        self._log: dict[tuple[str, str], list[Activation]] = {}
        self._unlogged: set[tuple[str, str]] = set()
        """Pointers written by ``set_pointer`` (raw CQL) and not yet noticed by a reader."""
        self.failures: list[Exception] = []
        """Exceptions raised, one per call and in order, by the next store calls (then normal service)."""
        self.calls: list[str] = []
        """Names of the methods called, oldest first (what a test may count)."""

    # ------------------------------------------------------------------ test controls

    def fail_next(self, *errors: Exception) -> None:
        with self._lock:
            self.failures.extend(errors)

    def corrupt(self, model: str, segment: str, version: int) -> None:
        """Flip a byte of a stored version: its next load fails the checksum, as a damaged chunk would."""
        with self._lock:
            stored = self._versions[(model, segment, version)]
            data = bytearray(stored.data)
            data[len(data) // 2] ^= 0xFF
            stored.data = bytes(data)

    def set_pointer(self, model: str, segment: str, version: int | None, *, canary_version: int | None = None,
                    canary_fraction: float | None = None, shadow_version: int | None = None) -> None:
        """Write a pointer row directly, with no log entry: what a raw CQL UPDATE does to the real table."""
        with self._lock:
            previous = self._pointers.get((model, segment))
            self._pointers[(model, segment)] = ActiveModel(model, segment, version, canary_version, canary_fraction,
                                                           shadow_version, previous.updated_at if previous else None)
            self._unlogged.add((model, segment))

    def _notice_outside(self, model: str, segment: str | None = None) -> None:
        """Log raw pointer writes the way the Cassandra store does when it first reads them."""
        for key in sorted(k for k in self._unlogged if k[0] == model and segment in (None, k[1])):
            self._unlogged.discard(key)
            pointer = self._pointers[key]
            log = self._log.setdefault(key, [])
            at = rules.now_ms()
            log.append(Activation(*key, at, rules.OUTSIDE_ACTOR, rules.OUTSIDE, log[-1].to_version if log else None,
                                  pointer.version, pointer.canary_version, pointer.canary_fraction,
                                  "active_models row written outside scorer"))
            self._pointers[key] = replace(pointer, outside_at=at)

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.failures:
            raise self.failures.pop(0)

    # ------------------------------------------------------------------ versions

    def publish(self, model: str, segment: str, weights: ModelWeights, *, metrics: dict[str, Any] | None = None,
                stats: dict[str, Any] | None = None, author: str | None = None, activate: bool = False,
                reason: str | None = None) -> int:
        version = self.publish_many(model, [(segment, weights, metrics, stats)], author=author)[segment]
        if activate:
            self.activate(model, segment, version, actor=author, reason=reason)
        return version

    def publish_many(self, model: str, items: Iterable[PublishItem], *, author: str | None = None,
                     activate: bool = False, reason: str | None = None,
                     progress: Progress | None = None) -> dict[str, int]:
        with self._lock:
            self._enter("publish_many")
            rules.check_model(model)
            items = list(items)
            if not items:
                raise ConfigError(f"publish {model}: no weights given")
            segments = [rules.check_segment(segment) for segment, *_ in items]
            if len(set(segments)) != len(segments):
                raise ConfigError(f"publish {model}: a segment is given twice")
            for segment, weights, *_ in items:
                if not isinstance(weights, ModelWeights):
                    raise ConfigError(f"publish {rules.where(model, segment)}: weights must be ModelWeights")
                if weights.arch == "ensemble":
                    from scorer.ensemble import check_references  # its members are read from this store

                    check_references(self, model, segment, weights)
            out: dict[str, int] = {}
            for segment, weights, metrics, stats in items:
                data = weights.to_bytes()
                version = 1 + max((v for (m, s, v) in self._versions if (m, s) == (model, segment)), default=0)
                info = VersionInfo(model, segment, version, weights.arch, tuple(weights.feature_names),
                                   tuple(weights.classes) if weights.classes is not None else None,
                                   dict(weights.metadata), dict(metrics or {}), dict(stats or {}), len(data), 1,
                                   rules.sha256_hex(data), rules.now_ms(), rules.check_text(author, "author"))
                self._versions[(model, segment, version)] = _Version(info, data)
                out[segment] = version
                if progress is not None:
                    progress("publish", len(out), len(items))
        if activate:
            self.release(model, out, actor=author, reason=reason)
        return out

    def versions(self, model: str, segment: str | None = None) -> list[VersionInfo]:
        with self._lock:
            self._enter("versions")
            found = [v.info for (m, s, _), v in self._versions.items() if m == model and segment in (None, s)]
        return sorted(found, key=lambda info: (info.segment, -info.version))

    def version_info(self, model: str, segment: str, version: int) -> VersionInfo | None:
        with self._lock:
            self._enter("version_info")
            stored = self._versions.get((model, segment, version))
            return stored.info if stored is not None else None

    def load(self, model: str, segment: str, version: int | None = None) -> ModelWeights:
        if version is None:
            version = active_version(self, model, segment)
        result = self.load_many([(model, segment, version)])[(model, segment, version)]
        if isinstance(result, Exception):
            raise result
        return result

    def load_many(self, keys: Iterable[Key]) -> dict[Key, ModelWeights | Exception]:
        with self._lock:
            self._enter("load_many")
            found = {key: self._versions.get(key) for key in dict.fromkeys(keys)}
        out: dict[Key, ModelWeights | Exception] = {}
        for key, stored in found.items():
            if stored is None:
                out[key] = NotFound(f"{rules.where(*key)} does not exist or is not complete")
                continue
            try:
                data = rules.assemble([(0, stored.data)], n_chunks=1, size_bytes=stored.info.size_bytes,
                                      checksum=stored.info.checksum, where=rules.where(*key))
                out[key] = ModelWeights.from_bytes(data)
            except ScorerError as exc:
                out[key] = exc
        return out

    # ------------------------------------------------------------------ pointers

    def active(self, model: str, segment: str | None = None) -> dict[str, ActiveModel]:
        with self._lock:
            self._enter("active")
            self._notice_outside(model, segment)
            return {s: p for (m, s), p in self._pointers.items() if m == model and segment in (None, s)}

    def models(self) -> list[str]:
        with self._lock:
            self._enter("models")
            return sorted({m for m, _, _ in self._versions} | {m for m, _ in self._pointers})

    def activate(self, model: str, segment: str, version: int, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        with self._lock:
            self._require(model, segment, version, "activate")
            return self._set_primary(model, segment, version, "activate", actor, reason)

    def rollback(self, model: str, segment: str, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        with self._lock:
            self._notice_outside(model, segment)
            target = rules.rollback_target(reversed(self._log.get((model, segment), [])))
            if target is None:
                raise NotFound(f"cannot roll back {rules.where(model, segment)}: no activation to undo in its log")
            if target.from_version is None:
                raise StoreError(f"cannot roll back {rules.where(model, segment)}: version {target.to_version} was "
                                 f"its first activation, there is nothing earlier")
            self._require(model, segment, target.from_version, "roll back to")
            return self._set_primary(model, segment, target.from_version, "rollback", actor, reason)

    def canary(self, model: str, segment: str, version: int, fraction: float, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        with self._lock:
            fraction = rules.check_fraction(fraction)
            self._require(model, segment, version, "canary")
            current = self._live(model, segment, version, "canary")
            actor, reason = rules.who_and_why(actor, reason)
            entry = Activation(model, segment, rules.now_ms(), actor, "canary", current.version, current.version,
                               version, fraction, reason)
            return self._change(entry, replace(current, canary_version=version, canary_fraction=fraction))

    def promote(self, model: str, segment: str, *, actor: str | None = None,
                reason: str | None = None) -> Activation:
        with self._lock:
            current = self._pointers.get((model, segment))
            if current is None or current.canary_version is None:
                raise StoreError(f"cannot promote {rules.where(model, segment)}: it has no canary")
            return self._set_primary(model, segment, current.canary_version, "promote", actor, reason)

    def retire_canary(self, model: str, segment: str, *, actor: str | None = None,
                      reason: str | None = None) -> Activation:
        with self._lock:
            current = self._pointers.get((model, segment))
            if current is None or current.canary_version is None:
                raise StoreError(f"cannot retire the canary of {rules.where(model, segment)}: it has no canary")
            actor, reason = rules.who_and_why(actor, reason)
            entry = Activation(model, segment, rules.now_ms(), actor, "retire", current.version, current.version,
                               current.canary_version, current.canary_fraction, reason)
            return self._change(entry, replace(current, canary_version=None, canary_fraction=None))

    def shadow(self, model: str, segment: str, version: int | None, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        with self._lock:
            current = self._pointers.get((model, segment))
            if version is not None:
                self._require(model, segment, version, "shadow")
                current = self._live(model, segment, version, "shadow")
            elif current is None or current.shadow_version is None:
                raise StoreError(f"cannot clear the shadow of {rules.where(model, segment)}: it has no shadow")
            actor, reason = rules.who_and_why(actor, reason)
            entry = Activation(model, segment, rules.now_ms(), actor, "shadow", current.version, current.version,
                               version, None, reason)
            return self._change(entry, replace(current, shadow_version=version))

    def release(self, model: str, mapping: dict[str, int], *, actor: str | None = None,
                reason: str | None = None) -> str:
        with self._lock:
            if not isinstance(mapping, dict) or not mapping:
                raise ConfigError(f"release {model}: give at least one segment -> version")
            missing = [f"{s} v{v}" for s, v in mapping.items() if (model, s, v) not in self._versions]
            if missing:
                raise NotFound(f"release {model}: {len(missing)} of {len(mapping)} versions do not exist or are not "
                               f"complete: {', '.join(missing[:10])}")
            release_id = str(uuid.uuid4())
            for segment, version in mapping.items():
                self._set_primary(model, segment, version, "release", actor, reason, release_id)
            return release_id

    def prune(self, model: str, segment: str | None = None, *, keep: int) -> list[tuple[str, int]]:
        with self._lock:
            rules.prune_plan([], (), keep)
            segments = sorted({s for m, s, _ in self._versions if m == model and segment in (None, s)})
            from scorer.ensemble import live_references  # versions live ensembles use are kept

            needed = live_references(self, model)
            doomed: list[tuple[str, int]] = []
            for seg in segments:
                newest_first = sorted((v for m, s, v in self._versions if (m, s) == (model, seg)), reverse=True)
                pointer = self._pointers.get((model, seg))
                protected = [pointer.version, pointer.canary_version, pointer.shadow_version] if pointer else []
                protected.extend(v for s, v in needed if s == seg)
                target = rules.rollback_target(reversed(self._log.get((model, seg), [])))
                if target is not None:
                    protected.append(target.from_version)
                doomed.extend((seg, v) for v in rules.prune_plan(newest_first, protected, keep))
            for seg, version in doomed:
                del self._versions[(model, seg, version)]
            return sorted(doomed)

    def activations(self, model: str, segment: str | None = None, limit: int = 50) -> list[Activation]:
        with self._lock:
            self._enter("activations")
            self._notice_outside(model, segment)
            entries = [(e.at, i, e) for (m, s), log in self._log.items() if m == model and segment in (None, s)
                       for i, e in enumerate(log)]
        return [e for _, _, e in sorted(entries, key=lambda t: t[:2], reverse=True)][:limit]

    def close(self) -> None:
        """Nothing to release; kept for the protocol."""

    # ------------------------------------------------------------------ helpers

    def _require(self, model: str, segment: str, version: int, action: str) -> None:
        self._enter(action.replace(" ", "_"))
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        if (model, segment, version) not in self._versions:
            raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: no such complete version")

    def _live(self, model: str, segment: str, version: int, action: str) -> ActiveModel:
        current = self._pointers.get((model, segment))
        if current is None or current.version is None:
            raise StoreError(f"cannot {action} {rules.where(model, segment, version)}: the segment has no active "
                             f"version to run beside; activate one first")
        if current.version == version:
            raise ConfigError(f"cannot {action} {rules.where(model, segment, version)}: it is already the active "
                              f"version")
        return current

    def _set_primary(self, model: str, segment: str, version: int, action: str, actor: str | None,
                     reason: str | None, release_id: str | None = None) -> Activation:
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointers.get((model, segment))
        clear = current is None or current.canary_version in (None, version)
        entry = Activation(model, segment, rules.now_ms(), actor, action, current.version if current else None,
                           version, None if clear else current.canary_version,
                           None if clear else current.canary_fraction, reason, release_id)
        base = current or ActiveModel(model, segment, None, None, None, None, None)
        pointer = replace(base, version=version)
        if clear:
            pointer = replace(pointer, canary_version=None, canary_fraction=None)
        return self._change(entry, pointer)

    def _change(self, entry: Activation, pointer: ActiveModel) -> Activation:
        at: datetime = entry.at
        self._notice_outside(entry.model, entry.segment)  # as the Cassandra store's read before a write does
        self._pointers[(entry.model, entry.segment)] = replace(pointer, updated_at=at, outside_at=None)
        self._log.setdefault((entry.model, entry.segment), []).append(entry)
        return entry
