"""Which driver failures mean "nothing was written", the condition both fallbacks of a degraded cluster rely on."""

from __future__ import annotations

from cassandra import ConsistencyLevel, OperationTimedOut, Unavailable, WriteTimeout, WriteType
from cassandra.cluster import NoHostAvailable

from scorer.store.claims import batch_not_applied, replicas_unavailable


def _unavailable() -> Unavailable:
    return Unavailable("Cannot achieve consistency level LOCAL_SERIAL", consistency=ConsistencyLevel.LOCAL_SERIAL,
                       required_replicas=2, alive_replicas=1)


def _timeout(write_type: int) -> WriteTimeout:
    return WriteTimeout("timed out", consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0,
                        write_type=write_type)


def test_unavailable_alone_or_from_every_host() -> None:
    assert replicas_unavailable(_unavailable())
    assert replicas_unavailable(NoHostAvailable("x", {"h1": _unavailable(), "h2": _unavailable()}))
    assert not replicas_unavailable(NoHostAvailable("x", {"h1": _unavailable(), "h2": OperationTimedOut()}))
    assert not replicas_unavailable(NoHostAvailable("x", {}))
    assert not replicas_unavailable(_timeout(WriteType.CAS))  # an LWT timeout has an unknown outcome
    assert not replicas_unavailable(None)


def test_a_batch_is_known_unapplied_only_when_its_batchlog_failed() -> None:
    assert batch_not_applied(_unavailable())
    assert batch_not_applied(_timeout(WriteType.BATCH_LOG))
    assert batch_not_applied(NoHostAvailable("x", {"h1": _timeout(WriteType.BATCH_LOG)}))
    assert not batch_not_applied(_timeout(WriteType.BATCH))  # the batchlog was written: it will be replayed
    assert not batch_not_applied(OperationTimedOut())


def test_lwt_outcome_unknown_covers_timeouts_and_cas_write_unknown() -> None:
    from cassandra.protocol import ErrorMessage

    from scorer.store.claims import lwt_outcome_unknown

    assert lwt_outcome_unknown(_timeout(WriteType.CAS))
    assert lwt_outcome_unknown(OperationTimedOut())
    assert lwt_outcome_unknown(ErrorMessage(0x1700, "CAS operation result is unknown - proposal accepted by 1 "
                                                    "but not a quorum.", None))
    assert not lwt_outcome_unknown(ErrorMessage(0x2200, "invalid", None))
    assert not lwt_outcome_unknown(_unavailable())
