"""The three-broker cluster's rendered configs: one quorum, RF 3 and min ISR 2 everywhere, its own ports and state."""

from __future__ import annotations

from pathlib import Path

from devstack.cluster import CLUSTER_ID, bootstrap, kafka_cluster
from devstack.stack import KafkaNode, _services


def _props(node: KafkaNode) -> dict[str, str]:
    return dict(line.split("=", 1) for line in node.render_properties().splitlines()
                if "=" in line and not line.startswith("#"))


def test_three_nodes_one_quorum_replicated_three_times(tmp_path: Path) -> None:
    nodes = kafka_cluster(tmp_path, [19092, 19093, 19094], [19192, 19193, 19194])
    props = [_props(node) for node in nodes]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    for p in props:
        assert p["controller.quorum.voters"] == voters
        for key in ("default.replication.factor", "offsets.topic.replication.factor",
                    "transaction.state.log.replication.factor"):
            assert p[key] == "3", key
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
    assert len({node.state for node in nodes}) == 3 and all(node.state.parent == tmp_path for node in nodes)
    assert len({node.cluster_id for node in nodes}) == 1 and nodes[0].cluster_id
    # Once written (by start), the id is the cluster's for good: a node formatted later still matches.
    (tmp_path / CLUSTER_ID).write_text("abc")
    assert {node.cluster_id for node in kafka_cluster(tmp_path, [1, 2, 3], [4, 5, 6])} == {"abc"}
    assert bootstrap(nodes) == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


def test_the_default_broker_is_unchanged_and_kafka3_is_only_started_when_named() -> None:
    (default,) = [node for node in _services([]) if node.kind == "kafka"]
    p = _props(default)
    assert p["node.id"] == "1" and p["controller.quorum.voters"] == f"1@{default.address}:{default.controller_port}"
    assert p["default.replication.factor"] == p["transaction.state.log.replication.factor"] == "1"
    assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "1"
    cluster = _services(["kafka3"])
    assert len(cluster) == 3 and default.port not in {node.port for node in cluster}
    assert default.state not in {node.state for node in cluster}
