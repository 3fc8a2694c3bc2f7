"""Connection failures become one line naming the cause and the setting to check, never a secret."""

from __future__ import annotations

from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

from scorer.config import load_settings
from scorer.store.connection import describe_failure


def _fail(err: BaseException, **settings: object) -> str:
    return describe_failure(load_settings(cassandra_hosts="10.0.0.1", **settings),
                            NoHostAvailable("Unable to connect to any servers", {"10.0.0.1:9042": err}))


def test_bad_credentials() -> None:
    err = AuthenticationFailed('Failed to authenticate to 10.0.0.1:9042: Error from server: code=0100 '
                               '[Bad credentials] message="Provided username admin and/or password are incorrect"')
    assert _fail(err, cassandra_user="admin", cassandra_password="hunter2-secret") == (
        "cannot reach Cassandra at 10.0.0.1:9042: authentication failed "
        "(check SCORER_CASSANDRA_USER/SCORER_CASSANDRA_PASSWORD)")


def test_credentials_required() -> None:
    assert _fail(AuthenticationFailed("Remote end requires authentication")).endswith(
        "the server requires authentication; set SCORER_CASSANDRA_USER and SCORER_CASSANDRA_PASSWORD")


def test_untrusted_certificate_names_the_reason() -> None:
    err = PermissionError(1, "Tried connecting to [('10.0.0.1', 9042)]. Last error: [SSL: CERTIFICATE_VERIFY_FAILED] "
                             "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)")
    assert _fail(err).endswith("TLS certificate not trusted (self-signed certificate in certificate chain); "
                               "check SCORER_CASSANDRA_CA")


def test_reset_without_tls_hints_at_tls() -> None:
    assert _fail(ConnectionResetError(104, "Connection reset by peer")).endswith(
        "connection reset by the server (does it require TLS? set SCORER_CASSANDRA_CA)")
