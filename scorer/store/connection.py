"""Open a cassandra-driver session from settings: protocol v5, auth and TLS from configuration only."""

from __future__ import annotations

import logging
import re
import ssl

from cassandra import AuthenticationFailed, ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RetryPolicy,
    TokenAwarePolicy,
    WriteType,
)

from scorer.config import Settings
from scorer.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.cassandra_ca is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(settings.cassandra_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use SCORER_CASSANDRA_CA {str(settings.cassandra_ca)!r}: {exc}") from None
    # Node addresses are usually IPs in the certificate's SAN; the driver passes them as server_hostname.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class DowngradingRetryPolicy(RetryPolicy):
    """``cassandra_downgrade``: when live replicas cannot meet the consistency asked for, settle for what they
    can give, once, instead of failing (availability over consistency; for small clusters such as RF 2).

    Like the driver's deprecated DowngradingConsistencyRetryPolicy, except that lightweight transactions are
    never retried (Paxos needs its quorum whatever we do; the store decides what to do instead), and LOCAL_*
    levels stay local.
    """

    def _downgrade(self, consistency: int, live: int) -> tuple[int, int | None]:
        if live >= 3:
            return self.RETRY, ConsistencyLevel.THREE
        if live == 2:
            return self.RETRY, ConsistencyLevel.TWO
        if live == 1:
            local = consistency in (ConsistencyLevel.LOCAL_QUORUM, ConsistencyLevel.LOCAL_ONE)
            return self.RETRY, ConsistencyLevel.LOCAL_ONE if local else ConsistencyLevel.ONE
        return self.RETHROW, None

    def on_unavailable(self, query: object, consistency: int, required_replicas: int, alive_replicas: int,
                       retry_num: int) -> tuple[int, int | None]:
        if retry_num != 0 or ConsistencyLevel.is_serial(consistency):
            return self.RETHROW, None
        return self._downgrade(consistency, alive_replicas)

    def on_read_timeout(self, query: object, consistency: int, required_responses: int, received_responses: int,
                        data_retrieved: bool, retry_num: int) -> tuple[int, int | None]:
        if retry_num != 0 or ConsistencyLevel.is_serial(consistency):
            return self.RETHROW, None
        if received_responses < required_responses:
            return self._downgrade(consistency, received_responses)
        return (self.RETRY, consistency) if not data_retrieved else (self.RETHROW, None)

    def on_write_timeout(self, query: object, consistency: int, write_type: int, required_responses: int,
                         received_responses: int, retry_num: int) -> tuple[int, int | None]:
        if retry_num != 0:
            return self.RETHROW, None
        if write_type in (WriteType.SIMPLE, WriteType.BATCH) and received_responses > 0:
            return self.IGNORE, None  # durable on a replica; hints or repair bring it to the others
        if write_type == WriteType.UNLOGGED_BATCH:
            return self._downgrade(consistency, received_responses)
        # BATCH_LOG: the batchlog replica is gone; nothing was applied and the store rewrites the batch
        # unlogged. CAS (LWT): the outcome is unknown; the store settles it.
        return self.RETHROW, None


def build_cluster(settings: Settings) -> Cluster:
    """A configured but not yet connected Cluster."""
    consistency = ConsistencyLevel.name_to_value[settings.cassandra_consistency]
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=consistency,
        serial_consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_serial_consistency],
        request_timeout=settings.cassandra_request_timeout,
        retry_policy=DowngradingRetryPolicy() if settings.cassandra_downgrade else RetryPolicy(),
    )
    auth = None
    if settings.cassandra_user is not None and settings.cassandra_password is not None:
        auth = PlainTextAuthProvider(settings.cassandra_user, settings.cassandra_password.get_secret_value())
    context = _ssl_context(settings)
    return Cluster(
        contact_points=settings.cassandra_hosts,
        port=settings.cassandra_port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        ssl_context=context,
        ssl_options={"check_hostname": True} if context is not None else None,
        connect_timeout=settings.cassandra_connect_timeout,
        control_connection_timeout=settings.cassandra_connect_timeout,
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0),
        idle_heartbeat_interval=10,
    )


def describe_failure(settings: Settings, exc: BaseException) -> str:
    """One line naming the hosts tried and why, with no secret in it."""
    hosts = ", ".join(f"{host}:{settings.cassandra_port}" for host in settings.cassandra_hosts)
    tls = settings.cassandra_ca is not None
    if isinstance(exc, NoHostAvailable) and exc.errors:
        reasons = {type(err).__name__ if not isinstance(err, AuthenticationFailed) else "authentication failed"
                   for err in exc.errors.values()}
        detail = "; ".join(sorted(_short_reason(err, tls) for err in exc.errors.values())) or ", ".join(sorted(reasons))
        return f"cannot reach Cassandra at {hosts}: {detail}"
    return f"cannot reach Cassandra at {hosts}: {_short_reason(exc, tls)}"


_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^(]+?)\s*(?:\(_ssl|$)")


def _short_reason(err: BaseException, tls: bool = True) -> str:
    text = str(err)
    if "requires authentication" in text:
        return "the server requires authentication; set SCORER_CASSANDRA_USER and SCORER_CASSANDRA_PASSWORD"
    if isinstance(err, AuthenticationFailed) or "AuthenticationFailed" in repr(err) or "Bad credentials" in text:
        return "authentication failed (check SCORER_CASSANDRA_USER/SCORER_CASSANDRA_PASSWORD)"
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(err, ssl.SSLCertVerificationError):
        match = _VERIFY_FAILED.search(text)
        reason = match.group(1) if match else "certificate verify failed"
        return f"TLS certificate not trusted ({reason}); check SCORER_CASSANDRA_CA"
    if isinstance(err, ssl.SSLError) or "SSL" in type(err).__name__:
        return f"TLS handshake failed ({text.splitlines()[0][:160]}); check SCORER_CASSANDRA_CA"
    if isinstance(err, ConnectionResetError):
        return "connection reset by the server" if tls else (
            "connection reset by the server (does it require TLS? set SCORER_CASSANDRA_CA)")
    text = text.splitlines()[0] if text else type(err).__name__
    return text[:200]


def connect(settings: Settings, keyspace: str | None = None) -> tuple[Cluster, Session]:
    """Connect or raise StoreUnavailable naming the hosts; the caller owns ``cluster.shutdown()``."""
    cluster = build_cluster(settings)
    try:
        session = cluster.connect(keyspace)
    except Exception as exc:  # noqa: BLE001 - every connect failure is reported as one line
        cluster.shutdown()
        raise StoreUnavailable(describe_failure(settings, exc)) from None
    return cluster, session
