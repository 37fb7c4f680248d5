"""A cluster of N combined nodes (`process.roles=broker,controller`), or of N controllers beside M brokers
(`process.roles=controller` and `broker`), for e2e/cluster, built from the
single-broker harness of e2e/broker (`harness.SluiceBroker` / `harness.KafkaBroker`, picked by
`SLUICE_PEER`): node ids 1..N, each with a PLAINTEXT client listener and a CONTROLLER listener on free
loopback ports, and the same static `controller.quorum.voters` on every node. Kafka's nodes are all
formatted with one cluster id; Sluice's get it as `cluster.id` and format themselves.

Also here: a raw Metadata v12 request (cluster id, brokers, topics with ids, each partition's leader,
epoch, replicas and ISR), so that "node X lists Y" is asked of node X alone, and Kafka's own
`kafka-metadata-quorum` tool (`leader_id()`, `replication()`), which goes through DescribeQuorum on a
broker listener.

`Cluster(netns=True)` puts each node in its own network namespace (netns.py), listening and advertising on
its own address (10.77.S.(10+i)) instead of loopback, so that `partition(i)` can cut node i off from the
others while this process still reaches every node; `heal()` joins them again. The default path (loopback, no
namespaces) is unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

import harness
import kwire
from harness import Broker, BrokerError, KafkaBroker
from ktls_vm import VmSluiceBroker
from netns import NodeNetwork

# Kafka needs a while to form a quorum and register three brokers on two cores.
READY_TIMEOUT_S = float(os.environ.get("E2E_CLUSTER_READY_TIMEOUT", "60"))
KAFKA_NODE_HEAP = os.environ.get("E2E_CLUSTER_KAFKA_HEAP", "384m")
TOOL_TIMEOUT_S = 40.0
QUORUM_GONE_GRACE_S = 10.0


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll `predicate` until it returns something truthy (returned); raise TimeoutError with the
    last value or exception it produced."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - a probe failing is "not yet"
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# -- Metadata v12 over a raw socket ---------------------------------------------------------------


@dataclass
class PartitionInfo:
    error_code: int
    leader: int  # -1: none
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]


@dataclass
class TopicInfo:
    name: str
    topic_id: str  # hex of the 16 bytes
    error_code: int
    partitions: dict[int, int]  # partition index -> leader id (-1: none)
    details: dict[int, PartitionInfo] = field(default_factory=dict)  # partition index -> all of it


@dataclass
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: dict[int, tuple[str, int]]  # node id -> (host, port)
    topics: dict[str, TopicInfo] = field(default_factory=dict)


def _compact_array_len(r: kwire.Reader) -> int:
    n = r.uvarint()
    return -1 if n == 0 else n - 1


def _compact_string(r: kwire.Reader) -> str | None:
    n = r.uvarint()
    return None if n == 0 else r.take(n - 1).decode(errors="replace")


def metadata(bootstrap: str, timeout: float = 5.0) -> ClusterMetadata:
    """Metadata v12 for all topics, asked of exactly the node at `bootstrap`."""
    header = kwire.request_header(kwire.API_METADATA, 12, 1, "sluice-e2e-cluster", flexible=True)
    # topics: null compact array (= all), allow_auto_topic_creation false,
    # include_topic_authorized_operations false, no tagged fields.
    body = bytes([0]) + bytes([0, 0]) + bytes([0])
    with kwire.connect(bootstrap, timeout=timeout) as sock:
        sock.sendall(kwire.frame(header + body))
        r = kwire.Reader(kwire.recv_frame(sock))
    if r.int32() != 1:
        raise kwire.ProtocolError("correlation id mismatch")
    r.skip_tagged_fields()  # response header v1
    r.int32()  # throttle
    brokers = {}
    for _ in range(_compact_array_len(r)):
        node_id = r.int32()
        host = _compact_string(r) or ""
        port = r.int32()
        _compact_string(r)  # rack
        r.skip_tagged_fields()
        brokers[node_id] = (host, port)
    cluster_id = _compact_string(r)
    controller_id = r.int32()
    topics = {}
    for _ in range(_compact_array_len(r)):
        error_code = r.int16()
        name = _compact_string(r)
        topic_id = r.take(16).hex()
        r.int8()  # is_internal
        partitions = {}
        details = {}
        for _ in range(_compact_array_len(r)):
            partition_error = r.int16()
            index = r.int32()
            leader = r.int32()
            epoch = r.int32()
            replicas, isr, offline = ([r.int32() for _ in range(_compact_array_len(r))] for _ in range(3))
            r.skip_tagged_fields()
            partitions[index] = leader
            details[index] = PartitionInfo(partition_error, leader, epoch, replicas, isr, offline)
        r.int32()  # topic authorized operations
        r.skip_tagged_fields()
        if name is not None:
            topics[name] = TopicInfo(name, topic_id, error_code, partitions, details)
    r.skip_tagged_fields()
    return ClusterMetadata(cluster_id, controller_id, brokers, topics)


# -- the cluster ----------------------------------------------------------------------------------


class Cluster:
    """N combined nodes, ids 1..N; `nodes[i - 1]` is node i (a harness.Broker, with its own
    start/stop/kill9/restart, ports and data dir, all kept across restarts). With `brokers=M`, nodes 1..N
    are controller-only and N+1..N+M broker-only."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        size: int = 3,
        brokers: int = 0,
        session_timeout_ms: int = 4000,
        heartbeat_interval_ms: int = 500,
        extra_config: dict[str, object] | None = None,
        roles: dict[int, str] | None = None,
        dynamic: bool = False,
        netns: bool = False,
        lenient_stop: bool = False,
        secure: str | None = None,
        vm: bool = False,
    ):
        self.peer = harness.peer_name()
        self.log_dir = log_dir
        self.cluster_id = harness.random_cluster_id()
        self.session_timeout_ms = session_timeout_ms
        # Whole-cluster stop: a node still running QUORUM_GONE_GRACE_S after the majority of the controllers
        # exited is killed without counting as a failure to stop (see stop_all).
        self.lenient_stop = lenient_stop
        # A virtual machine boots under software emulation before its broker starts.
        self.ready_timeout = max(READY_TIMEOUT_S, 300.0) if vm else READY_TIMEOUT_S
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"sluice-e2e-cluster-{name}-"))
        self.nodes: list[Broker] = []
        for i in range(1, size + brokers + 1):
            # `secure`: a second client listener of that name and protocol on each broker (harness.Broker).
            if vm and self.peer == "sluice":
                # Each Sluice node in its own virtual machine with kernel TLS (e2e/broker/ktls_vm.py), at
                # 10.79.i.2; the data dir stays on the host, so restarts keep it and the checker reads it.
                node = VmSluiceBroker(f"node-{i}", log_dir, secure=secure, net=i, data_on_share=True)
            else:
                node = harness.make_broker(f"node-{i}", log_dir, secure=secure)
            node.node_id = i
            node.cluster_id = self.cluster_id
            if brokers:
                node.roles = "controller" if i <= size else "broker"
            if roles and i in roles:
                node.roles = roles[i]
            if isinstance(node, KafkaBroker):
                node.heap = KAFKA_NODE_HEAP
            self.nodes.append(node)
        # Each node in its own network namespace, at its own address there (made last: nothing after this can
        # fail before the fixture owns the cluster and tears it down).
        self.network: NodeNetwork | None = None
        if netns:
            self.network = NodeNetwork([n.node_id for n in self.nodes])
            self.network.setup()
            for n in self.nodes:
                n.host = self.network.address(n.node_id)
                n.netns = self.network.namespace(n.node_id)
        # Every port is known only now, so the voters (the same on every node) are set last.
        self.voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.controllers)
        # A dynamic quorum (KIP-853) names every controller as a bootstrap server; its voters live in the log,
        # starting with those the format flags give (each node's `format_flags`).
        self.dynamic = dynamic
        quorum = (
            {"controller.quorum.bootstrap.servers": ",".join(f"{n.host}:{n.controller_port}" for n in self.controllers)}
            if dynamic else {"controller.quorum.voters": self.voters}
        )
        for node in self.nodes:
            node.extra_config = {
                **quorum,
                "inter.broker.listener.name": "PLAINTEXT",
                "broker.session.timeout.ms": str(session_timeout_ms),
                "broker.heartbeat.interval.ms": str(heartbeat_interval_ms),
                **({"cluster.id": self.cluster_id} if self.peer == "sluice" else {}),
                **{k: str(v) for k, v in (extra_config or {}).items()},
            }

    def node(self, node_id: int) -> Broker:
        return self.nodes[node_id - 1]

    def live(self) -> list[Broker]:
        return [n for n in self.nodes if n.is_alive()]

    @property
    def controllers(self) -> list[Broker]:
        return [n for n in self.nodes if "controller" in n.roles]

    @property
    def brokers(self) -> list[Broker]:
        """The nodes with a client listener."""
        return [n for n in self.nodes if "broker" in n.roles]

    def live_brokers(self) -> list[Broker]:
        return [n for n in self.brokers if n.is_alive()]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.brokers)

    # -- processes ---------------------------------------------------------------------------------

    def start(self, node_ids: list[int] | None = None, timeout: float | None = None) -> None:
        """Start these nodes (default: all) at once, then wait until every live node lists every
        live node (a node of a KRaft cluster is only ready once a majority of voters runs)."""
        for i in node_ids or [n.node_id for n in self.nodes]:
            self.node(i).start(wait=False)
        self.wait_ready(timeout)

    def restart(self, node_ids: list[int], timeout: float | None = None) -> None:
        for i in node_ids:
            self.node(i).stop()
        self.start(node_ids, timeout)

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = timeout or self.ready_timeout
        live = self.live_brokers()
        want = {n.node_id: (n.host, n.port) for n in live}

        def ready():
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    rc = n.proc.returncode
                    n.proc = None
                    raise BrokerError(f"node {n.node_id} exited with status {rc} during start-up\n{n.log_tail()}")
            return all(metadata(n.bootstrap, timeout=3).brokers == want for n in live)

        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                if ready():
                    for n in live:
                        n._note(f"cluster ready: nodes {sorted(want)}")
                    return
            except BrokerError:
                raise
            except (OSError, kwire.ProtocolError) as e:
                last = e
            time.sleep(0.3)
        seen = {}
        for n in live:
            try:
                seen[n.node_id] = sorted(metadata(n.bootstrap, timeout=3).brokers)
            except (OSError, kwire.ProtocolError) as e:
                seen[n.node_id] = repr(e)
        raise BrokerError(
            f"cluster not ready within {timeout}s: want every live node to list {sorted(want)}, "
            f"they list {seen} (last error {last!r})\n" + "\n".join(n.log_tail(40) for n in live)
        )

    def stop_all(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM every live node at once and wait; nodes still running after `timeout` are killed
        (returned). One at a time would hang: Kafka's last node waits for a quorum that is gone.
        Broker-only nodes go first: Kafka's controlled shutdown of a broker needs the controllers.

        Even all at once, a Kafka node with replicated partitions sometimes waits for its controlled
        shutdown (up to 5 minutes) after the other nodes, the quorum's majority, already exited: its
        shutdown was not granted before they left (seen in 2 of 25 replication tests, always a node
        restarted shortly before). With `lenient_stop` such a node is killed QUORUM_GONE_GRACE_S after the
        majority is gone and not returned; any other node still running after `timeout` is."""
        killed = []
        if self.controllers != self.brokers:
            killed += self._stop([n for n in self.live() if "controller" not in n.roles], timeout)
        return killed + self._stop(self.live(), timeout)

    def _stop(self, running: list[Broker], timeout: float) -> list[int]:
        for n in running:
            n._note("stopping with SIGTERM (whole cluster)")
            n.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        pending = list(running)
        quorum_gone_at: float | None = None
        while pending and time.monotonic() < deadline:
            for n in list(pending):
                rc = n.proc.poll()
                if rc is not None:
                    n._note(f"exited with status {rc}")
                    n.proc = None
                    pending.remove(n)
            if self.lenient_stop and pending and quorum_gone_at is None:
                voting = [v for v in self.controllers if v.is_alive()]
                if len(voting) <= len(self.controllers) // 2:
                    quorum_gone_at = time.monotonic()
            if quorum_gone_at is not None and time.monotonic() - quorum_gone_at > QUORUM_GONE_GRACE_S:
                break
            time.sleep(0.1)
        killed = []
        for n in pending:
            if quorum_gone_at is not None:
                n._note(f"still running {QUORUM_GONE_GRACE_S}s after the quorum's majority exited "
                        "(a controlled shutdown no controller is left to grant): SIGKILL")
            else:
                if isinstance(n, KafkaBroker):
                    n.thread_dump()
                n._note(f"still running {timeout}s after SIGTERM: SIGKILL")
                killed.append(n.node_id)
            n.proc.kill()
            n.proc.wait(10)
            n.proc = None
        return killed

    def cleanup(self) -> list[str]:
        """Stop every node (all at once) and delete the data dirs; logs stay in the log dir. Returns
        what went wrong: a node that ignored SIGTERM for 30 s is killed and reported, and so is anything
        of the network namespaces (netns=True) that could not be removed."""
        errors = []
        try:
            # A cut node's controlled shutdown would wait for a controller it cannot reach.
            if self.network is not None:
                self.network.heal()
            killed = self.stop_all()
            errors += [f"node {i} did not exit within 30s of SIGTERM (killed)" for i in killed]
        finally:
            try:
                for n in self.nodes:
                    if n.proc is not None and n.proc.poll() is None:
                        n.proc.kill()
                        n.proc.wait(10)
                    n.proc = None
                    n.cleanup()
                shutil.rmtree(self.work_dir, ignore_errors=True)
            finally:
                if self.network is not None:
                    errors += self.network.teardown()
        return errors

    # -- network partitions (netns=True) -------------------------------------------------------------

    def partition(self, node_id: int) -> None:
        """Cut node `node_id` off from every other node (both ways); clients here still reach all of them."""
        if self.network is None:
            raise BrokerError("partition() needs Cluster(netns=True)")
        self.node(node_id)._note("network: cut off from the other nodes")
        self.network.partition(node_id)

    def heal(self) -> None:
        if self.network is None:
            raise BrokerError("heal() needs Cluster(netns=True)")
        for i in sorted(self.network.cut):
            self.node(i)._note("network: joined to the other nodes again")
        self.network.heal()

    # -- Kafka's kafka-metadata-quorum tool ----------------------------------------------------------

    def kafka_tool(self, main_class: str, *args: str, timeout: float = TOOL_TIMEOUT_S) -> str:
        """Run one of Kafka's own command-line tools (`main_class` from the jars the harness resolves, against
        either peer) with ARGS; returns its stdout, raises if it exits non-zero."""
        proc = harness.run_kafka_tool(main_class, *args, timeout=timeout)
        if proc.returncode != 0:
            raise BrokerError(
                f"{main_class.rsplit('.', 1)[-1]} {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def bounded_tool_config(self) -> Path:
        """A --command-config whose requests give up well inside TOOL_TIMEOUT_S: the admin client's defaults
        retry a request for a minute, so a tool killed at our timeout would never say what it waited for."""
        config = self.work_dir / "tool.properties"
        if not config.exists():
            config.write_text("request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n")
        return config

    def quorum_tool(self, *args: str, via: Broker | None = None, timeout: float = TOOL_TIMEOUT_S,
                    node_config: Broker | None = None, controller: Broker | None = None) -> str:
        """Run `kafka-metadata-quorum --bootstrap-server <via> ARGS`; returns its stdout, raises if it fails.
        `node_config`: a node whose server.properties is the tool's --command-config (add-controller reads the
        new controller's id, listeners and metadata directory id from there). `controller`: go through that
        node's controller listener instead (`--bootstrap-controller`, KIP-919)."""
        via = via or controller or self.live_brokers()[0]
        bootstrap = (["--bootstrap-controller", f"{controller.host}:{controller.controller_port}"] if controller
                     else ["--bootstrap-server", via.bootstrap])
        config = self.bounded_tool_config()
        if node_config is not None:
            config = self.work_dir / f"tool-node-{node_config.node_id}.properties"
            config.write_text(node_config.props_path.read_text()
                              + "request.timeout.ms=30000\ndefault.api.timeout.ms=60000\n")
        try:
            return self.kafka_tool("org.apache.kafka.tools.MetadataQuorumCommand", *bootstrap,
                                   "--command-config", str(config), *args, timeout=timeout)
        except BrokerError as e:
            raise BrokerError(f"kafka-metadata-quorum via node {via.node_id}: {e}") from None

    def quorum_status(self, via: Broker | None = None, controller: Broker | None = None) -> dict[str, str]:
        """`describe --status` as {field: value}, e.g. LeaderId, LeaderEpoch, CurrentVoters."""
        out = self.quorum_tool("describe", "--status", via=via, controller=controller)
        return {m.group(1): m.group(2).strip() for m in re.finditer(r"^(\w+):\s*(.*)$", out, re.M)}

    def leader_id(self, via: Broker | None = None) -> int:
        """The active controller, as Kafka's tool reports it (LeaderId)."""
        status = self.quorum_status(via)
        if "LeaderId" not in status:
            raise BrokerError(f"no LeaderId in kafka-metadata-quorum describe --status: {status}")
        return int(status["LeaderId"])

    def replication(self, via: Broker | None = None) -> list[dict[str, str]]:
        """`describe --replication` as one dict per row (NodeId, LogEndOffset, Lag, Status, ...)."""
        lines = [l for l in self.quorum_tool("describe", "--replication", via=via).splitlines() if l.strip()]
        header = lines[0].split() if lines else []
        rows = [dict(zip(header, l.split())) for l in lines[1:]]
        if not rows or "NodeId" not in header:
            raise BrokerError(f"unexpected kafka-metadata-quorum describe --replication output: {lines}")
        return rows


# -- CreateTopics to exactly one node ---------------------------------------------------------------

API_CREATE_TOPICS = 19


def create_topic_via(node: Broker, name: str, partitions: int = 1, timeout_ms: int = 30000) -> None:
    """CreateTopics v7 (replication factor 1) sent over a socket to exactly `node`, which forwards it to
    the active controller; raises unless the answer is NONE.

    Right after a node dies a client library cannot do this reliably: a KRaft broker names a random
    live broker as "controller" in Metadata, the dead one included until it is fenced, and librdkafka's
    AdminClient then waits for that broker until its request timeout ("Timed out waiting for
    controller"), seen against Kafka 4.4 in about one run in three."""
    header = kwire.request_header(API_CREATE_TOPICS, 7, 1, "sluice-e2e-cluster", flexible=True)
    raw_name = name.encode()
    topic = (
        kwire._uvarint(len(raw_name) + 1) + raw_name
        + struct.pack(">ih", partitions, 1)
        + kwire._uvarint(1)  # assignments: empty
        + kwire._uvarint(1)  # configs: empty
        + kwire._uvarint(0)  # tagged fields
    )
    body = kwire._uvarint(2) + topic + struct.pack(">ib", timeout_ms, 0) + kwire._uvarint(0)
    with kwire.connect(node.bootstrap, timeout=timeout_ms / 1000 + 10) as sock:
        sock.sendall(kwire.frame(header + body))
        r = kwire.Reader(kwire.recv_frame(sock))
    if r.int32() != 1:
        raise kwire.ProtocolError("correlation id mismatch")
    r.skip_tagged_fields()
    r.int32()  # throttle
    if _compact_array_len(r) != 1 or _compact_string(r) != name:
        raise kwire.ProtocolError(f"CreateTopics through node {node.node_id}: answer is not about {name}")
    r.take(16)  # topic id
    error_code = r.int16()
    message = _compact_string(r)
    if error_code != 0:
        raise BrokerError(f"CreateTopics {name} through node {node.node_id}: {kwire.error_name(error_code)} {message or ''}")


# -- FindCoordinator to exactly one node ----------------------------------------------------------------

API_FIND_COORDINATOR = 10


def find_coordinator(node: Broker, group: str, timeout: float = 5.0) -> tuple[int, int]:
    """FindCoordinator v3 for a consumer group, asked of exactly `node`: (error code, coordinator node id).
    A raw request, because librdkafka's AdminClient, asked about a group whose coordinator was just killed,
    has aborted the test process (an assertion in its request bookkeeping, librdkafka 2.16)."""
    header = kwire.request_header(API_FIND_COORDINATOR, 3, 1, "sluice-e2e-cluster", flexible=True)
    body = kwire._compact_string(group) + bytes([0]) + kwire._uvarint(0)  # key, key type 0 (group), no tags
    with kwire.connect(node.bootstrap, timeout=timeout) as sock:
        sock.sendall(kwire.frame(header + body))
        r = kwire.Reader(kwire.recv_frame(sock))
    if r.int32() != 1:
        raise kwire.ProtocolError("correlation id mismatch")
    r.skip_tagged_fields()
    r.int32()  # throttle
    error_code = r.int16()
    _compact_string(r)  # error message
    return error_code, r.int32()


# -- admin and listing, through one node ------------------------------------------------------------


def admin(bootstrap: str) -> AdminClient:
    """A confluent-kafka AdminClient that knows only `bootstrap` to begin with."""
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topics(bootstrap: str, names: list[str], partitions: int = 1, replication_factor: int = 1,
                  timeout: float = 30.0) -> None:
    """CreateTopics with an AdminClient bootstrapped from `bootstrap` only; raises the first error."""
    client = admin(bootstrap)  # kept referenced: a collected client fails its futures with _DESTROY
    futures = client.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor) for n in names],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    for name in names:
        futures[name].result(timeout + 10)


def wait_listed(nodes: list[Broker], topics: dict[str, int], timeout: float = 20.0,
                led: bool = False) -> dict[int, ClusterMetadata]:
    """Wait until each node's own Metadata lists every topic in `topics` (name -> partition count),
    with every partition led if `led`; returns each node's last Metadata by node id."""
    seen: dict[int, ClusterMetadata] = {}

    def lists(n: Broker) -> bool:
        md = metadata(n.bootstrap)
        seen[n.node_id] = md
        for name, count in topics.items():
            t = md.topics.get(name)
            if t is None or t.error_code != 0 or len(t.partitions) != count:
                return False
            if led and any(leader < 0 for leader in t.partitions.values()):
                return False
        return True

    deadline = time.monotonic() + timeout
    for n in nodes:
        try:
            wait_until(lambda: lists(n), max(0.0, deadline - time.monotonic()), f"node {n.node_id} to list {sorted(topics)}")
        except TimeoutError as e:
            listed = seen.get(n.node_id)
            raise TimeoutError(f"{e}; it lists {listed.topics if listed else '?'}") from None
    return seen
