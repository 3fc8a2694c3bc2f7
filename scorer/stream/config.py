"""Options of one ``scorer worker`` (its CLI flags): validated once, frozen, passed to the worker and its readers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scorer.config import Settings
from scorer.stream.events import Limits


class WorkerConfig(BaseModel):
    """Options of one ``scorer worker`` (the CLI flags); Kafka and Cassandra access come from Settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_topic: str = "events"
    output_topic: str = "predictions"
    dlq_topic: str = "events-dlq"
    follow_changes: bool = True
    """Read ``Settings.changes_topic`` for immediate refreshes (the poll runs regardless)."""
    models: tuple[str, ...] = ()
    """Models served; empty: every model that has active rows or shows up in events."""
    poll_interval: float = Field(0.25, gt=0, le=3600)
    """Seconds between reads of each served model's active_models partition: a raw CQL swap shows within about
    this; each worker costs (models served / poll_interval) single-partition reads per second."""
    batch_size: int = Field(1000, ge=1, le=100_000)
    batch_window_ms: float = Field(10.0, gt=0, le=60_000)
    max_models: int = Field(10_000, ge=1)
    """(model, segment) entries kept in memory; the least recently used beyond this are evicted."""
    fallback_segment: str | None = "__default__"
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = "0.0.0.0"  # noqa: S104 - a worker's metrics page is meant to be scraped
    web_enabled: bool = True
    partitions: int = Field(8, ge=1, le=10_000)
    """Partitions of topics the worker creates when they are missing."""
    max_message_bytes: int = Field(256 * 1024, ge=64)
    max_features: int = Field(1024, ge=1)
    max_raw_chars: int = Field(16 * 1024, ge=16)
    predict_attempts: int = Field(5, ge=1)
    send_attempts: int = Field(5, ge=1)
    commit_interval: float = Field(1.0, gt=0)
    session_timeout: float = Field(10.0, ge=2, le=300)
    """Kafka group session timeout: how long a killed worker's partitions wait before another takes them."""
    drain_timeout: float = Field(30.0, gt=0)
    datadir: Path | None = None
    stream_buffer: int = Field(4096, ge=1)
    """faust's per-partition stream buffer (stream_buffer_maxsize)."""
    producer_linger_ms: float = Field(1.0, ge=0)
    consumer: Literal["direct", "faust"] = "direct"
    """How the input topic is read: ``direct`` (whole aiokafka fetches, offsets committed after delivery;
    scorer.stream.direct) or ``faust`` (a faust agent taking ``noack_take`` batches, acked after delivery)."""
    pipeline_depth: int = Field(2, ge=0, le=64)
    """Batches whose outputs may await the broker's acknowledgement while the next one is scored (0: none)."""

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def limits(self) -> Limits:
        return Limits(max_message_bytes=self.max_message_bytes, max_features=self.max_features,
                      max_raw_chars=self.max_raw_chars)

    def resolved_datadir(self, settings: Settings) -> Path:
        """faust's data directory: one per app id (the consumer group, ``Settings.app_id``)."""
        return self.datadir or Path(tempfile.gettempdir()) / "scorer-faust" / settings.app_id
