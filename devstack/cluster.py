"""A three-broker KRaft Kafka cluster (replication 3, min.insync.replicas 2) beside the one-broker default.

Every node is a broker and a controller, so the controller quorum (three voters) and every partition
(three replicas, two needed in sync for a write) survive one node down: the failover tests kill the leader
of an input partition mid-stream and expect nothing acknowledged to be lost. The offsets and transaction
state logs are replicated the same way, so consumer groups and exactly-once transactions fail over too.

It never touches the default broker: its own ports (clients 19092-19094, controllers 19192-19194 unless
``SCORER_KAFKA3_PORT`` / ``SCORER_KAFKA3_CONTROLLER_PORT`` move them) and its own state directories
(``SCORER_KAFKA3_DATA``, by default ``kafka3/`` beside the default broker's). ``python -m devstack.stack up
kafka3`` starts it; ``stack status kafka3`` and ``stack down kafka3`` as for the others. Tests start their
own with :func:`kafka_cluster` on free ports under their tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from devstack.common import STATE, _env_int
from devstack.nodes import KafkaNode, kafka_cluster_id

CLUSTER_ID = "cluster-id"
"""File in the cluster's state directory holding its id (written by :func:`start`)."""


def kafka_cluster(state: Path, ports: Sequence[int], controller_ports: Sequence[int], *, address: str = "127.0.0.1",
                  min_isr: int = 2, heap: str = "384m", start_timeout: float = 180.0) -> list[KafkaNode]:
    """The nodes of one cluster (not started): node i keeps its state in ``state/broker<i>``."""
    if len(ports) != len(controller_ports) or not ports:
        raise ValueError("one client port and one controller port per node")
    id_file = state / CLUSTER_ID  # every node is formatted with it, however many starts that takes
    cluster_id = id_file.read_text().strip() if id_file.exists() else kafka_cluster_id()
    voters = ",".join(f"{i}@{address}:{port}" for i, port in enumerate(controller_ports, start=1))
    return [KafkaNode(name=f"broker{i}", address=address, port=port, controller_port=controller_port,
                      state=state / f"broker{i}", heap=heap, start_timeout=start_timeout, node_id=i, voters=voters,
                      replication=len(ports), min_isr=min(min_isr, len(ports)), cluster_id=cluster_id)
            for i, (port, controller_port) in enumerate(zip(ports, controller_ports, strict=True), start=1)]


def default_kafka3() -> list[KafkaNode]:
    port = _env_int("SCORER_KAFKA3_PORT", 19092)
    controller = _env_int("SCORER_KAFKA3_CONTROLLER_PORT", 19192)
    return kafka_cluster(Path(os.environ.get("SCORER_KAFKA3_DATA", STATE / "kafka3")),
                         [port, port + 1, port + 2], [controller, controller + 1, controller + 2],
                         address=os.environ.get("SCORER_KAFKA_ADDRESS", "127.0.0.1"),
                         heap=os.environ.get("SCORER_KAFKA3_HEAP", "384m"),
                         start_timeout=float(os.environ.get("SCORER_DEVSTACK_TIMEOUT", "180")))


def bootstrap(nodes: Sequence[KafkaNode]) -> str:
    """``host:port,...`` of every node, for aiokafka (``kafka://`` + ``;``-joined for SCORER_KAFKA)."""
    return ",".join(f"{node.address}:{node.port}" for node in nodes)


def start(nodes: Sequence[KafkaNode]) -> list[str]:
    """Launch every node, then wait for each (a node answers only once a quorum of controllers is up)."""
    id_file = nodes[0].state.parent / CLUSTER_ID
    if not id_file.exists():
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(nodes[0].cluster_id)
    states = [node.launch() for node in nodes]
    for node, state in zip(nodes, states, strict=True):
        if state not in ("running", "foreign"):
            node.wait_ready()
    return states
