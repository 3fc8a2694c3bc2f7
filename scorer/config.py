"""One settings object, read from SCORER_* environment variables and CLI flags, validated once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scorer.errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
DEFAULT_GUARANTEE = "exactly-once"
"""The workers' default delivery guarantee: exactly-once cost at most 10% of the at-least-once throughput
(median of the measured ratios 0.93; ``benchmarks/bench_worker.py --guarantees``)."""
CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything scorer needs to reach Cassandra and Kafka.

    Secrets are `SecretStr`, so they never show in a repr, a log line or an error message.
    """

    model_config = SettingsConfigDict(env_prefix="SCORER_", extra="forbid", frozen=True)

    cassandra_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1"])
    """Contact points, comma-separated in the environment."""
    cassandra_port: int = Field(9042, ge=1, le=65535)
    keyspace: str = "scorer"
    """Keyspace holding every scorer table."""
    cassandra_user: str | None = None
    cassandra_password: SecretStr | None = None
    cassandra_ca: Path | None = None
    """CA bundle (PEM); when set, connections use TLS and verify the server certificate."""
    cassandra_local_dc: str | None = None
    """Data centre for DC-aware routing; needed with NetworkTopologyStrategy across DCs."""
    cassandra_consistency: str = "LOCAL_QUORUM"
    """Consistency for versions, chunks and pointers (reads and writes)."""
    cassandra_connect_timeout: float = Field(5.0, gt=0)
    cassandra_request_timeout: float = Field(10.0, gt=0)
    cassandra_serial_consistency: Literal["LOCAL_SERIAL", "SERIAL"] = "LOCAL_SERIAL"
    """Paxos consistency of the lightweight transactions that claim version numbers. Paxos needs a majority
    of a partition's replicas alive: with RF 3 one node may be down, with RF 2 none (see README)."""
    cassandra_downgrade: bool = False
    """When replicas are down and cassandra_consistency cannot be met, retry once at what the live replicas
    can give (e.g. QUORUM -> ONE) instead of failing. For two-node/RF 2 clusters: consistent while both are
    up, available while one is down (reads during the outage may be stale; writes reach the other node by
    hints or repair)."""
    cassandra_claim_fallback: bool = False
    """When a version claim's LWT cannot get a Paxos quorum (RF 2 with a node down), claim the number with a
    plain write and a read-back instead of failing the publish. Unique only while no two publishers write
    the same model/segment at the same moment; a collision is refused at load by the checksum."""
    replication_class: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = Field(1, ge=1, le=10)
    """Replicas per data centre (SimpleStrategy: in the whole cluster)."""
    replication_dcs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """NetworkTopologyStrategy only: data centres, each `name` or `name:factor`."""

    kafka: str = "kafka://127.0.0.1:9092"
    """Broker URL(s) for faust/aiokafka, e.g. kafka://host1:9092;host2:9092."""
    kafka_user: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca: Path | None = None
    """CA bundle (PEM); when set, Kafka connections use TLS (SASL_SSL with a user)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    app_id: str = "scorer"
    """Faust application id: workers with the same id share the input topic's partitions."""
    changes_topic: str = "model-changes"
    """Kafka topic of pointer-change notices: written by activate/rollback/canary/promote/release, read by workers."""
    guarantee: Literal["exactly-once", "at-least-once"] = DEFAULT_GUARANTEE
    """What a worker promises about its outputs: each batch's outputs and input offsets in one Kafka transaction
    (exactly-once, for read_committed readers), or outputs acknowledged before offsets are committed (at-least-once:
    a crash re-scores the uncommitted tail). ``scorer worker --guarantee`` overrides it."""

    _split_hosts = field_validator("cassandra_hosts", "replication_dcs", mode="before")(_split_csv)

    @field_validator("keyspace")
    @classmethod
    def _keyspace_is_identifier(cls, value: str) -> str:
        # The keyspace is the one name that CQL cannot bind as a parameter, so it must be a plain identifier.
        if not _IDENT.match(value):
            raise ValueError(f"keyspace must be a letter then letters, digits or _ (max 48); got {value!r}")
        return value

    @field_validator("cassandra_consistency")
    @classmethod
    def _known_consistency(cls, value: str) -> str:
        value = value.upper()
        if value not in CONSISTENCY_LEVELS:
            raise ValueError(f"cassandra_consistency must be one of {', '.join(CONSISTENCY_LEVELS)}; got {value!r}")
        return value

    @field_validator("cassandra_hosts")
    @classmethod
    def _some_hosts(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("cassandra_hosts needs at least one host")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if (self.cassandra_user is None) != (self.cassandra_password is None):
            raise ValueError("SCORER_CASSANDRA_USER and SCORER_CASSANDRA_PASSWORD go together; set both or neither")
        if (self.kafka_user is None) != (self.kafka_password is None):
            raise ValueError("SCORER_KAFKA_USER and SCORER_KAFKA_PASSWORD go together; set both or neither")
        for name in ("cassandra_ca", "kafka_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file")
        if self.replication_class == "NetworkTopologyStrategy":
            if not self.replication_dcs:
                raise ValueError("NetworkTopologyStrategy needs SCORER_REPLICATION_DCS (e.g. dc1:3,dc2:3)")
            for entry in self.replication_dcs:
                name, _, factor = entry.partition(":")
                if not _IDENT.match(name) or (factor and not factor.isdigit()):
                    raise ValueError(f"replication_dcs entries are name or name:factor; got {entry!r}")
        elif self.replication_dcs:
            raise ValueError("SCORER_REPLICATION_DCS only applies to NetworkTopologyStrategy")
        return self

    def replication_map(self) -> dict[str, str | int]:
        """The keyspace's replication option, as CQL wants it."""
        if self.replication_class == "SimpleStrategy":
            return {"class": "SimpleStrategy", "replication_factor": self.replication_factor}
        out: dict[str, str | int] = {"class": "NetworkTopologyStrategy"}
        for entry in self.replication_dcs:
            name, _, factor = entry.partition(":")
            out[name] = int(factor) if factor else self.replication_factor
        return out


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (None means not given)."""
    from pydantic import ValidationError

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
