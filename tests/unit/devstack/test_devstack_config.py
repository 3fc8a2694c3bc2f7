"""docker-compose.yml must agree with the no-docker devstack on versions, ports and broker settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from devstack.stack import KafkaNode, kafka_cluster_id

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _pom_version(kind: str, artifact: str) -> str:
    pom = (ROOT / "devstack" / kind / "pom.xml").read_text()
    match = re.search(rf"<artifactId>{artifact}</artifactId>\s*<version>([^<]+)</version>", pom)
    assert match, f"{artifact} not in {kind}/pom.xml"
    return match.group(1)


def _server_properties() -> dict[str, str]:
    node = KafkaNode(name="x", address="127.0.0.1", port=9092, state=Path("/tmp/x"), heap="1m")
    props = {}
    for line in node.render_properties().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def test_same_server_versions() -> None:
    services = _compose()["services"]
    cassandra_minor = ".".join(_pom_version("cassandra", "cassandra-all").split(".")[:2])
    assert services["cassandra"]["image"] == f"cassandra:{cassandra_minor}"
    assert services["kafka"]["image"] == "apache/kafka:" + _pom_version("kafka", "kafka_2.13")


def test_same_ports() -> None:
    services = _compose()["services"]
    assert services["cassandra"]["ports"] == ["127.0.0.1:${SCORER_CASSANDRA_PORT:-9042}:9042"]
    assert services["kafka"]["ports"] == ["127.0.0.1:${SCORER_KAFKA_PORT:-9092}:9092"]
    assert _server_properties()["listeners"].startswith("PLAINTEXT://127.0.0.1:9092")


def test_same_broker_settings() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    props = _server_properties()
    for key in ("num.partitions", "message.max.bytes", "group.initial.rebalance.delay.ms",
                "offsets.topic.num.partitions", "auto.create.topics.enable", "min.insync.replicas",
                "replica.fetch.max.bytes", "log.retention.hours"):
        compose_key = "KAFKA_" + key.replace(".", "_").upper()
        assert str(env[compose_key]).lower() == props[key].lower(), key
    assert props["process.roles"] == env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_cluster_id_never_starts_with_dash() -> None:
    ids = {kafka_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(cid) == 22 and not cid.startswith("-") for cid in ids)
