"""``scorer retrain-worker``: drift/accuracy-triggered refits, canary or shadow trials, promote or retire."""

from __future__ import annotations

import asyncio
import json
import signal

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import ConfigError


def _params(values: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param takes KEY=VALUE; got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@main.command("retrain-worker")
@click.option("--models", help="Comma-separated models to look after [default: every model with a live row].")
@click.option("--events-topic", default="events", show_default=True)
@click.option("--predictions-topic", default="predictions", show_default=True)
@click.option("--shadow-topic", default="predictions-shadow", show_default=True)
@click.option("--labels-topic", default="labels", show_default=True)
@click.option("--alerts-topic", default="model-alerts", show_default=True)
@click.option("--metrics-topic", default="model-metrics", show_default=True)
@click.option("--mode", type=click.Choice(["canary", "shadow"]), default="canary", show_default=True,
              help="How a candidate is tried before the decision.")
@click.option("--canary-fraction", type=float, default=0.2, show_default=True)
@click.option("--metric", help="Decision metric: log_loss|accuracy|roc_auc (classifiers), rmse|mae (regressors).")
@click.option("--margin", type=float, default=0.01, show_default=True,
              help="How much better (absolute) the candidate must be to be promoted.")
@click.option("--min-train-rows", type=int, default=300, show_default=True,
              help="Labelled rows after a trigger before refitting.")
@click.option("--train-rows", type=int, default=1000, show_default=True, help="Newest rows a refit uses at most.")
@click.option("--every-labels", type=int, default=0, show_default=True,
              help="Also refit every N labelled events per segment (0: off).")
@click.option("--min-trial-outcomes", type=int, default=200, show_default=True,
              help="Labelled outcomes per side before deciding.")
@click.option("--max-trial-seconds", type=float, default=3600.0, show_default=True)
@click.option("--accuracy-drop", type=float, default=0.2, show_default=True,
              help="Relative degradation of the live metric vs its holdout value that triggers a refit.")
@click.option("--cooldown", type=float, default=30.0, show_default=True, help="Seconds between decisions per segment.")
@click.option("--arch", help="Architecture for refits [default: the live version's].")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Estimator override (repeatable).")
@click.option("--join-ttl", type=float, default=3600.0, show_default=True, help="Seconds an event waits for its label.")
@click.option("--join-max", type=int, default=200_000, show_default=True, help="Events waiting for labels at most.")
@click.option("--window-rows", type=int, default=2000, show_default=True, help="Labelled rows kept per segment.")
@click.option("--metrics-window", type=int, default=500, show_default=True, help="Outcomes per rolling metric.")
@click.option("--metrics-interval", type=float, default=5.0, show_default=True)
@click.option("--poll-interval", type=float, default=2.0, show_default=True)
@click.option("--group-id", help="Kafka consumer group [default: <app id>-retrain].")
@click.option("--from-beginning", is_flag=True, help="Without committed offsets, read the topics from their start.")
@click.option("--monitor-only", is_flag=True, help="Only join labels and publish live metrics; never retrain.")
@click.option("--web-port", type=int, help="Serve Prometheus metrics on this port [default: none].")
@pass_cli
def retrain_worker_cmd(cli: CliContext, models: str | None, events_topic: str, predictions_topic: str,
                       shadow_topic: str, labels_topic: str, alerts_topic: str, metrics_topic: str, mode: str,
                       canary_fraction: float, metric: str | None, margin: float, min_train_rows: int,
                       train_rows: int, every_labels: int, min_trial_outcomes: int, max_trial_seconds: float,
                       accuracy_drop: float, cooldown: float, arch: str | None, params: tuple[str, ...],
                       join_ttl: float, join_max: int, window_rows: int, metrics_window: int,
                       metrics_interval: float, poll_interval: float, group_id: str | None, from_beginning: bool,
                       monitor_only: bool, web_port: int | None) -> None:
    """Watch live accuracy and drift per segment; refit, try and promote or retire new versions on its own."""
    from scorer.monitor.accuracy import MetricsConfig
    from scorer.retrain.config import RetrainTopics, WorkerConfig
    from scorer.retrain.policy import RetrainConfig
    from scorer.retrain.worker import RetrainWorker

    if window_rows < train_rows:
        raise ConfigError(f"--window-rows ({window_rows}) must be >= --train-rows ({train_rows})")
    retrain = RetrainConfig(metric=metric, margin=margin, mode=mode, canary_fraction=canary_fraction,
                            min_train_rows=min_train_rows, train_rows=train_rows, every_labels=every_labels,
                            min_trial_outcomes=min_trial_outcomes, max_trial_seconds=max_trial_seconds,
                            accuracy_drop=accuracy_drop, cooldown_seconds=cooldown, arch=arch,
                            params=_params(params))
    config = WorkerConfig(
        models=tuple(name.strip() for name in (models or "").split(",") if name.strip()),
        topics=RetrainTopics(events=events_topic, predictions=predictions_topic, shadow=shadow_topic,
                             labels=labels_topic, alerts=alerts_topic, metrics=metrics_topic),
        retrain=retrain, metrics=MetricsConfig(window=metrics_window), join_ttl=join_ttl, join_max=join_max,
        window_rows=window_rows, metrics_interval=metrics_interval, poll_interval=poll_interval, group_id=group_id,
        from_beginning=from_beginning, monitor_only=monitor_only, web_port=web_port)

    fit = None
    if not monitor_only:
        # scikit-learn takes seconds to import: here, before the event loop runs (a loop blocked that long at
        # the first refit would miss Kafka heartbeats and lose its partitions).
        from trainers.refit import refit as fit

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await RetrainWorker(cli.settings, config, fit=fit).run(stop)

    asyncio.run(serve())
