"""Settings -> Kafka client options, in one place, for aiokafka clients and for the faust app.

Security follows the settings: a user and a CA give SASL_SSL, a user alone SASL_PLAINTEXT (only for a
trusted network: PLAIN sends the password as is), a CA alone SSL, neither PLAINTEXT. Certificates are
always verified, hostnames included (broker addresses must be in the certificate's SANs).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from scorer.config import Settings
from scorer.errors import BrokerUnavailable, ConfigError


def bootstrap_servers(settings: Settings) -> list[str]:
    """``kafka://h1:9092;h2:9092`` (faust's URL form) -> ``["h1:9092", "h2:9092"]`` for aiokafka."""
    servers = []
    for part in settings.kafka.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            scheme, _, part = part.partition("://")
            if scheme not in ("kafka", "aiokafka"):
                raise ConfigError(f"SCORER_KAFKA must use kafka:// URLs; got scheme {scheme!r}")
        part = part.rstrip("/")
        if part:
            servers.append(part if ":" in part else f"{part}:9092")
    if not servers:
        raise ConfigError(f"SCORER_KAFKA names no broker; got {settings.kafka!r}")
    return servers


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying client context trusting SCORER_KAFKA_CA, or None for plaintext."""
    if settings.kafka_ca is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.kafka_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use SCORER_KAFKA_CA {str(settings.kafka_ca)!r}: {exc}") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def security_protocol(settings: Settings) -> str:
    if settings.kafka_user is not None:
        return "SASL_SSL" if settings.kafka_ca is not None else "SASL_PLAINTEXT"
    return "SSL" if settings.kafka_ca is not None else "PLAINTEXT"


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/AIOKafkaConsumer/AIOKafkaAdminClient (servers and security).

    The password is in the returned dict: pass it straight to the client, never log the dict.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": security_protocol(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_user is not None and settings.kafka_password is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_user
        options["sasl_plain_password"] = settings.kafka_password.get_secret_value()
    return options


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App(...)``: ``broker`` and, when secured, ``broker_credentials``.

    faust turns SASLCredentials(ssl_context=...) into SASL_SSL and SSLCredentials into SSL, with the same
    aiokafka options as :func:`aiokafka_options`.
    """
    import faust

    options: dict[str, Any] = {"broker": ";".join(f"kafka://{server}" for server in bootstrap_servers(settings))}
    context = ssl_context(settings)
    if settings.kafka_user is not None and settings.kafka_password is not None:
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_user,
            password=settings.kafka_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


async def check_connection(settings: Settings, timeout: float = 10.0) -> None:
    """Open one connection (TLS handshake and SASL login included) to the first broker that answers.

    aiokafka only logs why a bootstrap failed and then raises a bare "Unable to bootstrap"; this preflight
    surfaces the real cause as one line. Raises BrokerUnavailable naming the brokers; returns when one works.
    """
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    options = aiokafka_options(settings)
    servers = options.pop("bootstrap_servers")
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **options), timeout
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line below
            reasons.append(_short_reason(settings, exc))
            continue
        try:
            # A TLS handshake alone proves nothing on a SASL_SSL listener: only a request shows we are let in.
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
        except Exception as exc:  # noqa: BLE001
            reasons.append(_short_reason(settings, exc))
            continue
        finally:
            conn.close()
        return
    raise BrokerUnavailable(f"cannot reach Kafka at {', '.join(servers)}: {'; '.join(dict.fromkeys(reasons))}")


def describe_failure(settings: Settings, exc: BaseException) -> str:
    """One line for a failed Kafka operation, naming the brokers and the likely cause, with no secret."""
    return f"cannot reach Kafka at {', '.join(bootstrap_servers(settings))}: {_short_reason(settings, exc)}"


def _short_reason(settings: Settings, exc: BaseException) -> str:
    detail = str(exc)
    text = detail if detail.startswith(type(exc).__name__) else f"{type(exc).__name__}: {detail}".rstrip(": ")
    password = settings.kafka_password.get_secret_value() if settings.kafka_password is not None else None
    if password:
        text = text.replace(password, "***")
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        reason = getattr(exc, "verify_message", None) or "certificate verify failed"
        return f"TLS certificate not trusted ({reason}); check SCORER_KAFKA_CA"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({text.splitlines()[0][:160]}); is the listener TLS? check SCORER_KAFKA_CA"
    if "SaslAuthenticationFailed" in text or "Authentication failed" in text:
        return (f"SASL authentication failed for user {settings.kafka_user!r} "
                "(check SCORER_KAFKA_USER/SCORER_KAFKA_PASSWORD)")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out (a TLS or SASL listener reached without TLS/credentials looks like this too)"
    if isinstance(exc, ConnectionResetError) or "closed" in text:
        return (f"{text.splitlines()[0][:120]}: the broker dropped the connection; does the listener use another "
                f"protocol than {security_protocol(settings)}? (check SCORER_KAFKA_CA, SCORER_KAFKA_USER)")
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:200]
