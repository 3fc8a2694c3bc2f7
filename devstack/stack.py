"""Start, stop and inspect a real Cassandra 5.0, a real KRaft Kafka broker and a Prometheus without docker.

Both servers run from Maven Central jars on the machine's JDK: Maven fetches them once into a cache
outside the repository (``SCORER_DEVSTACK_CACHE``), and each node keeps its config, data, log and pid
file in its own state directory. ``up`` is idempotent: a node that already answers is left as it is.
Every failure ends with one line naming the cause (plus, for a start-up failure, the tail of the log).

Used by ``make up/down/status`` and, as a library, by the integration tests (clusters, restarts).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack.common import (  # noqa: F401 - re-exported for callers (tests use some)
    CACHE,
    HERE,
    MVN_PLUGIN,
    STATE,
    StackError,
    _env_int,
    _pid_alive,
    _port_in_use,
    ensure_artifacts,
    find_java,
    java_major,
    tail,
)
from devstack.nodes import (  # noqa: F401 - re-exported for callers
    CassandraNode,
    KafkaNode,
    Node,
    cql_ping,
    kafka_cluster_id,
    kafka_ping,
)
from devstack.prometheus import PrometheusNode, default_prometheus  # noqa: F401 - re-exported

# ------------------------------------------------------------------------------------- default stack


def default_cassandra() -> CassandraNode:
    return CassandraNode(
        name="node1",
        address=os.environ.get("SCORER_CASSANDRA_ADDRESS", "127.0.0.1"),
        port=_env_int("SCORER_CASSANDRA_PORT", 9042),
        storage_port=_env_int("SCORER_CASSANDRA_STORAGE_PORT", 7000),
        state=Path(os.environ.get("SCORER_CASSANDRA_DATA", STATE / "cassandra")),
        heap=os.environ.get("SCORER_CASSANDRA_HEAP", "768M"),
        start_timeout=float(os.environ.get("SCORER_DEVSTACK_TIMEOUT", "180")),
    )


def default_kafka() -> KafkaNode:
    return KafkaNode(
        name="broker1",
        address=os.environ.get("SCORER_KAFKA_ADDRESS", "127.0.0.1"),
        port=_env_int("SCORER_KAFKA_PORT", 9092),
        controller_port=_env_int("SCORER_KAFKA_CONTROLLER_PORT", 9093),
        state=Path(os.environ.get("SCORER_KAFKA_DATA", STATE / "kafka")),
        heap=os.environ.get("SCORER_KAFKA_HEAP", "512m"),
        start_timeout=float(os.environ.get("SCORER_DEVSTACK_TIMEOUT", "120")),
    )


DEFAULT_SERVICES = ("cassandra", "kafka", "prometheus")
"""What ``up``/``down``/``status`` act on when no service is named (``kafka3`` only when named)."""


def _services(names: list[str]) -> list[Node]:
    from devstack.cluster import default_kafka3

    table = {"cassandra": lambda: [default_cassandra()], "kafka": lambda: [default_kafka()],
             "prometheus": lambda: [default_prometheus()], "kafka3": default_kafka3}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise StackError(f"unknown service {unknown[0]!r}; choose from {', '.join(table)}")
    return [node for n in (names or DEFAULT_SERVICES) for node in table[n]()]


def _label(node: Node) -> str:
    """The name a node goes by in records: its kind for the default nodes (as before), kind/name in a cluster."""
    return f"{node.kind}/{node.name}" if getattr(node, "voters", "") else node.kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("up", "down", "status", "fetch"):
        cmd = sub.add_parser(action)
        cmd.add_argument("services", nargs="*",
                         help="cassandra, kafka, prometheus, kafka3 (three brokers, RF 3; devstack/cluster.py) "
                         "[default: cassandra, kafka and prometheus]")
        if action in ("up", "down"):
            cmd.add_argument("--record", type=Path, help="up: write the names it started here; down: stop only those")
    args = parser.parse_args(argv)
    try:
        nodes = _services(args.services)
        if args.action == "fetch":
            for node in nodes:
                if node.kind != "prometheus":  # a Debian package, not Maven jars
                    print(f"{node.kind} jars in {ensure_artifacts(node.kind)}")
        elif args.action == "status":
            for node in nodes:
                print(f"{_label(node):16} {node.status():10} {node.address}:{node.port}  log: {node.log}")
        elif args.action == "up":
            # Launch every node first, then wait: the JVMs warm up side by side (and a cluster needs a quorum).
            states = {_label(node): node.launch() for node in nodes}
            if args.record is not None:
                args.record.write_text("\n".join(label for label, state in states.items() if state == "stopped"))
            for node in nodes:
                if states[_label(node)] not in ("running", "foreign"):
                    node.wait_ready()
        else:
            if args.record is not None:
                recorded = args.record.read_text().split() if args.record.exists() else []
                nodes = [node for node in nodes if _label(node) in recorded]
                args.record.unlink(missing_ok=True)
            for node in reversed(nodes):
                node.down()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
