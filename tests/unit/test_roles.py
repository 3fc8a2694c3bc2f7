"""The role plan: names checked, passwords only from the environment, statements rendered without secrets."""

from __future__ import annotations

import pytest

from scorer.config import load_settings
from scorer.errors import ConfigError
from scorer.roles import RolePlan, check_role, cql_string, load_statements, password_from_env


def test_statements_grant_least_privilege() -> None:
    statements = load_statements(load_settings(keyspace="prod"), RolePlan())
    assert statements == [
        "CREATE ROLE IF NOT EXISTS scorer_writer",
        "CREATE ROLE IF NOT EXISTS scorer_reader",
        "GRANT SELECT ON KEYSPACE prod TO scorer_writer",
        "GRANT MODIFY ON KEYSPACE prod TO scorer_writer",
        "GRANT SELECT ON KEYSPACE prod TO scorer_reader",
        "REVOKE MODIFY ON KEYSPACE prod FROM scorer_reader",
        "GRANT MODIFY ON TABLE prod.activations TO scorer_reader",
    ]
    assert not any("PASSWORD" in statement.upper() for statement in statements)


def test_role_names_are_plain_identifiers() -> None:
    assert check_role("ops_writer") == "ops_writer"
    for bad in ("Writer", "a;DROP", "x y", "", "1abc"):
        with pytest.raises(ConfigError, match="role name must be"):
            check_role(bad)
    with pytest.raises(ConfigError, match="must differ"):
        load_statements(load_settings(), RolePlan(writer_role="same", reader_role="same"))


def test_cql_string_doubles_quotes() -> None:
    assert cql_string("it's") == "'it''s'"
    assert cql_string("''; DROP ROLE x; --") == "'''''; DROP ROLE x; --'"


def test_password_comes_from_a_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_OK", "long enough pw")
    assert password_from_env("PW_OK", "r") == "long enough pw"
    monkeypatch.setenv("PW_SHORT", "short")
    with pytest.raises(ConfigError, match="got 5 characters") as caught:
        password_from_env("PW_SHORT", "r")
    assert "short" not in str(caught.value).replace("got 5 characters", "")
    monkeypatch.setenv("PW_CTRL", "bad\npassword!")
    with pytest.raises(ConfigError, match="printable"):
        password_from_env("PW_CTRL", "r")
    with pytest.raises(ConfigError, match="is not set or empty"):
        password_from_env("PW_UNSET_FOR_SURE", "r")
    with pytest.raises(ConfigError, match="give its name"):
        password_from_env("my password", "r")
