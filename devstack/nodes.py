"""One server of the dev stack as a process: a Cassandra node or a KRaft Kafka broker, started from Maven jars.

Each node keeps its config, data, log and pid file in its own state directory; ``up`` is idempotent (a node
that already answers is left as it is) and every failure ends with one line naming the cause.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from devstack.common import (
    HERE,
    StackError,
    _pid_alive,
    _port_in_use,
    ensure_artifacts,
    find_java,
    tail,
)


@dataclass
class Node:
    """One server process with its own state directory, pid file and log."""

    name: str
    address: str
    port: int
    state: Path
    heap: str
    kind: str = ""
    start_timeout: float = 180.0
    proc_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.state / "pid"

    @property
    def log(self) -> Path:
        return self.state / f"{self.kind}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def status(self) -> str:
        """'running' (ours, answering), 'starting' (ours, not yet answering), 'foreign' (someone else's
        server answers), 'port-taken' (something else holds the port) or 'stopped'."""
        ours = self.pid()
        answering = self.ready()
        if ours:
            return "running" if answering else "starting"
        if answering:
            return "foreign"
        if _port_in_use(self.address, self.port):
            return "port-taken"
        return "stopped"

    def ready(self) -> bool:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config and create data directories before the first start."""

    def launch(self) -> str:
        """Start the process unless the node already answers; do not wait. Returns the state found before."""
        state = self.status()
        if state in ("running", "foreign"):
            note = "" if state == "running" else " (not started by devstack: left alone)"
            print(f"{self.kind} {self.name} already up on {self.address}:{self.port}{note}", flush=True)
            return state
        if state == "port-taken":
            raise StackError(
                f"{self.kind} {self.name}: port {self.address}:{self.port} is taken by another process that is not "
                f"{self.kind}; free it or set another port"
            )
        if state == "stopped":
            self.state.mkdir(parents=True, exist_ok=True)
            self.prepare()
            cmd = self.command()
            with self.log.open("ab") as log:
                log.write(f"\n==== devstack start {time.strftime('%Y-%m-%dT%H:%M:%S')} ====\n".encode())
                log.flush()
                proc = subprocess.Popen(  # fixed argv built above, no shell
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.state, start_new_session=True, env={**os.environ, **self.proc_env},
                )
            self.pid_file.write_text(str(proc.pid))
            print(f"{self.kind} {self.name} starting (pid {proc.pid}), log: {self.log}", flush=True)
        return state

    def up(self) -> bool:
        """Start the node unless it already answers; wait until it does. True when this call started it."""
        state = self.launch()
        if state not in ("running", "foreign"):
            self.wait_ready()
        return state == "stopped"

    def wait_ready(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < self.start_timeout:
            pid = self.pid()
            if pid is None:
                raise StackError(
                    f"{self.kind} {self.name} exited during start-up; last lines of {self.log}:\n{tail(self.log)}"
                )
            if self.ready():
                print(f"{self.kind} {self.name} ready on {self.address}:{self.port} "
                      f"after {time.monotonic() - started:.1f}s, log: {self.log}", flush=True)
                return
            time.sleep(1.0)
        self.down(quiet=True)
        raise StackError(
            f"{self.kind} {self.name} did not become ready within {self.start_timeout:.0f}s (stopped it); "
            f"last lines of {self.log}:\n{tail(self.log)}"
        )

    def down(self, quiet: bool = False, timeout: float = 45.0) -> bool:
        """Stop the node (SIGTERM, then SIGKILL); True when a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            if not quiet:
                print(f"{self.kind} {self.name} not running", flush=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.3)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.pid_file.unlink(missing_ok=True)
        if not quiet:
            print(f"{self.kind} {self.name} stopped (pid {pid})", flush=True)
        return True

    def kill(self) -> None:
        """SIGKILL the node at once, as a crash would (fault-injection tests)."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


@dataclass
class CassandraNode(Node):
    """A Cassandra 5.0 node. ``seeds`` lists the seed addresses (a one-node cluster seeds itself)."""

    kind: str = "cassandra"
    storage_port: int = 7000
    seeds: str = ""
    auth: bool = False
    tls_keystore: Path | None = None
    tls_keystore_password: str | None = None

    def render_yaml(self) -> str:
        extra = ""
        if self.tls_keystore is not None:
            # Client-to-node TLS only (the server presents its certificate; clients verify it with a CA).
            extra = (
                "client_encryption_options:\n"
                "  enabled: true\n"
                "  optional: false\n"
                f"  keystore: {self.tls_keystore}\n"
                f"  keystore_password: \"{self.tls_keystore_password}\"\n"
                "  require_client_auth: false\n"
            )
        template = Template((HERE / "cassandra" / "cassandra.yaml").read_text())
        return template.substitute(
            num_tokens=1,
            seeds=self.seeds or f"{self.address}:{self.storage_port}",
            address=self.address,
            storage_port=self.storage_port,
            port=self.port,
            data=self.state,
            authenticator="PasswordAuthenticator" if self.auth else "AllowAllAuthenticator",
            authorizer="CassandraAuthorizer" if self.auth else "AllowAllAuthorizer",
            extra=extra,
        )

    def prepare(self) -> None:
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "tmp", "triggers", "conf"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        (self.state / "conf" / "cassandra.yaml").write_text(self.render_yaml())
        shutil.copy(HERE / "cassandra" / "logback.xml", self.state / "conf" / "logback.xml")

    def command(self) -> list[str]:
        java = find_java("Cassandra 5.0", (11, 17))
        lib = ensure_artifacts("cassandra")
        jamm = sorted(lib.glob("jamm-*.jar"))
        agent = [f"-javaagent:{jamm[0]}"] if jamm else []
        conf = self.state / "conf"
        return [
            java, f"@{HERE / 'cassandra' / 'jvm17.flags'}", f"-Xms{self.heap}", f"-Xmx{self.heap}",
            "-XX:MaxDirectMemorySize=256M", *agent,
            f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={self.state}",
            f"-Dcassandra.logdir={self.state}",
            f"-Dcassandra.triggers_dir={self.state / 'triggers'}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.superuser_setup_delay_ms=0",
            f"-Djava.io.tmpdir={self.state / 'tmp'}",
            f"-Djna.tmpdir={self.state / 'tmp'}",
            "-cp", f"{conf}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def ready(self) -> bool:
        """True when a real CQL query succeeds (a bound port alone is not enough)."""
        if not _port_in_use(self.address, self.port):
            return False
        return cql_ping(self.address, self.port, tls=self.tls_keystore is not None)


def cql_ping(address: str, port: int, tls: bool = False) -> bool:
    """One CQL round trip; without credentials an auth-enabled node counts as answering when it asks for them.

    ``tls``: the node only accepts TLS clients; the probe encrypts but does not verify the certificate
    (it asks "is it up", not "is it trusted").
    """
    try:
        from cassandra import AuthenticationFailed
        from cassandra.cluster import Cluster, NoHostAvailable
    except ImportError as exc:  # pragma: no cover - the venv always has the driver
        raise StackError("cassandra-driver is missing; run make venv first") from exc
    import logging

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    context = None
    if tls:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # readiness probe only, never used for data
    cluster = Cluster([address], port=port, protocol_version=5, connect_timeout=3, control_connection_timeout=3,
                      ssl_context=context)
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=5)
        return True
    except NoHostAvailable as exc:
        return any(isinstance(err, AuthenticationFailed) or "Authentication" in str(err) for err in exc.errors.values())
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        cluster.shutdown()


@dataclass
class KafkaNode(Node):
    """A single KRaft broker+controller. The PLAINTEXT listener is the one clients use."""

    kind: str = "kafka"
    controller_port: int = 9093
    partitions: int = 4
    extra_listeners: dict[str, tuple[int, str]] = field(default_factory=dict)
    """name -> (port, security protocol), e.g. {"SASL_SSL": (9094, "SASL_SSL")}."""
    extra_properties: str = ""
    node_id: int = 1
    voters: str = ""
    """``id@host:controller_port,...`` of every controller of the cluster (empty: this node alone)."""
    replication: int = 1
    """Replication factor of new topics and of the offsets and transaction state logs."""
    min_isr: int = 1
    cluster_id: str = ""
    """The cluster's id, shared by its nodes (empty: a fresh one for a node alone)."""

    def render_properties(self) -> str:
        listeners = [f"PLAINTEXT://{self.address}:{self.port}", f"CONTROLLER://{self.address}:{self.controller_port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        for name, (port, protocol) in self.extra_listeners.items():
            listeners.append(f"{name}://{self.address}:{port}")
            protocols.append(f"{name}:{protocol}")
        template = Template((HERE / "kafka" / "server.properties").read_text())
        return template.substitute(
            node_id=self.node_id,
            voters=self.voters or f"{self.node_id}@{self.address}:{self.controller_port}",
            replication=self.replication,
            min_isr=self.min_isr,
            address=self.address,
            controller_port=self.controller_port,
            listeners=",".join(listeners),
            advertised_listeners=",".join(item for item in listeners if not item.startswith("CONTROLLER")),
            inter_broker_listener="PLAINTEXT",
            protocol_map=",".join(protocols),
            data=self.state,
            partitions=self.partitions,
            extra=self.extra_properties,
        )

    def _java_base(self, java: str, lib: Path, heap: str) -> list[str]:
        return [
            java, f"-Xms{heap}", f"-Xmx{heap}", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{HERE / 'kafka' / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.state}",
            "-cp", f"{lib}/*",
        ]

    def prepare(self) -> None:
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        props = self.state / "server.properties"
        props.write_text(self.render_properties())
        if (self.state / "data" / "meta.properties").exists():
            return
        java = find_java("Kafka", (11, 17, 21))
        lib = ensure_artifacts("kafka")
        cluster_id = self.cluster_id or kafka_cluster_id()
        fmt = subprocess.run(  # fixed argv
            [*self._java_base(java, lib, "256m"), "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if fmt.returncode != 0:
            raise StackError(f"kafka storage format failed: {(fmt.stderr or fmt.stdout).strip().splitlines()[-1:]}")

    def command(self) -> list[str]:
        java = find_java("Kafka", (11, 17, 21))
        lib = ensure_artifacts("kafka")
        return [*self._java_base(java, lib, self.heap), "kafka.Kafka", str(self.state / "server.properties")]

    def ready(self) -> bool:
        """True when the broker answers a metadata request (a bound port alone is not enough)."""
        if not _port_in_use(self.address, self.port):
            return False
        return kafka_ping(f"{self.address}:{self.port}")


def kafka_cluster_id() -> str:
    """A 22-character base64 cluster id that, like Kafka's Uuid.randomUuid, never starts with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def kafka_ping(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaClient

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(client.bootstrap(), 8)
            metadata = await asyncio.wait_for(client.fetch_all_metadata(), 8)
            return bool(metadata.brokers())
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        finally:
            await client.close()

    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(probe())


