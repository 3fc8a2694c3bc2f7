"""Cassandra as a cluster: two nodes on two loopback addresses, RF 2, one of them killed and brought back.

What this proves (and the README's consistency section relies on):
- with the default settings (LOCAL_QUORUM, LWT claims) one node down stops every write and read: a quorum
  of 2 replicas is 2; the failure is one clear StoreUnavailable line naming the hosts;
- with the two-node settings (QUORUM + cassandra_downgrade + cassandra_claim_fallback) publishing,
  loading, activating, rolling back and releasing all keep working with one node down, the weights are
  bit-identical, and after the node returns reads are consistent again and LWT claims resume.

The dev stack on 127.0.0.1 is never touched: the nodes live on 127.0.0.4 and 127.0.0.5 with free ports
and state under the test's tmp dir, and are stopped at the end of the module.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from support.store import logistic

from devstack.stack import CassandraNode
from scorer import schema
from scorer.config import Settings, load_settings
from scorer.errors import StoreUnavailable
from scorer.store import CassandraModelStore
from scorer.store.connection import connect

pytestmark = pytest.mark.slow

ADDRESSES = ("127.0.0.4", "127.0.0.5")
TWO_NODE = {"cassandra_consistency": "QUORUM", "cassandra_downgrade": True, "cassandra_claim_fallback": True}
"""The settings a two-node, RF 2 cluster needs (README: Cassandra as a cluster)."""


def _port_free_on_all(addresses: tuple[str, ...]) -> int:
    """A port number free on every address (each node listens on the same port, on its own address)."""
    while True:
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as sock:
                    sock.bind((address, port))
            return port
        except OSError:
            continue


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[CassandraNode]]:
    port, storage = _port_free_on_all(ADDRESSES), _port_free_on_all(ADDRESSES)
    nodes = [CassandraNode(name=f"ring{i}", address=address, port=port, storage_port=storage,
                           seeds=f"{ADDRESSES[0]}:{storage}", state=tmp_path_factory.mktemp(f"ring{i}"),
                           heap="512M", start_timeout=240)
             for i, address in enumerate(ADDRESSES)]
    try:
        for node in nodes:  # one after the other: a node joins the ring only once the seed is up
            assert node.up(), f"{node.address}:{node.port} answered before we started it"
        yield nodes
    finally:
        for node in reversed(nodes):
            node.down(quiet=True)


@pytest.fixture(scope="module")
def ring_settings(ring: list[CassandraNode]) -> Iterator[Settings]:
    """Default settings on the ring with a fresh RF 2 keyspace (the schema applied while both are up)."""
    settings = load_settings(cassandra_hosts=",".join(ADDRESSES), cassandra_port=ring[0].port,
                             keyspace=f"ring_{uuid.uuid4().hex[:8]}", replication_factor=2)
    cluster, session = connect(settings)
    try:
        schema.apply(session, settings)
        session.cluster.control_connection.wait_for_schema_agreement(wait_time=30)
        yield settings
    finally:
        cluster.shutdown()


def _wait_until_up(store: CassandraModelStore, address: str, timeout: float = 60) -> None:
    cluster = store._session.cluster  # test-only look at the driver's view of the ring
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(host.address == address and host.is_up for host in cluster.metadata.all_hosts()):
            return
        time.sleep(0.5)
    raise AssertionError(f"the driver never saw {address} come back")


def test_publish_and_load_with_one_node_down_and_after_it_returns(ring: list[CassandraNode],
                                                                  ring_settings: Settings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    two_node = ring_settings.model_copy(update=TWO_NODE)
    v1_weights, v2_weights, v3_weights, other = logistic(1), logistic(2), logistic(3), logistic(4)
    with CassandraModelStore(two_node) as store, CassandraModelStore(ring_settings) as default_store:
        # Both up: the two-node settings behave like any other (LWT claims, logged batches).
        assert store.publish("delay", "ORD", v1_weights, activate=True) == 1
        store.publish_many("delay", [("JFK", v1_weights, None, None), ("LAX", v1_weights, None, None)],
                           activate=True)

        ring[1].kill()  # a crash: SIGKILL, no drain

        # Default settings: LOCAL_QUORUM needs both replicas, so nothing works; one clear line names the hosts.
        with pytest.raises(StoreUnavailable, match=r"Cassandra at 127\.0\.0\.4:\d+, 127\.0\.0\.5:\d+") as refused:
            default_store.publish("delay", "ORD", v2_weights)
        assert "\n" not in str(refused.value)

        # Two-node settings: publishing (a claim without Paxos), loading and swapping all keep working.
        caplog.set_level(logging.WARNING, logger="scorer.store")
        assert store.publish("delay", "ORD", v2_weights) == 2
        assert "claimed delay/ORD version 2 without Paxos" in caplog.text
        assert store.load("delay", "ORD", 2).to_bytes() == v2_weights.to_bytes()
        assert store.load("delay", "ORD").to_bytes() == v1_weights.to_bytes()  # still the active one
        assert store.activate("delay", "ORD", 2, reason="node down").to_version == 2
        assert "activate delay/ORD version 2: logged batch refused" in caplog.text
        assert store.active("delay")["ORD"].version == 2
        assert store.load("delay", "ORD").to_bytes() == v2_weights.to_bytes()
        assert store.rollback("delay", "ORD").to_version == 1
        assert store.activate("delay", "ORD", 2).to_version == 2
        versions = store.publish_many("delay", [("JFK", other, None, None), ("LAX", other, None, None)])
        assert versions == {"JFK": 2, "LAX": 2}
        store.release("delay", versions)
        assert {seg: pointer.version for seg, pointer in store.active("delay").items()} == \
               {"ORD": 2, "JFK": 2, "LAX": 2}
        loaded = store.load_many([("delay", "JFK", 2), ("delay", "LAX", 2), ("delay", "ORD", 1)])
        assert [w.to_bytes() for w in loaded.values()] == [other.to_bytes(), other.to_bytes(),
                                                          v1_weights.to_bytes()]

        assert ring[1].up()
        _wait_until_up(store, ADDRESSES[1])

        # Back to two replicas: QUORUM reads see what was written while the node was away, the log is whole,
        # and new numbers are claimed with LWTs again, after the ones handed out without Paxos.
        assert store.load("delay", "ORD", 2).to_bytes() == v2_weights.to_bytes()
        assert [entry.to_version for entry in store.activations("delay", "ORD")][:4] == [2, 1, 2, 1]
        assert store.publish("delay", "ORD", v3_weights, activate=True) == 3
        assert default_store.load("delay", "ORD").to_bytes() == v3_weights.to_bytes()
        assert [info.version for info in default_store.versions("delay", "ORD")] == [3, 2, 1]
        assert {seg: p.version for seg, p in default_store.active("delay").items()} == {"ORD": 3, "JFK": 2, "LAX": 2}


def test_lwt_claims_resume_and_stay_unique_when_both_nodes_are_up(ring: list[CassandraNode],
                                                                  ring_settings: Settings) -> None:
    """Racing publishers on the healthy ring still get distinct numbers with the two-node settings on."""
    from concurrent.futures import ThreadPoolExecutor

    two_node = ring_settings.model_copy(update=TWO_NODE)
    for node in ring:
        assert node.ready()
    with CassandraModelStore(two_node) as store:
        with ThreadPoolExecutor(max_workers=4) as pool:
            numbers = list(pool.map(lambda seed: store.publish("race", "S", logistic(seed)), range(8)))
        assert sorted(numbers) == list(range(1, 9))
