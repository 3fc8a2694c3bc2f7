"""cassandra_downgrade's retry policy: settle for what live replicas give, once; never for LWTs."""

from __future__ import annotations

from cassandra import ConsistencyLevel as CL
from cassandra.policies import RetryPolicy, WriteType

from scorer.config import load_settings
from scorer.store.connection import DowngradingRetryPolicy, build_cluster

policy = DowngradingRetryPolicy()


def test_unavailable_downgrades_to_the_live_replicas() -> None:
    assert policy.on_unavailable(None, CL.QUORUM, 2, 1, 0) == (RetryPolicy.RETRY, CL.ONE)
    assert policy.on_unavailable(None, CL.LOCAL_QUORUM, 2, 1, 0) == (RetryPolicy.RETRY, CL.LOCAL_ONE)
    assert policy.on_unavailable(None, CL.ALL, 3, 2, 0) == (RetryPolicy.RETRY, CL.TWO)
    assert policy.on_unavailable(None, CL.QUORUM, 2, 0, 0) == (RetryPolicy.RETHROW, None)
    assert policy.on_unavailable(None, CL.QUORUM, 2, 1, 1) == (RetryPolicy.RETHROW, None)  # only once


def test_lightweight_transactions_are_never_downgraded() -> None:
    assert policy.on_unavailable(None, CL.LOCAL_SERIAL, 2, 1, 0) == (RetryPolicy.RETHROW, None)
    assert policy.on_read_timeout(None, CL.SERIAL, 2, 1, False, 0) == (RetryPolicy.RETHROW, None)
    assert policy.on_write_timeout(None, CL.QUORUM, WriteType.CAS, 2, 1, 0) == (RetryPolicy.RETHROW, None)


def test_timeouts() -> None:
    assert policy.on_read_timeout(None, CL.QUORUM, 2, 1, True, 0) == (RetryPolicy.RETRY, CL.ONE)
    assert policy.on_read_timeout(None, CL.QUORUM, 2, 2, False, 0) == (RetryPolicy.RETRY, CL.QUORUM)
    assert policy.on_write_timeout(None, CL.QUORUM, WriteType.SIMPLE, 2, 1, 0) == (RetryPolicy.IGNORE, None)
    assert policy.on_write_timeout(None, CL.QUORUM, WriteType.SIMPLE, 2, 0, 0) == (RetryPolicy.RETHROW, None)
    assert policy.on_write_timeout(None, CL.QUORUM, WriteType.UNLOGGED_BATCH, 2, 1, 0) == (RetryPolicy.RETRY, CL.ONE)
    assert policy.on_write_timeout(None, CL.QUORUM, WriteType.BATCH_LOG, 2, 1, 0) == (RetryPolicy.RETHROW, None)


def test_settings_choose_the_policy_and_serial_consistency() -> None:
    plain = build_cluster(load_settings()).profile_manager.default
    assert type(plain.retry_policy) is RetryPolicy and plain.serial_consistency_level == CL.LOCAL_SERIAL
    two_node = build_cluster(load_settings(cassandra_downgrade=True, cassandra_serial_consistency="SERIAL",
                                           cassandra_consistency="QUORUM")).profile_manager.default
    assert isinstance(two_node.retry_policy, DowngradingRetryPolicy)
    assert two_node.serial_consistency_level == CL.SERIAL and two_node.consistency_level == CL.QUORUM
