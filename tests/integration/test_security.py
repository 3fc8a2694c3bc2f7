"""Authentication and encryption against real servers: a Cassandra node with PasswordAuthenticator,
CassandraAuthorizer and mandatory client TLS, and a Kafka broker with SASL/PLAIN over TLS.

Both are throw-away nodes on 127.0.0.3 with free ports and their own state (the dev stack on 127.0.0.1 is
never touched), with certificates made here: a CA, a server certificate with the node's IP in its SANs,
and a second CA that signed nothing (the "untrusted" one). Started once for the module, stopped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cassandra import Unauthorized
from support.net import free_port
from support.store import logistic

from devstack.secure import (
    Authority,
    ServerCert,
    issue_server_cert,
    make_authority,
    secure_cassandra,
    secure_kafka,
)
from devstack.stack import CassandraNode, KafkaNode
from scorer.config import Settings, load_settings
from scorer.errors import BrokerUnavailable, StoreError, StoreUnavailable
from scorer.kafka import aiokafka_options, check_connection, faust_broker_options
from scorer.store import CassandraModelStore
from scorer.store.connection import connect

pytestmark = pytest.mark.slow

ADDRESS = "127.0.0.3"
SCORER = str(Path(sys.executable).parent / "scorer")
SUPERUSER = ("cassandra", "cassandra")  # Cassandra's built-in superuser on a fresh node


@dataclass(frozen=True)
class Pki:
    authority: Authority
    server: ServerCert
    rogue: Authority
    """A CA that signed nothing the servers present."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    authority = make_authority(directory, "scorer-test-ca")
    server = issue_server_cert(authority, directory, [ADDRESS])
    return Pki(authority, server, make_authority(directory / "rogue", "rogue-ca"))


@pytest.fixture(scope="module")
def cassandra_node(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    node = secure_cassandra(tmp_path_factory.mktemp("secure-cassandra"), pki.server, address=ADDRESS,
                            port=free_port(ADDRESS), storage_port=free_port(ADDRESS), heap="512M")
    try:
        assert node.up(), f"{ADDRESS}:{node.port} answered before we started it"
        _wait_for_superuser(node, pki)
        yield node
    finally:
        node.down(quiet=True)


def _wait_for_superuser(node: CassandraNode, pki: Pki) -> None:
    # The built-in superuser is created just after the port opens; give it a moment.
    settings = _settings(node, pki)
    deadline = time.monotonic() + 60
    while True:
        try:
            cluster, _ = connect(settings)
            cluster.shutdown()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def kafka_users() -> dict[str, str]:
    return {"broker": secrets.token_urlsafe(12), "scorer": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def kafka_node(pki: Pki, kafka_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[KafkaNode]:
    node = secure_kafka(tmp_path_factory.mktemp("secure-kafka"), pki.server, kafka_users, address=ADDRESS,
                        port=free_port(ADDRESS), sasl_port=free_port(ADDRESS), controller_port=free_port(ADDRESS),
                        heap="384m")
    try:
        assert node.up(), f"{ADDRESS}:{node.port} answered before we started it"
        yield node
    finally:
        node.down(quiet=True)


def _settings(node: CassandraNode, pki: Pki, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "cassandra_hosts": ADDRESS, "cassandra_port": node.port, "cassandra_user": SUPERUSER[0],
        "cassandra_password": SUPERUSER[1], "cassandra_ca": pki.authority.cert_pem,
        "keyspace": "scorer_secure", "cassandra_connect_timeout": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


def _kafka_settings(node: KafkaNode, pki: Pki, users: dict[str, str], **overrides: object) -> Settings:
    sasl_port = node.extra_listeners["SASL_SSL"][0]
    values: dict[str, object] = {"kafka": f"kafka://{ADDRESS}:{sasl_port}", "kafka_user": "scorer",
                                 "kafka_password": users["scorer"], "kafka_ca": pki.authority.cert_pem}
    values.update(overrides)
    return load_settings(**values)


def _env(settings: Settings) -> dict[str, str]:
    """The subprocess environment: ours without any SCORER_*, plus these settings as SCORER_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCORER_")}
    env.update({
        "SCORER_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
        "SCORER_CASSANDRA_PORT": str(settings.cassandra_port),
        "SCORER_KEYSPACE": settings.keyspace,
        "SCORER_CASSANDRA_CONNECT_TIMEOUT": str(settings.cassandra_connect_timeout),
    })
    if settings.cassandra_user is not None and settings.cassandra_password is not None:
        env["SCORER_CASSANDRA_USER"] = settings.cassandra_user
        env["SCORER_CASSANDRA_PASSWORD"] = settings.cassandra_password.get_secret_value()
    if settings.cassandra_ca is not None:
        env["SCORER_CASSANDRA_CA"] = str(settings.cassandra_ca)
    return env


def scorer(settings: Settings, *args: str, extra_env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    # The timeout is the "fails fast, never hangs" guard: every case here answers within seconds.
    return subprocess.run([SCORER, *args], env={**_env(settings), **(extra_env or {})}, capture_output=True,
                          text=True, timeout=90, check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ Cassandra


def test_cli_applies_schema_over_tls_with_credentials(cassandra_node: CassandraNode, pki: Pki) -> None:
    settings = _settings(cassandra_node, pki)
    result = scorer(settings, "schema", "apply")
    assert result.returncode == 0, result.stderr
    assert "schema applied to keyspace scorer_secure" in result.stdout
    cluster, session = connect(settings)
    try:
        tables = {row.table_name for row in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'scorer_secure'")}
        # The connection really is encrypted: the server lists our session as TLS.
        encrypted = [row.ssl_enabled for row in session.execute("SELECT ssl_enabled FROM system_views.clients")]
    finally:
        cluster.shutdown()
    assert {"schema_migrations", "active_models", "model_versions"} <= tables
    assert encrypted and all(encrypted)


@pytest.mark.parametrize("verbose", [[], ["-vv"]])
def test_wrong_password_fails_with_one_line_and_never_shows_it(cassandra_node: CassandraNode, pki: Pki,
                                                                verbose: list[str]) -> None:
    password = f"wrong-{secrets.token_hex(8)}"
    result = scorer(_settings(cassandra_node, pki, cassandra_password=password), *verbose, "schema", "apply")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [(f"error: cannot reach Cassandra at {ADDRESS}:{cassandra_node.port}: authentication failed "
                       "(check SCORER_CASSANDRA_USER/SCORER_CASSANDRA_PASSWORD)")]
    if not verbose:  # (-vv shows the driver's own debug log, tracebacks included)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    # Not printed, not logged, even at debug level.
    assert password not in result.stdout + result.stderr


def test_missing_credentials_are_named(cassandra_node: CassandraNode, pki: Pki) -> None:
    settings = _settings(cassandra_node, pki, cassandra_user=None, cassandra_password=None)
    line = _one_error_line(scorer(settings, "schema", "apply"))
    assert "the server requires authentication; set SCORER_CASSANDRA_USER and SCORER_CASSANDRA_PASSWORD" in line


def test_untrusted_certificate_fails_with_one_line(cassandra_node: CassandraNode, pki: Pki) -> None:
    settings = _settings(cassandra_node, pki, cassandra_ca=pki.rogue.cert_pem)
    line = _one_error_line(scorer(settings, "schema", "apply"))
    assert line.startswith(f"error: cannot reach Cassandra at {ADDRESS}:{cassandra_node.port}: TLS certificate "
                           "not trusted (")
    assert "check SCORER_CASSANDRA_CA" in line
    with pytest.raises(StoreUnavailable, match="TLS certificate not trusted"):
        connect(settings)


def test_plaintext_client_is_refused_by_a_tls_only_node(cassandra_node: CassandraNode, pki: Pki) -> None:
    settings = _settings(cassandra_node, pki, cassandra_ca=None)
    line = _one_error_line(scorer(settings, "schema", "apply"))
    assert "does it require TLS? set SCORER_CASSANDRA_CA" in line


def test_certificate_must_name_the_host(pki: Pki, tmp_path: Path) -> None:
    """Hostname checking is on: a certificate from the trusted CA that names another IP is refused.

    A TLS listener on 127.0.0.3 presents a certificate our CA issued for 127.0.0.99; the driver must refuse
    it during the handshake (the server side never gets to CQL).
    """
    wrong_host = issue_server_cert(pki.authority, tmp_path, ["127.0.0.99"], name="elsewhere")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(wrong_host.cert_pem, wrong_host.key_pem)
    listener = socket.create_server((ADDRESS, 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), server_context.wrap_socket(conn, server_side=True):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        settings = load_settings(cassandra_hosts=ADDRESS, cassandra_port=port, cassandra_ca=pki.authority.cert_pem,
                                 cassandra_connect_timeout=3.0)
        with pytest.raises(StoreUnavailable, match=r"TLS certificate not trusted \(IP address mismatch"):
            connect(settings)
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# ----------------------------------------------------------------------------------------------- roles


@pytest.fixture(scope="module")
def role_passwords(cassandra_node: CassandraNode, pki: Pki) -> dict[str, str]:
    """Apply the schema and the two roles once for the module; the role passwords come from the environment."""
    settings = _settings(cassandra_node, pki)
    assert scorer(settings, "schema", "apply").returncode == 0
    passwords = {"SCORER_TEST_WRITER_PW": f"w'{secrets.token_urlsafe(12)}", "SCORER_TEST_READER_PW":
                 secrets.token_urlsafe(12)}
    result = scorer(settings, "schema", "roles", "--writer-password-env", "SCORER_TEST_WRITER_PW",
                    "--reader-password-env", "SCORER_TEST_READER_PW", extra_env=passwords)
    assert result.returncode == 0, result.stderr
    assert "scorer_writer: login enabled, password set" in result.stdout
    for password in passwords.values():
        assert password not in result.stdout + result.stderr
    return {"scorer_writer": passwords["SCORER_TEST_WRITER_PW"], "scorer_reader": passwords["SCORER_TEST_READER_PW"]}


def _as(role: str, passwords: dict[str, str], node: CassandraNode, pki: Pki) -> Settings:
    return _settings(node, pki, cassandra_user=role, cassandra_password=passwords[role])


def test_roles_command_is_idempotent_and_rotates_passwords(cassandra_node: CassandraNode, pki: Pki,
                                                           role_passwords: dict[str, str]) -> None:
    settings = _settings(cassandra_node, pki)
    again = scorer(settings, "schema", "roles", "--reader-password-env", "NEW_PW",
                   extra_env={"NEW_PW": "rotated-password-1"})
    assert again.returncode == 0, again.stderr
    assert "scorer_writer: group role (no login)" in again.stdout
    cluster, session = connect(_settings(cassandra_node, pki, cassandra_user="scorer_reader",
                                         cassandra_password="rotated-password-1"))
    cluster.shutdown()
    with pytest.raises(StoreUnavailable, match="authentication failed"):
        connect(_as("scorer_reader", role_passwords, cassandra_node, pki))
    # Put the module's password back for the other tests.
    restore = scorer(settings, "schema", "roles", "--reader-password-env", "OLD_PW",
                     extra_env={"OLD_PW": role_passwords["scorer_reader"]})
    assert restore.returncode == 0, restore.stderr


def test_roles_refuse_missing_or_weak_passwords_before_writing(cassandra_node: CassandraNode, pki: Pki) -> None:
    settings = _settings(cassandra_node, pki)
    line = _one_error_line(scorer(settings, "schema", "roles", "--writer-password-env", "UNSET_PW_VARIABLE"))
    assert line == ("error: environment variable UNSET_PW_VARIABLE (password for role scorer_writer) is not set "
                    "or empty")
    line = _one_error_line(scorer(settings, "schema", "roles", "--reader-password-env", "SHORT",
                                  extra_env={"SHORT": "abc"}))
    assert "must be 8-256 printable characters; got 3 characters" in line and "abc" not in line


def test_reader_can_read_but_cannot_write_or_change_schema(cassandra_node: CassandraNode, pki: Pki,
                                                           role_passwords: dict[str, str]) -> None:
    reader = _as("scorer_reader", role_passwords, cassandra_node, pki)
    cluster, session = connect(reader, keyspace="scorer_secure")
    try:
        session.execute("SELECT * FROM active_models WHERE model = 'm'")
        session.execute("SELECT * FROM model_chunks WHERE model = 'm' AND segment = 's' AND version = 1")
        # the one write a worker makes: the log entry of a pointer change made outside scorer
        session.execute("INSERT INTO activations (model, segment, at, id, action) "
                        "VALUES ('m', 's', toTimestamp(now()), now(), 'external')")
        for statement in (
            "UPDATE active_models SET version = 3 WHERE model = 'm' AND segment = 's'",
            "INSERT INTO model_chunks (model, segment, version, chunk, data) VALUES ('m', 's', 1, 0, 0x00)",
            "INSERT INTO model_versions (model, segment, version, status) VALUES ('m', 's', 1, 'complete')",
            "DELETE FROM model_chunks WHERE model = 'm' AND segment = 's' AND version = 1",
            "TRUNCATE model_chunks",
            "DROP TABLE model_chunks",
        ):
            with pytest.raises(Unauthorized, match="scorer_reader has no (MODIFY|DROP) permission"):
                session.execute(statement)
    finally:
        cluster.shutdown()
    line = _one_error_line(scorer(reader, "schema", "apply"))
    assert "Unauthorized" in line and "scorer_reader has no CREATE permission" in line


def test_writer_can_write_but_not_change_schema(cassandra_node: CassandraNode, pki: Pki,
                                                role_passwords: dict[str, str]) -> None:
    writer = _as("scorer_writer", role_passwords, cassandra_node, pki)
    cluster, session = connect(writer, keyspace="scorer_secure")
    try:
        session.execute("INSERT INTO model_chunks (model, segment, version, chunk, data) "
                        "VALUES ('w', 's', 1, 0, 0x00)")
        session.execute("UPDATE active_models SET version = 1 WHERE model = 'w' AND segment = 's'")
        assert session.execute("SELECT version FROM active_models WHERE model = 'w'").one().version == 1
        session.execute("DELETE FROM active_models WHERE model = 'w'")
        with pytest.raises(Unauthorized):
            session.execute("DROP TABLE model_chunks")
        with pytest.raises(Unauthorized):
            session.execute("GRANT MODIFY ON KEYSPACE scorer_secure TO scorer_reader")
    finally:
        cluster.shutdown()


def test_store_and_cli_with_least_privilege_roles(cassandra_node: CassandraNode, pki: Pki, tmp_path: Path,
                                                  role_passwords: dict[str, str]) -> None:
    """Trainers (writer) publish and swap; workers (reader) load and follow pointers but change nothing."""
    writer = _as("scorer_writer", role_passwords, cassandra_node, pki)
    reader = _as("scorer_reader", role_passwords, cassandra_node, pki)
    weights_file = tmp_path / "w.npz"
    logistic(11).save(weights_file)
    published = scorer(writer, "publish", "--model", "sec", "--segment", "ORD", "--weights", str(weights_file),
                       "--activate")
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip().splitlines()[-1] == "published sec/ORD version 1"
    listed = scorer(reader, "versions", "sec", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"version": 1' in listed.stdout.replace('"version":1', '"version": 1')

    with CassandraModelStore(reader) as store:  # a worker's view
        assert store.load("sec", "ORD") == logistic(11)
        assert store.active("sec")["ORD"].version == 1
        for attempt in (lambda: store.publish("sec", "ORD", logistic(12)),
                        lambda: store.activate("sec", "ORD", 1),
                        lambda: store.release("sec", {"ORD": 1})):
            with pytest.raises(StoreError, match="Unauthorized.*scorer_reader has no MODIFY permission"):
                attempt()
    for args in (("activate", "sec", "ORD", "1"), ("release", "sec", "--latest"),
                 ("publish", "--model", "sec", "--segment", "ORD", "--weights", str(weights_file))):
        result = scorer(reader, *args)
        line = _one_error_line(result)
        assert "Unauthorized" in line and "scorer_reader has no MODIFY permission" in line, line
        assert role_passwords["scorer_reader"] not in result.stdout + result.stderr
    with CassandraModelStore(writer) as store:  # nothing the reader tried got through
        assert [info.version for info in store.versions("sec", "ORD")] == [1]
        assert [entry.action for entry in store.activations("sec", "ORD")] == ["activate"]


def test_roles_need_an_auth_enabled_cluster(cassandra: object, base_settings: Settings) -> None:
    """On the dev cluster (AllowAllAuthenticator) the command refuses, naming why, and creates nothing."""
    anonymous = scorer(base_settings, "schema", "roles")
    assert "needs an authenticated superuser" in _one_error_line(anonymous)
    with_user = scorer(load_settings(cassandra_user="admin", cassandra_password="not-a-real-password"),
                       "schema", "roles")
    line = _one_error_line(with_user)
    assert "roles need PasswordAuthenticator and CassandraAuthorizer" in line
    assert "authenticator=AllowAllAuthenticator" in line


# ----------------------------------------------------------------------------------------------- Kafka


async def _round_trip(settings: Settings, topic: str, values: list[bytes]) -> list[bytes]:
    options = aiokafka_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**options, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **aiokafka_options(settings), auto_offset_reset="earliest",
                                group_id=f"g-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    received: list[bytes] = []
    try:
        while len(received) < len(values):
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            received += [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    return received


def test_kafka_sasl_ssl_round_trip_from_settings(kafka_node: KafkaNode, pki: Pki,
                                                 kafka_users: dict[str, str]) -> None:
    settings = _kafka_settings(kafka_node, pki, kafka_users)
    options = aiokafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "PLAIN"
    asyncio.run(check_connection(settings))
    values = [f"secret-event-{i}".encode() for i in range(10)]
    assert asyncio.run(_round_trip(settings, f"sec-{uuid.uuid4().hex[:8]}", values)) == values


def test_kafka_wrong_password_fails_clearly(kafka_node: KafkaNode, pki: Pki, kafka_users: dict[str, str]) -> None:
    password = f"wrong-{secrets.token_hex(8)}"
    settings = _kafka_settings(kafka_node, pki, kafka_users, kafka_password=password)
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_connection(settings))
    sasl_port = kafka_node.extra_listeners["SASL_SSL"][0]
    assert str(caught.value) == (f"cannot reach Kafka at {ADDRESS}:{sasl_port}: SASL authentication failed for "
                                 "user 'scorer' (check SCORER_KAFKA_USER/SCORER_KAFKA_PASSWORD)")
    assert password not in str(caught.value)

    async def produce() -> None:
        producer = AIOKafkaProducer(**aiokafka_options(settings))
        try:
            await producer.start()
        finally:
            await producer.stop()

    from aiokafka.errors import KafkaConnectionError

    with pytest.raises(KafkaConnectionError):  # a plain client is refused too, it just says less
        asyncio.run(produce())


def test_kafka_untrusted_certificate_fails_clearly(kafka_node: KafkaNode, pki: Pki,
                                                   kafka_users: dict[str, str]) -> None:
    settings = _kafka_settings(kafka_node, pki, kafka_users, kafka_ca=pki.rogue.cert_pem)
    with pytest.raises(BrokerUnavailable, match=r"TLS certificate not trusted \(.+\); check SCORER_KAFKA_CA"):
        asyncio.run(check_connection(settings))


def test_kafka_without_tls_or_credentials_is_refused(kafka_node: KafkaNode, pki: Pki,
                                                     kafka_users: dict[str, str]) -> None:
    for overrides in ({"kafka_ca": None}, {"kafka_user": None, "kafka_password": None}):
        settings = _kafka_settings(kafka_node, pki, kafka_users, **overrides)
        with pytest.raises(BrokerUnavailable, match="the broker dropped the connection"):
            asyncio.run(check_connection(settings, timeout=5))


def test_faust_broker_options_reach_the_sasl_ssl_broker(kafka_node: KafkaNode, pki: Pki,
                                                        kafka_users: dict[str, str]) -> None:
    """What the worker hands faust becomes, through faust's own mapping, a working aiokafka client."""
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = _kafka_settings(kafka_node, pki, kafka_users)
    options = faust_broker_options(settings)
    app = faust.App(f"sec-{uuid.uuid4().hex[:6]}", **options)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_plain_username"] == "scorer"
    assert "scorer" in repr(options["broker_credentials"])
    assert kafka_users["scorer"] not in repr(options["broker_credentials"])  # faust's repr hides the password
    topic = f"faust-{uuid.uuid4().hex[:8]}"

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=[f"{url.host}:{url.port}" for url in app.conf.broker], **auth)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"via-faust-options")
        finally:
            await producer.stop()

    asyncio.run(send())
