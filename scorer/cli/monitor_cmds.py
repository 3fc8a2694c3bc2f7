"""``scorer drift`` and ``scorer metrics``: the latest snapshots the workers published, as tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.monitor.topics import DRIFT_TOPIC, METRICS_TOPIC, model_prefix, read_latest_sync


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _by_segment_version(snapshots: Iterable[dict[str, Any]], latest_only: bool) -> list[dict[str, Any]]:
    """Sorted by segment then version (newest first); with ``latest_only`` one row per segment (newest version)."""
    rows = sorted(snapshots, key=lambda s: (str(s.get("segment")), -int(s.get("version") or 0)))
    if not latest_only:
        return rows
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.get("segment") not in seen:
            seen.add(str(row.get("segment")))
            out.append(row)
    return out


def flagged_features(snapshot: dict[str, Any], psi_threshold: float, ks_threshold: float,
                     significance: float | None = 0.001) -> list[str]:
    """Features whose drift is both large (threshold) and more than noise (p-value / KS critical value)."""
    out = []
    for name, f in (snapshot.get("features") or {}).items():
        psi_value, ks_value, p_value = f.get("psi"), f.get("ks"), f.get("p_value")
        significant = significance is None or p_value is None or p_value < significance
        ks_limit = max(ks_threshold, f.get("ks_critical") or 0.0) if significance is not None else ks_threshold
        if (psi_value is not None and psi_value >= psi_threshold and significant) or (
                ks_value is not None and ks_value >= ks_limit):
            out.append(name)
    return out


def drift_rows(snapshots: Iterable[dict[str, Any]], psi_threshold: float, ks_threshold: float,
               latest_only: bool = False, significance: float | None = 0.001) -> list[list[str]]:
    """Table rows: segment, version, events, window end, max PSI, max KS, worst feature, flag."""
    rows = []
    for snap in _by_segment_version(snapshots, latest_only):
        features = snap.get("features") or {}
        worst = max(features.items(), key=lambda item: item[1].get("psi") or 0.0, default=(None, {}))[0]
        flagged = flagged_features(snap, psi_threshold, ks_threshold, significance)
        window = snap.get("window") or {}
        rows.append([str(snap.get("segment")), str(snap.get("version")), _fmt(window.get("n")),
                     _when(window.get("end")), _fmt(snap.get("max_psi")), _fmt(snap.get("max_ks")), worst or "-",
                     f"DRIFT ({', '.join(flagged)})" if flagged else "ok"])
    return rows


def feature_rows(snapshot: dict[str, Any]) -> list[list[str]]:
    """One segment's features: name, PSI, KS, p-value, live and training missing rates."""
    features = snapshot.get("features") or {}
    ordered = sorted(features.items(), key=lambda item: -(item[1].get("psi") or 0.0))
    return [[name, _fmt(f.get("psi")), _fmt(f.get("ks")), _pvalue(f.get("p_value")), _fmt(f.get("missing_rate")),
             _fmt(f.get("expected_missing_rate"))] for name, f in ordered]


def _pvalue(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.2g}"


def metrics_rows(snapshots: Iterable[dict[str, Any]], latest_only: bool = False) -> list[list[str]]:
    """segment, version, role, n (window/total), then AUC, log loss, accuracy or RMSE, MAE; and update time."""
    rows = []
    for snap in sorted(snapshots, key=lambda s: (str(s.get("segment")), -int(s.get("version") or 0))):
        m = snap.get("metrics") or {}
        if snap.get("task") == "regression":
            values = [f"rmse {_fmt(m.get('rmse'))}", f"mae {_fmt(m.get('mae'))}", ""]
        else:
            values = [_fmt(m.get("roc_auc")), _fmt(m.get("log_loss")), _fmt(m.get("accuracy"))]
        rows.append([str(snap.get("segment")), str(snap.get("version")), str(snap.get("role") or "-"),
                     f"{_fmt(m.get('n'))}/{_fmt(snap.get('total'))}", *values, _when(snap.get("at"))])
    return rows


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)


@main.command("drift")
@click.argument("model")
@click.argument("segment", required=False)
@click.option("--topic", default=DRIFT_TOPIC, show_default=True, help="Topic the workers publish drift to.")
@click.option("--psi-threshold", type=float, default=0.2, show_default=True, help="PSI flagged as drift.")
@click.option("--ks-threshold", type=float, default=0.2, show_default=True, help="KS flagged as drift.")
@click.option("--significance", type=float, default=0.001, show_default=True,
              help="Also require the chi-square p-value below this (0 to use the thresholds only).")
@click.option("--all-versions", is_flag=True, help="Every version with a snapshot, not just the newest per segment.")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshots as JSON.")
@pass_cli
def drift_cmd(cli: CliContext, model: str, segment: str | None, topic: str, psi_threshold: float,
              ks_threshold: float, significance: float, all_versions: bool, as_json: bool) -> None:
    """Input drift per segment (PSI and KS against the training histograms), from the latest worker snapshots."""
    snapshots = list(read_latest_sync(cli.settings, topic, prefix=model_prefix(model, segment)).values())
    if as_json:
        click.echo(json.dumps(_by_segment_version(snapshots, not all_versions), indent=2))
        return
    if not snapshots:
        where = f"{model}/{segment}" if segment else model
        click.echo(f"no drift snapshots for {where} on topic {topic!r} yet")
        return
    _print_table(f"drift: {model}" + (f" / {segment}" if segment else ""),
                 ["segment", "version", "events", "window end (UTC)", "max PSI", "max KS", "worst feature", ""],
                 drift_rows(snapshots, psi_threshold, ks_threshold, latest_only=not all_versions,
                            significance=significance or None))
    if segment is not None:
        newest = _by_segment_version(snapshots, True)[0]
        _print_table(f"features of {segment} v{newest.get('version')}",
                     ["feature", "PSI", "KS", "p-value", "missing (live)", "missing (training)"],
                     feature_rows(newest))


@main.command("metrics")
@click.argument("model")
@click.argument("segment", required=False)
@click.option("--topic", default=METRICS_TOPIC, show_default=True, help="Topic the live metrics are published to.")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshots as JSON.")
@pass_cli
def metrics_cmd(cli: CliContext, model: str, segment: str | None, topic: str, as_json: bool) -> None:
    """Rolling live accuracy per segment and version (from predictions joined with delayed labels)."""
    snapshots = list(read_latest_sync(cli.settings, topic, prefix=model_prefix(model, segment)).values())
    if as_json:
        click.echo(json.dumps(_by_segment_version(snapshots, False), indent=2))
        return
    if not snapshots:
        where = f"{model}/{segment}" if segment else model
        click.echo(f"no live metrics for {where} on topic {topic!r} yet")
        return
    _print_table(f"live metrics: {model}" + (f" / {segment}" if segment else ""),
                 ["segment", "version", "role", "n (window/total)", "AUC", "log loss", "accuracy", "updated (UTC)"],
                 metrics_rows(snapshots))


def worker_monitor_options(fn: Any) -> Any:
    """Options of ``scorer worker`` for its monitoring hooks, passed to the command as ``monitoring``.

    Shadow scoring and drift counting are on by default: a segment without a shadow version or a version
    without training statistics costs nothing but a dictionary lookup per scored group.
    """
    import functools

    @click.option("--shadow-topic", default="predictions-shadow", show_default=True,
                  help="Topic for the outputs of shadow versions (never the predictions topic).")
    @click.option("--no-shadow", is_flag=True, help="Do not score shadow versions.")
    @click.option("--drift-topic", default=DRIFT_TOPIC, show_default=True, help="Topic for drift snapshots.")
    @click.option("--alerts-topic", default="model-alerts", show_default=True, help="Topic for drift alerts.")
    @click.option("--drift-events", type=int, default=1000, show_default=True,
                  help="Evaluate a segment's drift window every N events...")
    @click.option("--drift-seconds", type=float, default=60.0, show_default=True,
                  help="...or every T seconds once it holds --drift-min-events.")
    @click.option("--drift-min-events", type=int, default=200, show_default=True)
    @click.option("--psi-threshold", type=float, default=0.2, show_default=True, help="PSI that raises an alert.")
    @click.option("--ks-threshold", type=float, default=0.2, show_default=True, help="KS that raises an alert.")
    @click.option("--no-drift", is_flag=True, help="Do not count feature histograms.")
    @functools.wraps(fn)
    def wrapper(*args: Any, shadow_topic: str, no_shadow: bool, drift_topic: str, alerts_topic: str,
                drift_events: int, drift_seconds: float, drift_min_events: int, psi_threshold: float,
                ks_threshold: float, no_drift: bool, **kwargs: Any) -> Any:
        from scorer.errors import ConfigError
        from scorer.monitor.drift import DriftConfig
        from scorer.monitor.extension import MonitorOptions
        from scorer.monitor.topics import MonitorTopics

        try:
            drift = None if no_drift else DriftConfig(
                every_events=drift_events, every_seconds=drift_seconds, min_events=drift_min_events,
                psi_threshold=psi_threshold, ks_threshold=ks_threshold)
        except ValueError as exc:
            raise ConfigError(f"invalid drift option: {exc}") from None
        kwargs["monitoring"] = MonitorOptions(
            shadow=not no_shadow, shadow_topic=shadow_topic, drift=drift,
            topics=MonitorTopics(drift=drift_topic, alerts=alerts_topic))
        return fn(*args, **kwargs)

    return wrapper
