"""``scorer train``: fit one model per segment from a CSV/Parquet file; write files (--out) or publish to the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from trainers.segment import SegmentResult, TrainReport

_ARCH_HELP = ("logistic|linear|tree|forest|extra-trees|gbt|hgb|mlp|sgd|lightgbm|xgboost (default: logistic or "
              "linear by task; sgd keeps the learner state for scorer learn-worker; lightgbm and xgboost need the "
              "scorer[lightgbm] / scorer[xgboost] extras)")
_SHOWN_SKIPS = 20


@main.command("train")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV (.csv/.tsv, optionally .gz) or Parquet file.")
@click.option("--model", required=True, help="Model name the segments are published under.")
@click.option("--segment-col", required=True, help="Column whose values name the segments.")
@click.option("--target", required=True, help="Column to predict.")
@click.option("--features", help="Comma-separated feature columns, in model order [default: every numeric column].")
@click.option("--time-col", help="Column of row times (timestamps, ISO text or epoch seconds): the time range of "
              "each version's training rows is recorded in its lineage. Never a feature.")
@click.option("--categorical", help="Comma-separated categorical feature columns (text or integers): one-hot for "
              "linear/logistic/mlp, native for hgb/lightgbm/xgboost, ordinal codes for the tree ensembles.")
@click.option("--arch", help=_ARCH_HELP)
@click.option("--task", default="auto", show_default=True, help="classification|regression|auto.")
@click.option("--min-rows", type=int, default=50, show_default=True, help="Skip segments with fewer rows.")
@click.option("--test-size", type=float, default=0.2, show_default=True, help="Holdout share per segment.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for splits and estimators.")
@click.option("--bins", "n_bins", type=int, default=10, show_default=True, help="Quantile bins in the training stats.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Estimator parameter override, value as JSON (repeatable), e.g. --param n_estimators=50.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write <segment>.npz files and summary.json here instead of publishing.")
@click.option("--activate", is_flag=True, help="Make the published versions live.")
@click.option("--author", help="Recorded with each version [default: user@host].")
@click.option("--reason", help="Recorded in the activation log with --activate.")
@pass_cli
def train_cmd(cli: CliContext, data_path: Path, model: str, segment_col: str, target: str, features: str | None,
              time_col: str | None, categorical: str | None, arch: str | None, task: str, min_rows: int,
              test_size: float, seed: int,
              n_bins: int, params: tuple[str, ...], out_dir: Path | None, activate: bool, author: str | None,
              reason: str | None) -> None:
    """Train one pipeline per segment with holdout metrics and training statistics."""
    from rich.console import Console

    from trainers.data import load_training_data
    from trainers.segment import TrainConfig, train_segments

    if out_dir is not None and activate:
        raise ConfigError("--activate makes published versions live; it does not apply with --out")
    if not model.strip():
        raise ConfigError("--model must not be empty")
    config = TrainConfig(arch=arch, task=task, min_rows=min_rows, test_size=test_size, seed=seed, n_bins=n_bins,
                         params=_parse_params(params))
    feature_list = [name.strip() for name in features.split(",") if name.strip()] if features else None
    if features is not None and not feature_list:
        raise ConfigError("--features is empty; give comma-separated column names or leave it out")
    categorical_list = [c.strip() for c in categorical.split(",") if c.strip()] if categorical else []
    if categorical is not None and not categorical_list:
        raise ConfigError("--categorical is empty; give comma-separated column names or leave it out")

    store = None
    if out_dir is None:
        from scorer.store import CassandraModelStore, rules

        rules.check_model(model)
        store = CassandraModelStore(cli.settings)  # connect first: fail in seconds, not after the training
    try:
        err = Console(stderr=True, soft_wrap=True)
        data = load_training_data(data_path, segment_col=segment_col, target=target, features=feature_list,
                                  categorical=categorical_list, time_col=time_col)
        if store is not None:
            for segment in np.unique(data.segments).tolist():  # refuse a bad name before training, not after
                rules.check_segment(segment)
        with _progress(err) as progress:
            task_id = progress.add_task("training", total=None)

            def advance(done: int, total: int, segment: str) -> None:
                progress.update(task_id, completed=done, total=total, description=f"training {segment[:30]}")

            report = train_segments(data, config, progress=advance)
        _describe(err, report, data.n_rows, segment_col, target)
        if not report.results:
            raise ConfigError(_nothing_trained(report, min_rows))
        out = Console(soft_wrap=True)
        if out_dir is not None:
            from trainers.output import file_stems, write_outputs

            summary = write_outputs(report, out_dir, model=model, target=target, segment_col=segment_col,
                                    config=config, author=author)
            stems = file_stems([result.segment for result in report.results])
            _results_table(out, report, "file", {r.segment: f"{stems[r.segment]}.npz" for r in report.results})
            _print_skipped(out, report)
            out.print(f"wrote {len(report.results)} segments of {model} to {out_dir} ({summary.name})",
                      highlight=False, markup=False)
        else:
            assert store is not None
            with _progress(err) as progress:
                publish_id = progress.add_task("publishing", total=len(report.results))

                def published(phase: str, done: int, total: int) -> None:
                    progress.update(publish_id, completed=done, total=total, description=phase)

                items = ((r.segment, r.weights, r.metrics, r.stats) for r in report.results)
                versions = store.publish_many(model, items, author=author, activate=activate, reason=reason,
                                              progress=published)
            _results_table(out, report, "version", {seg: str(v) for seg, v in versions.items()})
            _print_skipped(out, report)
            live = " and activated" if activate else ""
            out.print(f"published {len(versions)} segments of {model}{live}", highlight=False, markup=False)
    finally:
        if store is not None:
            store.close()


def _parse_params(params: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; the value is JSON when it parses (50, 0.1, true, null, "x"), else the plain text."""
    out: dict[str, Any] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param must be KEY=VALUE; got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)  # e.g. hidden_layer_sizes=[64,32]
        out[key.strip()] = value
    return out


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        yield progress


def _describe(console: Console, report: TrainReport, n_rows: int, segment_col: str, target: str) -> None:
    dropped = f", {report.n_dropped} rows without {segment_col} or {target} dropped" if report.n_dropped else ""
    console.print(
        f"{report.task} with {report.arch} on {n_rows} rows{dropped}; features: {', '.join(report.feature_names)}; "
        f"{len(report.results)} segments trained, {len(report.skipped)} skipped in {report.seconds:.1f} s",
        highlight=False, markup=False)


def _nothing_trained(report: TrainReport, min_rows: int) -> str:
    if not report.skipped:
        return "no segments in the data"
    small = sum(1 for s in report.skipped if s.reason.endswith(f"< min_rows {min_rows}"))
    first = report.skipped[0]
    return (f"no segment could be trained: {len(report.skipped)} segments, {small} below --min-rows {min_rows} "
            f"(largest has {max(s.n_rows for s in report.skipped)} rows); e.g. {first.segment}: {first.reason}")


def _key_metrics(result: SegmentResult) -> tuple[str, str]:
    metrics = result.metrics

    def fmt(name: str) -> str:
        value = metrics.get(name)
        return "-" if value is None else f"{value:.4f}"

    if metrics.get("task") == "classification":
        return fmt("roc_auc"), fmt("accuracy")
    return fmt("rmse"), fmt("r2")


def _results_table(console: Console, report: TrainReport, what: str, where: dict[str, str]) -> None:
    from rich.table import Table
    from rich.text import Text

    first, second = ("auc", "accuracy") if report.task == "classification" else ("rmse", "r2")
    table = Table(box=None, pad_edge=False)
    table.add_column("segment", overflow="fold")
    table.add_column(what, overflow="fold")
    for name in ("rows", first, second):
        table.add_column(name, justify="right")
    for result in report.results:
        # Text cells: a segment named like "[bold]" is data, not rich markup.
        table.add_row(Text(result.segment), Text(where.get(result.segment, "-")), str(result.n_rows),
                      *_key_metrics(result))
    console.print(table)


def _print_skipped(console: Console, report: TrainReport) -> None:
    if not report.skipped:
        return
    console.print(f"skipped {len(report.skipped)} segments:", highlight=False, markup=False)
    for skipped in report.skipped[:_SHOWN_SKIPS]:
        console.print(f"  {skipped.segment} ({skipped.n_rows} rows): {skipped.reason}", highlight=False, markup=False)
    if len(report.skipped) > _SHOWN_SKIPS:
        console.print(f"  ... and {len(report.skipped) - _SHOWN_SKIPS} more", highlight=False, markup=False)
