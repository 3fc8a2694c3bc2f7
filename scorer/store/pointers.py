"""Live pointers in Cassandra: reads of the activation log, pointer changes with their log entry, release, prune.

A mixin of :class:`scorer.store.cassandra.CassandraModelStore`, which provides the session, the prepared
statements and the request plumbing (``_execute``, ``_concurrent``, ``_all_ok``, ``_rows``, ``_error``).
A pointer change and its log entry are written in one logged batch: both land or neither.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from cassandra.query import BatchStatement, BatchType
from cassandra.util import uuid_from_time

from scorer.errors import ConfigError, NotFound, StoreError

from . import rules
from .base import Activation, ActiveModel, Progress, VersionInfo, default_actor
from .claims import batch_not_applied
from .cql import COMPLETE, ORPHAN_GRACE, aware, in_groups

log = logging.getLogger("scorer.store.cassandra")


class Pointers:
    """The activation log, pointer changes, release and prune of the Cassandra store."""

    def activations(self, model: str, segment: str | None = None, limit: int = 50) -> list[Activation]:
        """The activation log, newest first (for a whole model: merged across its segments)."""
        rules.check_model(model)
        self.active(model, segment)  # records changes made outside scorer before the log is read
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be a positive whole number; got {limit!r}")
        segments = [rules.check_segment(segment)] if segment is not None else self._segments(model)
        results = self._all_ok(
            self._concurrent([(self._q["activations"], (model, seg, limit)) for seg in segments]), segments,
            f"read activation log of {model}/")
        entries = [self._activation(row) for seg, result in zip(segments, results, strict=True)
                   for row in self._rows(result, f"read activation log of {rules.where(model, seg)}")]
        entries.sort(key=lambda entry: (entry.at, entry.segment), reverse=True)
        return entries[:limit]

    @staticmethod
    def _activation(row: Any) -> Activation:
        return Activation(row.model, row.segment, aware(row.at), row.actor, row.action, row.from_version,
                          row.to_version, row.canary_version, row.canary_fraction, row.reason, row.release_id)

    def _log(self, model: str, segment: str) -> Iterator[Activation]:
        what = f"read activation log of {rules.where(model, segment)}"
        result = self._execute(self._q["activation_log"], (model, segment), what)
        return (self._activation(row) for row in self._rows(result, what))


    # ------------------------------------------------------------------ changes made outside scorer

    def _pointers_of(self, model: str, rows: Iterable[Any], whole: bool = True) -> dict[str, ActiveModel]:
        """Pointer rows as ActiveModels, recording on the log any change made outside scorer (once per change).

        A poll reads the whole partition every interval and almost nothing changes: a row whose values and
        write times are those of the last read reuses that read's ActiveModel (10,000 rows: ~10 ms, not ~130).
        """
        known = self._pointer_rows.get(model, {})
        fresh = {} if whole else dict(known)
        out = {}
        for row in rows:
            signature = (row.version, row.canary_version, row.canary_fraction, row.shadow_version, row.w_version,
                         row.w_canary, row.w_fraction, row.w_shadow, row.w_updated)
            hit = known.get(row.segment)
            if hit is not None and hit[0] == signature:
                pointer = hit[1]
            else:
                outside = None
                updated_at = aware(row.updated_at)
                change = rules.outside_change(signature[4:8], row.w_updated, updated_at)
                if change is not None:
                    outside = self._outside(model, row, *change)
                pointer = ActiveModel(model, row.segment, row.version, row.canary_version, row.canary_fraction,
                                      row.shadow_version, updated_at, outside)
            fresh[row.segment] = (signature, pointer)
            out[row.segment] = pointer
        self._pointer_rows[model] = fresh
        return out

    def _outside(self, model: str, row: Any, written: int, certain: bool) -> datetime | None:
        """When the row's last change was made outside scorer (None: scorer made it), logging it if nobody has.

        Every reader of the row (workers, CLI) may find the change; the entry's key (the change's write time
        and an id derived from it) is the same for all of them, so it is written once however many record it.
        """
        key = (model, row.segment)
        seen = self._outside_seen.get(key)
        if seen is not None and seen[0] == written:
            return seen[1]
        at = datetime.fromtimestamp(written // 1000 / 1000, UTC)
        what = f"read activation log of {rules.where(model, row.segment)}"
        previous = self._execute(self._q["activation_log_upto"], (model, row.segment, at), what).one()
        previous = self._activation(previous) if previous is not None else None
        if not certain and previous is not None and previous.action != rules.OUTSIDE \
                and previous.at == aware(row.updated_at):
            self._outside_seen[key] = (written, None)  # scorer's own write, from before it set write times
            return None
        if previous is None or previous.action != rules.OUTSIDE or previous.at != at:
            entry = Activation(model, row.segment, at, rules.OUTSIDE_ACTOR, rules.OUTSIDE,
                               previous.to_version if previous is not None else None, row.version,
                               row.canary_version, row.canary_fraction,
                               f"active_models row written outside scorer (WRITETIME {written})")
            entry_id = uuid_from_time(written / 1e6, node=_node(model, row.segment), clock_seq=written % 0x3FFF)
            try:
                self._execute(self._q["log_activation"], self._log_params(entry, entry_id),
                              f"log outside change of {rules.where(model, row.segment)}")
            except StoreError as exc:  # a read-only role: the next reader with write access records it
                if seen is None or seen[0] != written:
                    log.warning("%s was changed outside scorer at %s; could not log it: %s",
                                rules.where(model, row.segment), at.isoformat(), exc)
                self._outside_seen[key] = (written, at)
                return at
            log.info("%s was changed outside scorer at %s (version %s); logged as %r",
                     rules.where(model, row.segment), at.isoformat(), row.version, rules.OUTSIDE)
        self._outside_seen[key] = (written, at)
        return at

    # ------------------------------------------------------------------ pointers

    def _require_version(self, model: str, segment: str, version: int, action: str) -> VersionInfo:
        info = self.version_info(model, segment, version)
        if info is not None:
            return info
        # Only on the error path: say whether the model, the segment or just that version is unknown.
        if self._execute(self._q["any_segment"], (model,), f"look up model {model}").one() is None \
                and not self.active(model):
            raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: unknown model {model!r}")
        newest = self._execute(self._q["newest_version"], (model, segment),
                               f"look up {rules.where(model, segment)}").one()
        if newest is None:
            raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: segment {segment!r} of {model} "
                           f"has no versions")
        raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: no such complete version "
                       f"(newest is {newest.version})")

    def _pointer(self, model: str, segment: str) -> ActiveModel | None:
        return self.active(model, segment).get(segment)

    def _change(self, entry: Activation, pointer_update: tuple[str, tuple[Any, ...]]) -> Activation:
        """Write a pointer update and its log entry in one logged batch: both land or neither."""
        name, params = pointer_update
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._q[name], (rules.epoch_micros(entry.at), *params))
        batch.add(self._q["log_activation"], self._log_params(entry, uuid_from_time(entry.at.timestamp())))
        what = f"{entry.action} {rules.where(entry.model, entry.segment, entry.to_version)}"
        try:
            self._session.execute(batch)
        except Exception as exc:  # mapped below
            if not (self.settings.cassandra_downgrade and batch_not_applied(exc)):
                raise self._error(exc, what) from exc
            # A logged batch needs its batchlog on a second live node; with two nodes and one down there is
            # none, and the batch failed before writing anything. Unlogged, both rows still go to the live
            # replica; only a coordinator crash between them could split them (cassandra_downgrade).
            log.warning("%s: logged batch refused (%s); writing it unlogged (cassandra_downgrade)", what,
                        type(exc).__name__)
            batch.batch_type = BatchType.UNLOGGED
            self._execute(batch, None, what)
        return entry

    @staticmethod
    def _log_params(entry: Activation, entry_id: uuid.UUID) -> tuple[Any, ...]:
        return (entry.model, entry.segment, entry.at, entry_id, entry.actor, entry.action, entry.from_version,
                entry.to_version, entry.canary_version, entry.canary_fraction, entry.reason, entry.release_id)

    def activate(self, model: str, segment: str, version: int, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        """Make a complete version the segment's primary (a canary of that same version is cleared)."""
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        actor, reason = rules.who_and_why(actor, reason)
        self._require_version(model, segment, version, "activate")
        return self._set_primary(model, segment, version, "activate", actor, reason)

    def _set_primary(self, model: str, segment: str, version: int, action: str, actor: str,
                     reason: str | None) -> Activation:
        current = self._pointer(model, segment)
        clear = current is None or current.canary_version in (None, version)
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, action, current.version if current else None, version,
                           None if clear else current.canary_version, None if clear else current.canary_fraction,
                           reason)
        name = "set_primary_clear_canary" if clear else "set_primary"
        return self._change(entry, (name, (version, at, actor, reason, model, segment)))

    def rollback(self, model: str, segment: str, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        """Return the segment to the version it had before its last activation (rollbacks stack)."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        self._pointer(model, segment)  # records a change made outside scorer first: rollback undoes it
        target = rules.rollback_target(self._log(model, segment))
        if target is None:
            raise NotFound(f"cannot roll back {rules.where(model, segment)}: no activation to undo in its log")
        if target.from_version is None:
            raise StoreError(f"cannot roll back {rules.where(model, segment)}: version {target.to_version} was its "
                             f"first activation ({target.at:%Y-%m-%d %H:%M:%S} UTC), there is nothing earlier")
        self._require_version(model, segment, target.from_version, "roll back to")
        return self._set_primary(model, segment, target.from_version, "rollback", actor, reason)

    def canary(self, model: str, segment: str, version: int, fraction: float, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        """Serve ``version`` to a ``fraction`` (0 < f < 1) of the segment's traffic beside the primary."""
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        fraction = rules.check_fraction(fraction)
        actor, reason = rules.who_and_why(actor, reason)
        self._require_version(model, segment, version, "canary")
        current = self._pointer(model, segment)
        if current is None or current.version is None:
            raise StoreError(f"cannot canary {rules.where(model, segment, version)}: the segment has no active version "
                             f"to run beside; activate one first")
        if current.version == version:
            raise ConfigError(f"cannot canary {rules.where(model, segment, version)}: it is already the active version")
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, "canary", current.version, current.version, version, fraction,
                           reason)
        return self._change(entry, ("set_canary", (version, fraction, at, actor, reason, model, segment)))

    def promote(self, model: str, segment: str, *, actor: str | None = None,
                reason: str | None = None) -> Activation:
        """Make the canary the primary version and clear the canary."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if current is None or current.canary_version is None:
            raise StoreError(f"cannot promote {rules.where(model, segment)}: it has no canary")
        self._require_version(model, segment, current.canary_version, "promote")
        return self._set_primary(model, segment, current.canary_version, "promote", actor, reason)

    def retire_canary(self, model: str, segment: str, *, actor: str | None = None,
                      reason: str | None = None) -> Activation:
        """End the canary without promoting it: the primary serves all traffic again (logged as ``retire``)."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if current is None or current.canary_version is None:
            raise StoreError(f"cannot retire the canary of {rules.where(model, segment)}: it has no canary")
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, "retire", current.version, current.version,
                           current.canary_version, current.canary_fraction, reason)
        return self._change(entry, ("clear_canary", (at, actor, reason, model, segment)))

    def shadow(self, model: str, segment: str, version: int | None, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        """Score ``version`` on all of the segment's events beside the primary, outputs to the shadow topic only;
        ``None`` clears the shadow.

        Logged as action ``shadow`` with the shadow version in ``canary_version`` (None when cleared) and no
        fraction: a shadow takes no traffic, it only watches it.
        """
        rules.check_model(model)
        rules.check_segment(segment)
        if version is not None:
            rules.check_version(version)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if version is not None:
            self._require_version(model, segment, version, "shadow")
            if current is None or current.version is None:
                raise StoreError(f"cannot shadow {rules.where(model, segment, version)}: the segment has no active "
                                 f"version to run beside; activate one first")
            if current.version == version:
                raise ConfigError(f"cannot shadow {rules.where(model, segment, version)}: it is already the active "
                                  "version")
        elif current is None or current.shadow_version is None:
            raise StoreError(f"cannot clear the shadow of {rules.where(model, segment)}: it has no shadow")
        at = rules.now_ms()
        live = current.version if current is not None else None
        entry = Activation(model, segment, at, actor, "shadow", live, live, version, None, reason)
        return self._change(entry, ("set_shadow", (version, at, actor, reason, model, segment)))

    def release(self, model: str, mapping: dict[str, int], *, actor: str | None = None,
                reason: str | None = None) -> str:
        """Switch many segments of one model together (one single-partition batch); return the release id."""
        rules.check_model(model)
        if not isinstance(mapping, dict) or not mapping:
            raise ConfigError(f"release {model}: give at least one segment -> version")
        for segment, version in mapping.items():
            rules.check_segment(segment)
            rules.check_version(version, f"version of segment {segment!r}")
        actor, reason = rules.who_and_why(actor, reason)
        groups = in_groups([(model, seg, v) for seg, v in mapping.items()], lambda key: 1, limit=None)
        results = self._all_ok(self._concurrent([(self._q["versions_in"], (model, segs, version))
                                                 for (_, version), segs in groups]),
                               [f"{segs[0]} version {version}" for (_, version), segs in groups],
                               f"check release of {model}/")
        complete = {(row.segment, row.version) for result in results
                    for row in self._rows(result, f"check release of {model}") if row.status == COMPLETE}
        missing = [f"{seg} v{v}" for seg, v in mapping.items() if (seg, v) not in complete]
        items = list(mapping.items())
        if missing:
            raise NotFound(f"release {model}: {len(missing)} of {len(items)} versions do not exist or are not "
                           f"complete: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return self._release(model, dict(mapping), actor=actor, reason=reason)

    def latest(self, model: str) -> dict[str, int]:
        """Every segment's newest complete version (for ``release --latest``)."""
        rules.check_model(model)
        segments = self._segments(model)
        results = self._all_ok(self._concurrent([(self._q["version_numbers"], (model, seg)) for seg in segments]),
                               segments, f"find newest versions of {model}/")
        newest: dict[str, int] = {}
        for seg, result in zip(segments, results, strict=True):
            for row in self._rows(result, f"find newest version of {rules.where(model, seg)}"):
                if row.status == COMPLETE:
                    newest[seg] = row.version
                    break
        return newest

    def _release(self, model: str, mapping: dict[str, int], *, actor: str | None, reason: str | None,
                 progress: Progress | None = None) -> str:
        actor = actor or default_actor()
        current = self.active(model)
        release_id = str(uuid.uuid4())
        at = rules.now_ms()
        # Same partition for every row: Cassandra applies the whole batch atomically and in isolation.
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        entries = []
        for segment, version in mapping.items():
            pointer = current.get(segment)
            clear = pointer is None or pointer.canary_version in (None, version)
            name = "set_primary_clear_canary" if clear else "set_primary"
            batch.add(self._q[name], (rules.epoch_micros(at), version, at, actor, reason, model, segment))
            entries.append(Activation(
                model, segment, at, actor, "release", pointer.version if pointer else None, version,
                None if clear else pointer.canary_version, None if clear else pointer.canary_fraction,
                reason, release_id))
        self._execute(batch, None, f"release {release_id} of {model} ({len(mapping)} segments)")
        work = [(self._q["log_activation"], self._log_params(entry, uuid_from_time(at.timestamp())))
                for entry in entries]
        failures = [result for ok, result in self._concurrent(work, progress, "activate") if not ok]
        if failures:
            error = self._error(failures[0], f"log release {release_id} of {model}")
            raise StoreError(f"release {release_id} of {model} is live, but {len(failures)} of its {len(work)} log "
                             f"entries were not written: {error}") from failures[0]
        return release_id

    # ------------------------------------------------------------------ prune

    def prune(self, model: str, segment: str | None = None, *, keep: int) -> list[tuple[str, int]]:
        """Delete versions (row, then chunks) beyond the newest ``keep`` per segment.

        Never deleted: the active, canary and shadow versions, the version a rollback would return to, and
        every version a live ensemble references (of any model).
        Also removes the chunks of publishes that crashed before their version row (older than an hour).
        """
        rules.check_model(model)
        rules.prune_plan([], (), keep)  # validates keep before anything is read
        segments = [rules.check_segment(segment)] if segment is not None else self._segments(model)
        from scorer.ensemble import live_references  # versions that live ensembles reference are kept

        needed = live_references(self, model)
        pointers = self.active(model)
        names = ("version_numbers", "claims", "activation_log")
        reads = self._concurrent([(self._q[name], (model, seg)) for seg in segments for name in names])
        results = self._all_ok(reads, [seg for seg in segments for _ in names], f"read versions of {model}/")
        doomed: list[tuple[str, int]] = []
        suspects: list[tuple[str, int]] = []
        horizon = rules.now_ms() - ORPHAN_GRACE
        for index, seg in enumerate(segments):
            versions_rs, claims_rs, log_rs = results[3 * index:3 * index + 3]
            complete = [row.version for row in self._rows(versions_rs, f"read {rules.where(model, seg)}")
                        if row.status == COMPLETE]
            pointer = pointers.get(seg)
            protected = [pointer.version, pointer.canary_version, pointer.shadow_version] if pointer else []
            protected.extend(v for s, v in needed if s == seg)
            log_what = f"read activation log of {rules.where(model, seg)}"
            target = rules.rollback_target(self._activation(row) for row in self._rows(log_rs, log_what))
            if target is not None:
                protected.append(target.from_version)
            plan = rules.prune_plan(complete, protected, keep)
            doomed.extend((seg, version) for version in plan)
            kept = [version for version in complete if version not in plan]
            floor = min(kept) if kept else 0
            for row in self._rows(claims_rs, f"read claims of {rules.where(model, seg)}"):
                claimed_at = aware(row.claimed_at)
                if (row.version > floor and row.version not in complete and claimed_at is not None
                        and claimed_at < horizon):
                    suspects.append((seg, row.version))
        probes = self._all_ok(self._concurrent([(self._q["any_chunk"], (model, seg, v)) for seg, v in suspects]),
                              [f"{seg} version {v}" for seg, v in suspects], f"look for orphan chunks of {model}/")
        orphans = [key for key, result in zip(suspects, probes, strict=True) if result.one() is not None]
        # Version rows go first, so no reader trusts a version whose chunks are about to disappear.
        self._all_ok(self._concurrent([(self._q["delete_version"], (model, seg, v)) for seg, v in doomed]),
                     [f"{seg} version {v}" for seg, v in doomed], f"prune {model}/")
        gone = doomed + orphans
        self._all_ok(self._concurrent([(self._q["delete_chunks"], (model, seg, v)) for seg, v in gone]),
                     [f"{seg} version {v}" for seg, v in gone], f"prune chunks of {model}/")
        return sorted(gone)


def _node(model: str, segment: str) -> int:
    """The 48-bit node of an outside change's log id: the same for every reader of the same segment."""
    return int.from_bytes(hashlib.sha256(f"{model}/{segment}".encode()).digest()[:6], "big") | 0x010000000000
