"""Settings -> aiokafka/faust options: one mapping, every security combination, no secret in messages."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from scorer.config import load_settings
from scorer.errors import ConfigError
from scorer.kafka.options import (
    _short_reason,
    aiokafka_options,
    bootstrap_servers,
    describe_failure,
    faust_broker_options,
    security_protocol,
)


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    from devstack.secure import make_authority

    return make_authority(tmp_path).cert_pem


@pytest.mark.parametrize(("url", "servers"), [
    ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
    ("kafka://h1:9092;h2:9093", ["h1:9092", "h2:9093"]),
    ("kafka://h1;kafka://h2:1", ["h1:9092", "h2:1"]),
    ("h1:9092,h2:9092", ["h1:9092", "h2:9092"]),
])
def test_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert bootstrap_servers(load_settings(kafka=url)) == servers


def test_bootstrap_servers_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError, match="must use kafka:// URLs; got scheme 'http'"):
        bootstrap_servers(load_settings(kafka="http://h:1"))


def test_security_matrix(ca: Path) -> None:
    assert security_protocol(load_settings()) == "PLAINTEXT"
    assert security_protocol(load_settings(kafka_ca=ca)) == "SSL"
    assert security_protocol(load_settings(kafka_user="u", kafka_password="p")) == "SASL_PLAINTEXT"
    assert security_protocol(load_settings(kafka_user="u", kafka_password="p", kafka_ca=ca)) == "SASL_SSL"


def test_aiokafka_options_sasl_ssl(ca: Path) -> None:
    options = aiokafka_options(load_settings(kafka="kafka://b:9094", kafka_user="u", kafka_password="pw",
                                             kafka_ca=ca, kafka_sasl_mechanism="SCRAM-SHA-512"))
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert options == {"bootstrap_servers": ["b:9094"], "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u", "sasl_plain_password": "pw"}


def test_aiokafka_options_plaintext_has_no_security_keys() -> None:
    assert aiokafka_options(load_settings()) == {"bootstrap_servers": ["127.0.0.1:9092"],
                                                 "security_protocol": "PLAINTEXT"}


def test_faust_options_match_aiokafka_options(ca: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    for overrides in ({}, {"kafka_ca": ca}, {"kafka_user": "u", "kafka_password": "pw"},
                      {"kafka_user": "u", "kafka_password": "pw", "kafka_ca": ca}):
        settings = load_settings(kafka="kafka://b1:1;b2:2", **overrides)
        faust_options = faust_broker_options(settings)
        assert faust_options["broker"] == "kafka://b1:1;kafka://b2:2"
        ours = aiokafka_options(settings)
        theirs = dict(credentials_to_aiokafka_auth(faust_options.get("broker_credentials")))
        for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            if key in ours:
                assert theirs[key] == ours[key], (overrides, key)
        assert (theirs.get("ssl_context") is None) == ("ssl_context" not in ours)


def test_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot use SCORER_KAFKA_CA"):
        aiokafka_options(load_settings(kafka_ca=bogus))


def test_failure_messages_hide_the_password() -> None:
    settings = load_settings(kafka="kafka://b:9094", kafka_user="u", kafka_password="s3cret-pw")
    message = describe_failure(settings, RuntimeError("login with s3cret-pw refused"))
    assert "s3cret-pw" not in message and "***" in message
    assert "SASL authentication failed for user 'u'" in _short_reason(
        settings, RuntimeError("[Error 58] SaslAuthenticationFailed: Authentication failed: Invalid username"))
