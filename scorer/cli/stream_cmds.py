"""Streaming commands: ``scorer worker`` (score a topic, hot-swapping models) and ``scorer send`` (produce events)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.cli.monitor_cmds import worker_monitor_options
from scorer.config import DEFAULT_GUARANTEE
from scorer.errors import ConfigError

if TYPE_CHECKING:
    from scorer.monitor.extension import MonitorOptions


@main.command("worker")
@click.option("--input-topic", default="events", show_default=True, help="Topic of input events.")
@click.option("--output-topic", default="predictions", show_default=True, help="Topic for predictions.")
@click.option("--dlq-topic", default="events-dlq", show_default=True, help="Topic for dead letters.")
@click.option("--changes-topic", help="Topic of pointer-change notices, read without a consumer group "
              "[default: SCORER_CHANGES_TOPIC or model-changes].")
@click.option("--models", help="Comma-separated models to serve [default: every model with active rows].")
@click.option("--poll-interval", type=float, default=0.25, show_default=True,
              help="Seconds between reads of each served model's active_models partition.")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Most events per micro-batch.")
@click.option("--batch-window-ms", type=float, default=10.0, show_default=True,
              help="Longest wait for a micro-batch, in milliseconds (direct reader: for its first event, then "
              "it takes whatever has arrived; faust reader: for the batch to fill).")
@click.option("--max-models", type=int, default=10_000, show_default=True,
              help="(model, segment) entries kept in memory; least recently used ones are evicted beyond this.")
@click.option("--fallback-segment", default="__default__", show_default=True,
              help="Segment whose model serves segments without one ('' for none).")
@click.option("--web-port", type=int, default=6066, show_default=True, help="Port of /metrics and /models.")
@click.option("--web-host", default="0.0.0.0", show_default=True, help="Address the web port binds to.")  # noqa: S104
@click.option("--app-id", help="Consumer group shared by workers that split the input [default: SCORER_APP_ID].")
@click.option("--partitions", type=int, default=8, show_default=True,
              help="Partitions of topics created because they are missing.")
@click.option("--max-message-bytes", type=int, default=256 * 1024, show_default=True,
              help="Larger input messages become dead letters.")
@click.option("--max-features", type=int, default=1024, show_default=True,
              help="Events with more features become dead letters.")
@click.option("--commit-interval", type=float,
              help="Seconds between offset commits: at-least-once, a crash re-scores at most about this much "
              "[default: 1.0]; exactly-once, outputs become visible to read_committed readers after about this "
              "long [default: 0.1].")
@click.option("--session-timeout", type=float, default=10.0, show_default=True,
              help="Seconds before a dead worker's partitions go to the others (Kafka group session timeout).")
@click.option("--pipeline-depth", type=int, default=2, show_default=True,
              help="Batches whose outputs may await Kafka's acknowledgement while the next is scored (0: none).")
@click.option("--producer-linger-ms", type=float, default=0.0, show_default=True,
              help="How long the output producer waits to fill a request (the outputs of one batch go out "
              "together anyway; each millisecond here adds to every output's latency).")
@click.option("--consumer", type=click.Choice(["direct", "faust"]), default="direct", show_default=True,
              help="How the input is read: whole fetches with offsets committed after delivery (direct), or a "
              "faust agent taking noack_take batches acked after delivery (faust; about 5x slower).")
@click.option("--guarantee", type=click.Choice(["exactly-once", "at-least-once"]),
              help="exactly-once: each batch's outputs and input offsets commit in one Kafka transaction (readers "
              "of the outputs must use read_committed); at-least-once: a crash re-scores the uncommitted tail "
              "[default: SCORER_GUARANTEE or " + DEFAULT_GUARANTEE + "].")
@click.option("--transaction-timeout", type=float, default=60.0, show_default=True,
              help="exactly-once: seconds before the broker aborts a transaction its worker stopped finishing.")
@click.option("--stock-consumer", is_flag=True,
              help="No effect, kept for compatibility: --consumer faust runs faust's stock consumer.")
@click.option("--no-changes", is_flag=True, help="Do not follow the changes topic (poll only).")
@click.option("--allow-empty", is_flag=True,
              help="Start even if a model named by --models has nothing published yet (it is served once it is).")
@click.option("--loglevel", default="info", show_default=True, help="faust/worker log level.")
@worker_monitor_options
@pass_cli
def worker_cmd(cli: CliContext, input_topic: str, output_topic: str, dlq_topic: str, changes_topic: str | None,
               models: str | None, poll_interval: float, batch_size: int, batch_window_ms: float, max_models: int,
               fallback_segment: str, web_port: int, web_host: str, app_id: str | None, partitions: int,
               max_message_bytes: int, max_features: int, commit_interval: float | None, session_timeout: float,
               pipeline_depth: int, producer_linger_ms: float, consumer: str, guarantee: str | None,
               transaction_timeout: float,
               stock_consumer: bool, no_changes: bool, allow_empty: bool,
               loglevel: str, monitoring: MonitorOptions) -> None:
    """Score events from Kafka with each segment's live model, hot-swapping when active_models changes."""
    from pydantic import ValidationError

    from scorer.monitor.extension import run_monitored_worker
    from scorer.stream.worker import WorkerConfig

    try:
        config = WorkerConfig(
            input_topic=input_topic, output_topic=output_topic, dlq_topic=dlq_topic,
            follow_changes=not no_changes, models=models or (), poll_interval=poll_interval, batch_size=batch_size,
            batch_window_ms=batch_window_ms, max_models=max_models, fallback_segment=fallback_segment or None,
            web_port=web_port, web_host=web_host, partitions=partitions,
            max_message_bytes=max_message_bytes, max_features=max_features, commit_interval=commit_interval,
            session_timeout=session_timeout, pipeline_depth=pipeline_depth, consumer=consumer,
            producer_linger_ms=producer_linger_ms,
            guarantee=guarantee or _configured_guarantee(cli), transaction_timeout=transaction_timeout,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "option"
        if where == "option":  # a check across options
            raise ConfigError(f"invalid options: {first['msg'].removeprefix('Value error, ')}") from None
        raise ConfigError(f"invalid --{where.replace('_', '-')}: {first['msg']}") from None
    # The consumer group and the notices topic are settings (shared with the CLI's announcements); the flags
    # override them for this worker.
    overrides = {name: value for name, value in (("app_id", app_id), ("changes_topic", changes_topic)) if value}
    if config.models and not allow_empty:
        _require_published(cli, config.models)
    logging.getLogger("aiokafka").setLevel(logging.NOTSET)  # a worker's log keeps aiokafka's warnings
    run_monitored_worker(cli.settings.model_copy(update=overrides), config, monitoring, loglevel=loglevel)


def _configured_guarantee(cli: CliContext) -> str | None:
    """SCORER_GUARANTEE when it is set; None lets the worker's options choose (the default of its reader)."""
    settings = cli.settings
    return settings.guarantee if "guarantee" in settings.model_fields_set else None


def _require_published(cli: CliContext, models: Sequence[str]) -> None:
    """Fail fast on a model name with nothing published (a typo would otherwise serve nothing, silently).

    A store that cannot be reached is not a mistake: the worker starts and retries it, as it always does.
    """
    from scorer.errors import StoreUnavailable
    from scorer.store import CassandraModelStore

    try:
        with CassandraModelStore(cli.settings) as store:
            missing = [model for model in models if not store.active(model) and not store.versions(model)]
            if missing:
                known = store.models()
    except StoreUnavailable as exc:
        logging.getLogger(__name__).warning("cannot check --models now (%s); starting anyway", exc)
        return
    if missing:
        listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "") if known else "none"
        raise ConfigError(f"--models: nothing is published for {', '.join(repr(m) for m in missing)} "
                          f"(models with live versions: {listed}); --allow-empty starts anyway")


@main.command("send")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV (.csv/.tsv, optionally .gz) or Parquet file.")
@click.option("--model", required=True, help="Model named in every event.")
@click.option("--segment-col", required=True, help="Column holding each row's segment.")
@click.option("--features", help="Comma-separated feature columns [default: every numeric column].")
@click.option("--id-col", help="Column of event ids [default: e-<row number>].")
@click.option("--topic", default="events", show_default=True, help="Topic to produce to.")
@click.option("--rate", type=float, help="Events per second [default: as fast as possible].")
@click.option("--limit", type=int, help="Send only the first N rows.")
@pass_cli
def send_cmd(cli: CliContext, data_path: Path, model: str, segment_col: str, features: str | None,
             id_col: str | None, topic: str, rate: float | None, limit: int | None) -> None:
    """Produce one event per row of a file, keyed by event id, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scorer.stream.send import read_rows, send_rows

    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more; got {limit}")
    names = [f.strip() for f in features.split(",") if f.strip()] if features else None
    rows = read_rows(data_path, segment_col, names, id_col, limit)
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("send", total=len(rows), rate="")

        def advance(n: int) -> None:
            done = progress.tasks[0].completed + n
            elapsed = progress.tasks[0].elapsed or 0.0
            progress.update(task, advance=n, rate=f"{done / elapsed:,.0f}/s" if elapsed > 0 else "")

        try:
            sent = asyncio.run(send_rows(cli.settings, rows, model, topic, rate=rate, progress=advance))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line, naming the brokers
            from scorer.errors import BrokerUnavailable
            from scorer.kafka import describe_failure

            raise BrokerUnavailable(describe_failure(cli.settings, exc)) from None
    click.echo(f"sent {sent} events for model {model} ({len(set(rows.segments))} segments) to {topic}")
