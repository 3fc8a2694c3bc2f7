"""``scorer learn-worker`` (online learning per segment, each checkpoint a version) and ``scorer learn resume``."""

from __future__ import annotations

import asyncio
import json
import signal

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import ConfigError


def _sgd_params(values: tuple[str, ...]) -> object:
    from scorer.learn.sgd import SGDParams

    if not values:
        return None
    out: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--sgd takes KEY=VALUE; got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return SGDParams.from_json(out)


@main.command("learn-worker")
@click.option("--models", required=True, help="Comma-separated models whose segments learn from labels.")
@click.option("--events-topic", default="events", show_default=True)
@click.option("--labels-topic", default="labels", show_default=True)
@click.option("--dead-letter-topic", default="labels-dlq", show_default=True, help="Labels that cannot be learned.")
@click.option("--every-labels", type=int, default=500, show_default=True,
              help="Checkpoint a segment after this many new labels.")
@click.option("--every-seconds", type=float, default=60.0, show_default=True,
              help="...or this many seconds after its first label not yet checkpointed.")
@click.option("--promote", type=click.Choice(["direct", "gated", "none"]), default="direct", show_default=True,
              help="direct: activate each checkpoint; gated: try it through the retrain worker's canary/shadow "
                   "gate; none: only publish it.")
@click.option("--gate-mode", type=click.Choice(["canary", "shadow"]), default="canary", show_default=True,
              help="gated: how a checkpoint is tried.")
@click.option("--canary-fraction", type=float, default=0.2, show_default=True)
@click.option("--min-trial-outcomes", type=int, default=200, show_default=True,
              help="gated: labelled outcomes per side before deciding.")
@click.option("--margin", type=float, default=0.01, show_default=True,
              help="gated: how much better (absolute) the checkpoint must be to go live.")
@click.option("--metric", help="gated: decision metric (log_loss|accuracy|roc_auc, rmse|mae).")
@click.option("--max-trial-seconds", type=float, default=3600.0, show_default=True)
@click.option("--predictions-topic", default="predictions", show_default=True)
@click.option("--shadow-topic", default="predictions-shadow", show_default=True)
@click.option("--sgd", "sgd", multiple=True, metavar="KEY=VALUE",
              help="SGD parameter for versions without learner state, e.g. alpha=0.001 (repeatable).")
@click.option("--join-ttl", type=float, default=3600.0, show_default=True, help="Seconds an event waits for its label.")
@click.option("--join-max", type=int, default=200_000, show_default=True, help="Events waiting for labels at most.")
@click.option("--label-wait", type=float, default=10.0, show_default=True,
              help="Seconds a label waits for its event before it is dead-lettered as an unknown id.")
@click.option("--max-segments", type=int, default=10_000, show_default=True, help="Segments learning at once.")
@click.option("--reset-on-drift", is_flag=True, help="A drift alert restarts the segment's learning-rate schedule.")
@click.option("--alerts-topic", default="model-alerts", show_default=True)
@click.option("--group-id", help="Kafka consumer group [default: <app id>-learn].")
@click.option("--from-beginning", is_flag=True, help="Without committed offsets, read the topics from their start.")
@pass_cli
def learn_worker_cmd(cli: CliContext, models: str, events_topic: str, labels_topic: str, dead_letter_topic: str,
                     every_labels: int, every_seconds: float, promote: str, gate_mode: str, canary_fraction: float,
                     min_trial_outcomes: int, margin: float, metric: str | None, max_trial_seconds: float,
                     predictions_topic: str, shadow_topic: str, sgd: tuple[str, ...], join_ttl: float,
                     join_max: int, label_wait: float, max_segments: int, reset_on_drift: bool, alerts_topic: str,
                     group_id: str | None, from_beginning: bool) -> None:
    """Learn each segment's linear/logistic model from the label stream; every checkpoint is a version."""
    from scorer.learn.config import LearnConfig
    from scorer.learn.worker import LearnWorker
    from scorer.retrain.policy import RetrainConfig

    config = LearnConfig(
        models=tuple(name.strip() for name in models.split(",") if name.strip()), events_topic=events_topic,
        labels_topic=labels_topic, dead_letter_topic=dead_letter_topic, alerts_topic=alerts_topic,
        every_labels=every_labels, every_seconds=every_seconds, promote=promote, params=_sgd_params(sgd),
        join_ttl=join_ttl, join_max=join_max, label_wait=label_wait, max_segments=max_segments,
        reset_on_drift=reset_on_drift, group_id=group_id, from_beginning=from_beginning,
        predictions_topic=predictions_topic, shadow_topic=shadow_topic,
        gate=RetrainConfig(mode=gate_mode, canary_fraction=canary_fraction, min_trial_outcomes=min_trial_outcomes,
                           margin=margin, metric=metric, max_trial_seconds=max_trial_seconds, actor="learn-worker"))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await LearnWorker(cli.settings, config).run(stop)

    asyncio.run(serve())


@main.group("learn")
def learn_group() -> None:
    """Online learning: control a learn-worker's segments."""


@learn_group.command("resume")
@click.argument("model")
@click.argument("segment")
@click.option("--reason", default="", help="Why learning may go on (kept in the activation log).")
@pass_cli
def learn_resume_cmd(cli: CliContext, model: str, segment: str, reason: str) -> None:
    """Let a segment paused by a hand-made pointer change learn again, from the version now live."""
    from scorer.kafka.notices import try_publish_notice
    from scorer.learn.config import RESUME_REASON
    from scorer.store import CassandraModelStore
    from scorer.store.base import active_version

    store = CassandraModelStore(cli.settings)
    try:
        version = active_version(store, model, segment)
        store.activate(model, segment, version, reason=f"{RESUME_REASON}{': ' + reason if reason else ''}")
    finally:
        store.close()
    try_publish_notice(cli.settings, model, segment, "activate", version)
    click.echo(f"{model}/{segment}: learning resumes from version {version}")
