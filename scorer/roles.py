"""Least-privilege Cassandra roles for scorer: a writer (trainers, operators) and a read-only reader (workers).

The privileges live in ``schema/roles/*.cql``; passwords never do. They are read from environment variables
whose names the caller gives, and set with ``ALTER ROLE``. CQL has no bind markers for role options, so a
password is the one value rendered into a statement: as an escaped string literal, never logged, and
redacted from any error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

from scorer.config import Settings
from scorer.errors import ConfigError, StoreError
from scorer.schema import SCHEMA_DIR

ROLES_DIR = SCHEMA_DIR / "roles"
WRITER_ROLE = "scorer_writer"
READER_ROLE = "scorer_reader"
MIN_PASSWORD = 8
MAX_PASSWORD = 256
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True)
class RolePlan:
    """What ``apply_roles`` does: create and grant both roles, then set the passwords it was given."""

    writer_role: str = WRITER_ROLE
    reader_role: str = READER_ROLE
    writer_password_env: str | None = None
    reader_password_env: str | None = None


def check_role(name: str) -> str:
    # Role names are interpolated into DCL, so they are plain lower-case identifiers (Cassandra folds case).
    if not _ROLE.match(name):
        raise ConfigError(f"role name must be a lower-case letter then letters, digits or _ (max 48); got {name!r}")
    return name


def password_from_env(variable: str, role: str) -> str:
    """The password in environment variable ``variable``; checked, never echoed."""
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", variable):
        raise ConfigError(f"the password of role {role} comes from an environment variable: give its name "
                          f"(e.g. SCORER_READER_PASSWORD); got {variable!r}")
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"environment variable {variable} (password for role {role}) is not set or empty")
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD or not value.isprintable():
        raise ConfigError(f"the password in {variable} (role {role}) must be {MIN_PASSWORD}-{MAX_PASSWORD} printable "
                          f"characters; got {len(value)} characters")
    return value


def cql_string(value: str) -> str:
    """A CQL string literal: single-quoted, quotes doubled (CQL has no other escapes)."""
    return "'" + value.replace("'", "''") + "'"


def load_statements(settings: Settings, plan: RolePlan, directory: Path | None = None) -> list[str]:
    """The grant statements of ``schema/roles/NNN_*.cql`` with keyspace and role names filled in."""
    from scorer.schema import _split

    names = {"keyspace": settings.keyspace, "writer_role": check_role(plan.writer_role),
             "reader_role": check_role(plan.reader_role)}
    if names["writer_role"] == names["reader_role"]:
        raise ConfigError(f"the writer and reader roles must differ; both are {plan.writer_role!r}")
    statements = []
    for path in sorted((directory or ROLES_DIR).glob("[0-9][0-9][0-9]_*.cql")):
        text = path.read_text()
        for key, value in names.items():
            text = text.replace("{" + key + "}", value)
        statements += [part.strip() for part in _split(text) if part.strip()]
    return statements


def check_cluster_enforces_auth(session: Session) -> None:
    """Refuse before writing anything when the cluster would not enforce the roles."""
    try:
        # 5.0 names them authenticator.class_name / authorizer.class_name; 4.x plain authenticator/authorizer.
        rows = session.execute("SELECT name, value FROM system_views.settings WHERE name IN ('authenticator', "
                               "'authorizer', 'authenticator.class_name', 'authorizer.class_name')", timeout=10)
        found = {row.name.split(".")[0]: row.value or "" for row in rows}
    except Exception:  # noqa: BLE001 - an older server or no access to virtual tables: nothing to check here
        return
    weak = [f"{name}={value.split('{')[0]}" for name, value in sorted(found.items()) if "AllowAll" in value]
    if weak:
        raise ConfigError(f"roles need PasswordAuthenticator and CassandraAuthorizer on the cluster; it runs "
                          f"{', '.join(weak)} (see README, Security)")


def apply_roles(session: Session, settings: Settings, plan: RolePlan, directory: Path | None = None) -> list[str]:
    """Create both roles, grant their privileges on the keyspace, set passwords; return one line per role."""
    passwords = {
        plan.writer_role: password_from_env(plan.writer_password_env, plan.writer_role)
        if plan.writer_password_env else None,
        plan.reader_role: password_from_env(plan.reader_password_env, plan.reader_role)
        if plan.reader_password_env else None,
    }
    statements = load_statements(settings, plan, directory)
    check_cluster_enforces_auth(session)
    for statement in statements:
        try:
            session.execute(statement, timeout=30)
        except Exception as exc:  # noqa: BLE001 - one readable line naming the statement
            raise StoreError(f"roles: `{statement}` failed: {_first_line(exc)}") from None
    done = []
    for role, password in passwords.items():
        if password is None:
            done.append(f"{role}: group role (no login); GRANT {role} TO <your login role>")
            continue
        try:
            session.execute(f"ALTER ROLE {role} WITH PASSWORD = {cql_string(password)} AND LOGIN = true",
                            timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"roles: cannot set the password of {role}: "
                             f"{_first_line(exc).replace(password, '***')}") from None
        done.append(f"{role}: login enabled, password set")
    return done


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"
