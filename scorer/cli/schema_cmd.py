"""``scorer schema apply|show``: create the keyspace and tables from schema/*.cql."""

from __future__ import annotations

from pathlib import Path

import click
from cassandra import DriverException

from scorer import schema
from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import StoreError
from scorer.store.connection import connect


@main.group("schema")
def schema_group() -> None:
    """Create or inspect the Cassandra schema."""


@schema_group.command("apply")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help="Schema directory.")
@pass_cli
def apply_cmd(cli: CliContext, directory: Path | None) -> None:
    """Apply every numbered .cql file in order; safe to run again."""
    settings = cli.settings
    cluster, session = connect(settings)
    try:
        names = schema.apply(session, settings, directory)
    except DriverException as exc:  # e.g. Unauthorized for a role without CREATE: one line, no traceback
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise StoreError(f"schema apply on keyspace {settings.keyspace} failed: {type(exc).__name__}: {detail}") \
            from None
    finally:
        cluster.shutdown()
    click.echo(f"schema applied to keyspace {settings.keyspace}: {', '.join(names)}")


@schema_group.command("show")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help="Schema directory.")
@pass_cli
def show_cmd(cli: CliContext, directory: Path | None) -> None:
    """Print the statements ``apply`` would run, with settings filled in."""
    for schema_file in schema.load_files(cli.settings, directory):
        click.echo(f"-- {schema_file.name}")
        for statement in schema_file.statements:
            click.echo(statement + ";\n")
