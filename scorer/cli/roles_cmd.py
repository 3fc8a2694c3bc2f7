"""``scorer schema roles``: create the least-privilege writer and reader roles (auth-enabled clusters only)."""

from __future__ import annotations

import click

from scorer.cli.base import CliContext, pass_cli
from scorer.cli.schema_cmd import schema_group
from scorer.errors import ConfigError
from scorer.roles import READER_ROLE, WRITER_ROLE, RolePlan, apply_roles
from scorer.store.connection import connect


@schema_group.command("roles")
@click.option("--writer-password-env", metavar="VAR",
              help="Environment variable holding the writer's password (gives the role a login).")
@click.option("--reader-password-env", metavar="VAR",
              help="Environment variable holding the reader's password (gives the role a login).")
@click.option("--writer-role", default=WRITER_ROLE, show_default=True, help="Role for trainers and operators.")
@click.option("--reader-role", default=READER_ROLE, show_default=True, help="Read-only role for workers.")
@pass_cli
def roles_cmd(cli: CliContext, writer_password_env: str | None, reader_password_env: str | None,
              writer_role: str, reader_role: str) -> None:
    """Create the writer and read-only reader roles and grant them on the keyspace; safe to run again.

    Needs PasswordAuthenticator + CassandraAuthorizer and a superuser in SCORER_CASSANDRA_USER/PASSWORD.
    Passwords are read from the environment variables you name, never from the command line.
    """
    settings = cli.settings
    if settings.cassandra_user is None:
        raise ConfigError("scorer schema roles needs an authenticated superuser: set SCORER_CASSANDRA_USER and "
                          "SCORER_CASSANDRA_PASSWORD (and enable PasswordAuthenticator + CassandraAuthorizer)")
    plan = RolePlan(writer_role, reader_role, writer_password_env, reader_password_env)
    cluster, session = connect(settings)
    try:
        lines = apply_roles(session, settings, plan)
    finally:
        cluster.shutdown()
    click.echo(f"roles granted on keyspace {settings.keyspace}: {writer_role} (read+write), {reader_role} (read)")
    for line in lines:
        click.echo(f"  {line}")
