"""The authenticated, encrypted devstack profile: a test PKI, a TLS+auth Cassandra node, a SASL_SSL broker.

Nothing here touches the main dev stack (127.0.0.1:9042 / :9092): every node gets its own address, ports and
state directory, usually under a test's tmp dir. Certificates are generated fresh (a CA, one server
certificate with IP SANs, a PKCS12 keystore for the JVMs); nothing secret is kept in the repository.

    python -m devstack.secure up --state /tmp/scorer-secure     # prints the SCORER_* settings to use
    python -m devstack.secure down --state /tmp/scorer-secure
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.stack import CassandraNode, KafkaNode, StackError

KEY_BITS = 2048


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its PEM certificate (what clients trust) and, in memory, its key."""

    cert_pem: Path
    _cert: Any
    _key: Any


@dataclass(frozen=True)
class ServerCert:
    """A server certificate signed by an authority, as PEM files and as a PKCS12 keystore for the JVMs."""

    cert_pem: Path
    key_pem: Path
    keystore: Path
    keystore_password: str


def make_authority(directory: Path, name: str = "scorer-test-ca") -> Authority:
    """A fresh self-signed CA valid for a day, written to ``directory/<name>.pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(path, cert, key)


def issue_server_cert(authority: Authority, directory: Path, ips: list[str], name: str = "server",
                      password: str | None = None) -> ServerCert:
    """A server certificate for ``ips`` (IP SANs, so clients can verify the host by address)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    ca_cert, ca_key = authority._cert, authority._key
    now = dt.datetime.now(dt.UTC)
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ips[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    password = password or secrets.token_urlsafe(16)
    cert_pem = directory / f"{name}.pem"
    key_pem = directory / f"{name}.key"
    keystore = directory / f"{name}.p12"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key_pem.chmod(0o600)
    # PBES2/AES with an HMAC-SHA256 MAC: readable by Java 11.0.12+ / 17 keystores.
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(10_000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256())
                  .build(password.encode()))
    keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, [ca_cert], encryption))
    keystore.chmod(0o600)
    return ServerCert(cert_pem, key_pem, keystore, password)


def secure_cassandra(state: Path, server: ServerCert, *, address: str = "127.0.0.3", port: int = 9042,
                     storage_port: int = 7000, heap: str = "512M", name: str = "secure") -> CassandraNode:
    """A Cassandra node with PasswordAuthenticator, CassandraAuthorizer and mandatory client TLS.

    Its superuser is Cassandra's built-in ``cassandra``/``cassandra``: change it (ALTER ROLE) before
    anything else in a real deployment; the tests create their own admin role first.
    """
    return CassandraNode(name=name, address=address, port=port, storage_port=storage_port, state=state,
                         heap=heap, auth=True, tls_keystore=server.keystore,
                         tls_keystore_password=server.keystore_password, start_timeout=180)


def sasl_ssl_properties(server: ServerCert, users: dict[str, str]) -> str:
    """server.properties lines for a SASL_SSL listener named SASL_SSL with PLAIN users (name -> password)."""
    for user, password in users.items():
        if not user.isidentifier() or '"' in password or "\\" in password or "\n" in password:
            raise StackError(f"kafka SASL user {user!r}: names must be identifiers, passwords plain printable text")
    admin, admin_password = next(iter(users.items()))
    jaas = " ".join(
        ["org.apache.kafka.common.security.plain.PlainLoginModule required",
         f'username="{admin}" password="{admin_password}"',
         *(f'user_{user}="{password}"' for user, password in users.items())]
    ) + ";"
    return "\n".join([
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
        "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
        f"listener.name.sasl_ssl.ssl.keystore.location={server.keystore}",
        f"listener.name.sasl_ssl.ssl.keystore.password={server.keystore_password}",
        f"listener.name.sasl_ssl.ssl.key.password={server.keystore_password}",
        "listener.name.sasl_ssl.ssl.client.auth=none",
        "",
    ])


def secure_kafka(state: Path, server: ServerCert, users: dict[str, str], *, address: str = "127.0.0.3",
                 port: int = 9092, sasl_port: int = 9094, controller_port: int = 9093, heap: str = "384m",
                 name: str = "secure") -> KafkaNode:
    """A KRaft broker with an extra SASL_SSL (PLAIN) listener; its PLAINTEXT listener only serves the
    readiness probe and inter-broker traffic on this throw-away node. The first user is the broker's own."""
    return KafkaNode(name=name, address=address, port=port, controller_port=controller_port, state=state,
                     heap=heap, extra_listeners={"SASL_SSL": (sasl_port, "SASL_SSL")},
                     extra_properties=sasl_ssl_properties(server, users), start_timeout=120)


# ---------------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    """Start or stop the secure profile by hand (tests build their own nodes on free ports)."""
    parser = argparse.ArgumentParser(prog="devstack.secure", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--state", type=Path, required=True, help="Directory for certificates and node state.")
    parser.add_argument("--address", default="127.0.0.3", help="Loopback address for both nodes.")
    args = parser.parse_args(argv)
    state: Path = args.state
    saved_file = state / "secrets.json"
    try:
        if args.action == "down":
            KafkaNode(name="secure", address=args.address, port=9092, state=state / "kafka", heap="1m").down()
            CassandraNode(name="secure", address=args.address, port=9042, state=state / "cassandra", heap="1m").down()
            return 0
        if not saved_file.exists():
            authority = make_authority(state / "pki")
            server = issue_server_cert(authority, state / "pki", [args.address])
            saved_file.write_text(json.dumps({
                "ca": str(authority.cert_pem), "cert": str(server.cert_pem), "key": str(server.key_pem),
                "keystore": str(server.keystore), "keystore_password": server.keystore_password,
                "kafka_user": "scorer", "kafka_password": secrets.token_urlsafe(18),
            }))
            saved_file.chmod(0o600)
        saved = json.loads(saved_file.read_text())
        server = ServerCert(Path(saved["cert"]), Path(saved["key"]), Path(saved["keystore"]),
                            saved["keystore_password"])
        secure_cassandra(state / "cassandra", server, address=args.address).up()
        secure_kafka(state / "kafka", server, {saved["kafka_user"]: saved["kafka_password"]},
                     address=args.address).up()
    except StackError as exc:
        print(f"devstack.secure: {exc}", file=sys.stderr)
        return 1
    print(f"secure profile up; passwords are in {saved_file} (mode 600). Settings:\n"
          f"  SCORER_CASSANDRA_HOSTS={args.address} SCORER_CASSANDRA_CA={saved['ca']}\n"
          f"  SCORER_CASSANDRA_USER=cassandra SCORER_CASSANDRA_PASSWORD=<the built-in superuser's; change it>\n"
          f"  SCORER_KAFKA=kafka://{args.address}:9094 SCORER_KAFKA_CA={saved['ca']} "
          f"SCORER_KAFKA_USER={saved['kafka_user']} SCORER_KAFKA_PASSWORD=<kafka_password in secrets.json>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
