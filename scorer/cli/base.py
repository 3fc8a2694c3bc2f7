"""The root click group, its global options and the one-line error handling shared by every command."""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import click

from scorer.config import Settings, load_settings
from scorer.errors import ScorerError


@dataclass
class CliContext:
    """What every command gets: settings built once, on first use, from env plus global flags."""

    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(**self.overrides)
        return self._settings


class ScorerGroup(click.Group):
    """A group that turns every mistake into one ``error:`` line and exit status 1 (Ctrl-C: 130).

    Usage mistakes included: click would print the usage block and exit with 2; the README promises one line.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as exc:
            context = getattr(exc, "ctx", None)
            where = f"{context.command_path}: " if context is not None else ""
            hint = f" (see '{context.command_path} --help')" if isinstance(exc, click.UsageError) and context else ""
            click.echo(f"error: {where}{exc.format_message()}{hint}", err=True)
            sys.exit(1)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ScorerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=ScorerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--cassandra-hosts", help="Comma-separated contact points [env SCORER_CASSANDRA_HOSTS].")
@click.option("--cassandra-port", type=int, help="CQL port [env SCORER_CASSANDRA_PORT].")
@click.option("--keyspace", help="Keyspace [env SCORER_KEYSPACE].")
@click.option("--kafka", help="Broker URL, e.g. kafka://127.0.0.1:9092 [env SCORER_KAFKA].")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="scorer")
@click.pass_context
def main(ctx: click.Context, cassandra_hosts: str | None, cassandra_port: int | None, keyspace: str | None,
         kafka: str | None, verbose: int) -> None:
    """Per-segment models in Cassandra, scored on Kafka streams, hot-swapped by updating a row."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    if verbose == 0:
        # A command's failure is its one error line; library warnings (aiokafka retrying a broker, deprecations)
        # must not come first. `scorer worker` turns aiokafka's warnings back on: they matter in a worker's log.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")
    ctx.obj = CliContext(overrides={
        "cassandra_hosts": cassandra_hosts, "cassandra_port": cassandra_port, "keyspace": keyspace, "kafka": kafka,
    })


pass_cli = click.make_pass_decorator(CliContext)
