"""Options and Prometheus series of the retrain worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from scorer.monitor.accuracy import MetricsConfig
from scorer.monitor.topics import ALERTS_TOPIC, LABELS_TOPIC, METRICS_TOPIC, SHADOW_TOPIC
from scorer.retrain.policy import RetrainConfig


@dataclass(frozen=True)
class RetrainTopics:
    events: str = "events"
    predictions: str = "predictions"
    shadow: str = SHADOW_TOPIC
    labels: str = LABELS_TOPIC
    alerts: str = ALERTS_TOPIC
    metrics: str = METRICS_TOPIC


@dataclass(frozen=True)
class WorkerConfig:
    models: tuple[str, ...] = ()
    """Models to look after; empty means every model with an active_models row at start."""
    topics: RetrainTopics = field(default_factory=RetrainTopics)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    join_ttl: float = 3600.0
    """Seconds an event waits for its label."""
    join_max: int = 200_000
    """Events waiting for labels at once (oldest dropped beyond this)."""
    window_rows: int = 2000
    """Labelled rows kept per segment for refits."""
    max_segments: int = 2000
    """Segments with training rows kept at once."""
    metrics_interval: float = 5.0
    poll_interval: float = 2.0
    group_id: str | None = None
    """Kafka consumer group; default ``<app_id>-retrain``."""
    from_beginning: bool = False
    """Read the topics from their start when the group has no committed offsets (default: from now on)."""
    monitor_only: bool = False
    """Join and publish live metrics, never retrain."""
    web_port: int | None = None
    """Serve Prometheus metrics (live metric per version, actions, join state) on this port."""


class RetrainGauges:
    """Prometheus series of the retrain worker, in its own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.live = Gauge("scorer_live_metric", "Rolling metric of a version over its last labelled outcomes",
                          ["model", "segment", "version", "metric"], registry=r)
        self.outcomes = Gauge("scorer_live_outcomes", "Labelled outcomes seen per version",
                              ["model", "segment", "version"], registry=r)
        self.actions = Counter("scorer_retrain_actions", "Retrain steps taken, by kind", ["action"], registry=r)
        self.triggers = Counter("scorer_retrain_triggers", "Retrain triggers, by reason", ["reason"], registry=r)
        self.pending = Gauge("scorer_label_join_pending", "Events waiting for their label", registry=r)
        self.dropped = Gauge("scorer_label_join_dropped", "Events whose label never came, by cause",
                             ["cause"], registry=r)
        # Created at zero, so rate()/increase() see the first of each (a series born at 1 shows no increase).
        for action in ("trial_canary", "trial_shadow", "promoted", "retired", "fit_skipped", "failed"):
            self.actions.labels(action)
        for reason in ("drift", "accuracy"):
            self.triggers.labels(reason)
        for cause in ("ttl", "cap"):
            self.dropped.labels(cause)
