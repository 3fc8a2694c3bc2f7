"""``scorer demo-data`` and ``scorer demo-report``: the synthetic city stream and the end-of-demo report."""

from __future__ import annotations

import os
from pathlib import Path

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import ConfigError


def _cities(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _fractions(value: str | None) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in _cities(value))
    except ValueError:
        raise ConfigError(f"--split-at takes comma-separated fractions like 0.35,0.7; got {value!r}") from None


@main.command("demo-data")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/demo"),
              show_default=True, help="Directory for the files.")
@click.option("--events", type=int, default=48_000, show_default=True, help="Events in stream.csv.")
@click.option("--train-rows", type=int, default=2_000, show_default=True, help="Training rows per city.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same files (byte for byte).")
@click.option("--cities", help="Comma-separated city codes [default: 12 US airports ORD,JFK,...].")
@click.option("--drift-city", help="City whose cancellations start following a different rule part-way.")
@click.option("--drift-at", type=float, default=0.25, show_default=True,
              help="Fraction of the stream after which the drift city changes.")
@click.option("--retrain-city", "retrain_cities", multiple=True,
              help="Also write retrain_<CITY> (fresh labelled rows) for this city; repeatable.")
@click.option("--retrain-rows", type=int, default=2_000, show_default=True, help="Rows per retrain file.")
@click.option("--split-at", help="Comma-separated fractions, e.g. 0.35,0.7: also write stream_part1..N cut there.")
@click.option("--null-rate", type=float, default=0.02, show_default=True, help="Share of missing ratings.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
def demo_data_cmd(out: Path, events: int, train_rows: int, seed: int, cities: str | None, drift_city: str | None,
                  drift_at: float, retrain_cities: tuple[str, ...], retrain_rows: int, split_at: str | None,
                  null_rate: float, fmt: str) -> None:
    """Write a synthetic ride-cancellation stream: train.csv, stream.csv, retrain_<city>.csv, demo.json.

    Each city has its own ground-truth logistic model over wait_minutes, distance_km, surge, hour and
    rating (some ratings missing); the label is ``cancelled``. With --drift-city, that city's rule and
    feature distribution change after --drift-at of the stream, and retrain_<city> holds post-drift data.
    """
    from scorer.demo.data import CITIES, DemoConfig, write_demo_data

    config = DemoConfig(seed=seed, cities=_cities(cities) or CITIES, events=events, train_rows=train_rows,
                        drift_city=drift_city, drift_at=drift_at, retrain_cities=retrain_cities,
                        retrain_rows=retrain_rows, split_at=_fractions(split_at), null_rate=null_rate, fmt=fmt)
    meta = write_demo_data(config, out)
    for key, name in meta["files"].items():
        click.echo(f"  {key:<14} {out / name}")
    drift = meta["drift"]
    if drift:
        click.echo(f"drift: {drift['city']} from event {drift['first_id']} ({drift['at']:.0%} of the stream)")
    click.echo(f"wrote {len(meta['files'])} files for {len(config.cities)} cities ({events:,} stream events, "
               f"seed {seed}) to {out}")


@main.command("demo-report")
@click.option("--stream", "stream", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The stream file from demo-data (ids, cities, labels); its demo.json is read too.")
@click.option("--swaps", type=click.Path(dir_okay=False, path_type=Path), help="Swaps log (JSON lines).")
@click.option("--input-topic", default="events", show_default=True, help="Topic the events were sent to.")
@click.option("--predictions-topic", default="predictions", show_default=True)
@click.option("--dlq-topic", default="events-dlq", show_default=True)
@click.option("--from-jsonl", "jsonl", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
              help="Read records from this JSONL dump instead of Kafka (repeatable).")
@click.option("--dump", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the records read from Kafka as JSONL (re-run offline with --from-jsonl).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/demo"),
              show_default=True, help="Where summary.json and report.png go.")
@click.option("--idle", type=float, default=5.0, show_default=True,
              help="Stop reading a topic that stays silent this long before its end offset.")
@click.option("--png/--no-png", default=True, show_default=True)
@click.option("--check/--no-check", default=True, show_default=True,
              help="Exit 1 when an event is lost, dead-lettered, or a swap was not seen.")
@pass_cli
def demo_report_cmd(cli: CliContext, stream: Path, swaps: Path | None, input_topic: str, predictions_topic: str,
                    dlq_topic: str, jsonl: tuple[Path, ...], dump: Path | None, out: Path, idle: float, png: bool,
                    check: bool) -> None:
    """Join predictions and dead letters with the stream's labels: counts, latency, swap delays, accuracy."""
    from scorer.demo import report
    from scorer.demo.data import read_meta

    meta = read_meta(stream.parent) or {}
    labels = report.load_labels(stream, id_col=meta.get("id_col", "id"), segment_col=meta.get("segment_col", "city"),
                                target=meta.get("target", "cancelled"))
    swap_list = report.load_swaps(swaps)
    if jsonl:
        records = report.read_jsonl(jsonl)
    else:
        topics = {"event": input_topic, "prediction": predictions_topic, "dead_letter": dlq_topic}
        click.echo(f"reading {', '.join(topics.values())} from the beginning ...", err=True)
        try:
            raw = report.read_kafka(cli.settings, topics, idle_seconds=idle)
        except OSError as exc:
            raise ConfigError(f"cannot read the demo topics from Kafka at {cli.settings.kafka}: {exc}") from None
        if dump is not None:
            report.write_dump(dump, raw)
        records = report.Records()
        for kind, value, timestamp in raw:
            records.add(kind, value, timestamp)
    summary, joined = report.compute_summary(labels, records, swap_list, meta)
    # Latency on a shared box says as much about the neighbours as about scorer: record how busy it was.
    summary["environment"] = {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}
    report.render(summary)
    out.mkdir(parents=True, exist_ok=True)
    report.write_summary(summary, out / "summary.json")
    written = [str(out / "summary.json")]
    if png:
        from scorer.demo.plot import plot_report

        written.append(str(plot_report(joined, summary, swap_list, out / "report.png")))
    click.echo(f"wrote {', '.join(written)}")
    if check and not summary["ok"]:
        failed = [c["name"] + " (" + c["detail"] + ")" for c in summary["checks"] if not c["ok"]]
        raise ConfigError(f"demo checks failed: {'; '.join(failed)}")
