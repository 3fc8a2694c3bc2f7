"""Options of one ``scorer worker`` (its CLI flags): validated once, frozen, passed to the worker and its readers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scorer.config import DEFAULT_GUARANTEE, Settings
from scorer.stream.events import Limits

ALO_COMMIT_INTERVAL = 1.0
EOS_COMMIT_INTERVAL = 0.1
"""Like Kafka Streams under exactly-once: outputs are visible to read_committed readers after about this long."""


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
    commit_interval: float = Field(ALO_COMMIT_INTERVAL, gt=0)
    """Seconds between commits; by default 1.0 at-least-once, 0.1 exactly-once (an exactly-once output becomes
    visible to read_committed readers only when its transaction commits, so this bounds their latency)."""
    session_timeout: float = Field(10.0, ge=2, le=300)
    """Kafka group session timeout: how long a killed worker's partitions wait before another takes them."""
    drain_timeout: float = Field(30.0, gt=0)
    datadir: Path | None = None
    stream_buffer: int = Field(4096, ge=1)
    """faust's per-partition stream buffer (stream_buffer_maxsize)."""
    producer_linger_ms: float = Field(0.0, ge=0, le=1000)
    """The output producer's linger: a batch's outputs are handed over together and go out in one request
    regardless, so waiting only delays them (1 ms of linger cost about 1.6 ms of p50 latency at 10,000/s)."""
    consumer: Literal["direct", "faust"] = "direct"
    """How the input topic is read: ``direct`` (whole aiokafka fetches, offsets committed after delivery;
    scorer.stream.direct) or ``faust`` (a faust agent taking ``noack_take`` batches, acked after delivery)."""
    pipeline_depth: int = Field(2, ge=0, le=64)
    """Batches whose outputs may await the broker's acknowledgement while the next one is scored (0: none)."""
    guarantee: Literal["exactly-once", "at-least-once"] = DEFAULT_GUARANTEE
    """``exactly-once``: the direct reader commits each input partition's outputs and offsets in one Kafka
    transaction (scorer.stream.transactional); ``at-least-once``: outputs acknowledged, then offsets committed."""
    transaction_timeout: float = Field(60.0, ge=1, le=900)
    """Exactly-once: seconds after which the broker aborts a transaction its worker stopped finishing."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Unset (or None) guarantee and commit interval: the defaults that go with the reader and the guarantee."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("guarantee") is None:  # the faust agent reader can only be at-least-once
            data["guarantee"] = DEFAULT_GUARANTEE if data.get("consumer", "direct") == "direct" else "at-least-once"
        if data.get("commit_interval") is None:
            eos = data["guarantee"] == "exactly-once"
            data["commit_interval"] = EOS_COMMIT_INTERVAL if eos else ALO_COMMIT_INTERVAL
        return data

    @model_validator(mode="after")
    def _guarantee_needs_direct(self) -> WorkerConfig:
        if self.guarantee == "exactly-once" and self.consumer != "direct":
            raise ValueError("exactly-once needs the direct reader (--consumer direct)")
        return self

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly-once"

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
