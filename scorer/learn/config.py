"""Options of ``scorer learn-worker``."""

from __future__ import annotations

from dataclasses import dataclass, field

from scorer.errors import ConfigError
from scorer.learn.sgd import SGDParams
from scorer.monitor.topics import ALERTS_TOPIC, LABELS_TOPIC, SHADOW_TOPIC
from scorer.retrain.policy import RetrainConfig

RESUME_REASON = "learn resume"
"""The reason ``scorer learn resume`` writes to the activation log; the learner looks for it."""
PROMOTE_MODES = ("direct", "gated", "none")


@dataclass(frozen=True)
class LearnConfig:
    models: tuple[str, ...]
    events_topic: str = "events"
    labels_topic: str = LABELS_TOPIC
    dead_letter_topic: str = "labels-dlq"
    alerts_topic: str = ALERTS_TOPIC
    every_labels: int = 500
    """Checkpoint a segment after this many new labels..."""
    every_seconds: float = 60.0
    """...or this long after its first label not yet in a checkpoint."""
    promote: str = "direct"
    """direct: activate each checkpoint; gated: through the retrain worker's canary/shadow gate; none: publish."""
    gate: RetrainConfig = field(default_factory=lambda: RetrainConfig(actor="learn-worker"))
    """The gate's trial rules (mode, canary fraction, outcomes needed, margin, metric), for ``gated``."""
    predictions_topic: str = "predictions"
    shadow_topic: str = SHADOW_TOPIC
    params: SGDParams | None = None
    """How versions without learner state learn (None: log_loss for logistic, squared_error for linear)."""
    join_ttl: float = 3600.0
    join_max: int = 200_000
    label_wait: float = 10.0
    """Seconds a label waits for its event (holding back its partition) before it is an unknown id."""
    max_segments: int = 10_000
    commit_interval: float = 1.0
    poll_interval: float = 2.0
    reset_on_drift: bool = False
    group_id: str | None = None
    from_beginning: bool = False
    actor: str = "learn-worker"

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("learn-worker needs --models")
        if self.promote not in PROMOTE_MODES:
            raise ConfigError(f"--promote must be one of {list(PROMOTE_MODES)}; got {self.promote!r}")
        if self.every_labels < 1 or self.every_seconds <= 0 or self.label_wait < 0 or self.max_segments < 1:
            raise ConfigError("--every-labels must be >= 1, --every-seconds > 0, --label-wait >= 0, "
                              "--max-segments >= 1")
        if self.params is not None and self.params.classifier and self.params.loss != "log_loss":
            raise ConfigError(f"sgd loss {self.params.loss!r} gives no probabilities to serve; a logistic version "
                              "learns with log_loss, a linear one with a regression loss")
