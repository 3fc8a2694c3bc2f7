"""Version claims without Paxos: the ``cassandra_claim_fallback`` path for clusters that lost their LWT quorum.

Why: an LWT needs a majority of the partition's replicas. With RF 2 and one node down that majority is
gone, so ``INSERT ... IF NOT EXISTS`` on ``version_claims`` fails with Unavailable and nothing can be
published. With the fallback on, the store claims the number with a plain write instead:

1. skip numbers that already have a claim row (read at the configured consistency);
2. write the claim row (owner = this publish) with a plain INSERT;
3. wait ``settle`` seconds, then read the row back: the number is ours only if our owner is still there
   (a racing publisher's INSERT to the same number overwrites ours, last write wins, and both read back
   the same winner).

Guarantee: unique as long as a racing claim lands within ``settle`` of ours, which holds for publishers
talking to the surviving replica; it is not linearizable. If two publishers ever did end up with one
number, the version row carries one checksum, chunks from the other do not match it, and every load
refuses the version (ChecksumMismatch) rather than serving mixed weights.

These rows are plain writes in a table otherwise written only by LWTs. That is safe here because a claim
row is written once and never updated: a later ``IF NOT EXISTS`` for the same number reads it (at SERIAL
the read merges replicas) and is not applied.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from cassandra import OperationTimedOut, Unavailable, WriteTimeout, WriteType
from cassandra.cluster import NoHostAvailable, Session

from scorer.errors import StoreError

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.25
MAX_STEPS = 64


def replicas_unavailable(exc: BaseException | None) -> bool:
    """True when Cassandra refused a request up front because too few replicas are alive (nothing was written):
    an LWT without a Paxos quorum, a logged batch without a live batchlog node."""
    if isinstance(exc, Unavailable):
        return True
    if isinstance(exc, NoHostAvailable) and exc.errors:
        return all(isinstance(err, Unavailable) for err in exc.errors.values())
    return False


CAS_WRITE_UNKNOWN = 0x1700
"""Protocol v5 error "CAS operation result is unknown - proposal accepted by 1 but not a quorum" (the driver
has no class for it): like a timed-out LWT, the claim may or may not have been chosen."""


def lwt_outcome_unknown(exc: BaseException) -> bool:
    """True when an LWT may or may not have been applied: a timeout, or Cassandra's CAS_WRITE_UNKNOWN."""
    return isinstance(exc, WriteTimeout | OperationTimedOut) or getattr(exc, "code", None) == CAS_WRITE_UNKNOWN


def batch_not_applied(exc: BaseException) -> bool:
    """True when a logged batch failed before any of its rows was written: no live replicas, or its batchlog
    write timed out (Cassandra sends the mutations only after the batchlog is stored)."""
    if replicas_unavailable(exc):
        return True
    errors = exc.errors.values() if isinstance(exc, NoHostAvailable) and exc.errors else [exc]
    return all(isinstance(err, WriteTimeout) and err.write_type == WriteType.BATCH_LOG for err in errors)


class PlainClaims:
    """Claims version numbers with plain writes; see the module docstring for when and why."""

    def __init__(self, session: Session, keyspace: str, settle: float = SETTLE_SECONDS) -> None:
        self._session = session
        self._settle = settle
        self._owner_of = session.prepare(
            f"SELECT owner FROM {keyspace}.version_claims WHERE model = ? AND segment = ? AND version = ?"  # noqa: S608 - validated keyspace
        )
        self._write = session.prepare(
            f"INSERT INTO {keyspace}.version_claims (model, segment, version, owner, claimed_at) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?)"
        )

    def claim(self, model: str, segment: str, first: int, owner: uuid.UUID,
              now: Callable[[], datetime]) -> int:
        """The first free number from ``first`` on, claimed for ``owner``; driver errors propagate."""
        version = first
        for _ in range(MAX_STEPS):
            row = self._session.execute(self._owner_of, (model, segment, version)).one()
            if row is not None:
                if row.owner == owner:
                    return version
                version += 1
                continue
            self._session.execute(self._write, (model, segment, version, owner, now()))
            time.sleep(self._settle)
            row = self._session.execute(self._owner_of, (model, segment, version)).one()
            if row is not None and row.owner == owner:
                log.warning("claimed %s/%s version %d without Paxos (no LWT quorum; cassandra_claim_fallback): "
                            "unique only while no other publisher writes this segment now", model, segment, version)
                return version
            version += 1
        raise StoreError(f"no free version number for {model}/{segment} in {MAX_STEPS} steps from {first}")
