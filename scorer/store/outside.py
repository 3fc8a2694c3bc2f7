"""Pointer changes made outside scorer (a raw CQL ``UPDATE`` of ``active_models``): found on every read of the
pointers and logged once as ``external`` activations (see ``rules.outside_change`` for how they are told apart).

A mixin of :class:`scorer.store.cassandra.CassandraModelStore`, which provides the session, the prepared
statements, ``_execute`` and ``_log_params``/``_activation`` (from :class:`scorer.store.pointers.Pointers`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cassandra.util import uuid_from_time

from scorer.errors import StoreError

from . import rules
from .base import Activation, ActiveModel
from .cql import aware

log = logging.getLogger("scorer.store.cassandra")


class OutsideChanges:
    """Reading pointer rows into ActiveModels, and logging the changes someone else made to them."""

    _outside_seen: dict[tuple[str, str], tuple[int, Any]]
    _pointer_rows: dict[str, dict[str, tuple[tuple, ActiveModel]]]
    _q: dict[str, Any]
    _execute: Any
    _activation: Any
    _log_params: Any

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



def _node(model: str, segment: str) -> int:
    """The 48-bit node of an outside change's log id: the same for every reader of the same segment."""
    return int.from_bytes(hashlib.sha256(f"{model}/{segment}".encode()).digest()[:6], "big") | 0x010000000000
