"""What a user does, on a real node: `helm install` the operator, `kubectl apply` a KafkaCluster,
then real traffic from outside the cluster network (this machine, resolving `*.svc` through the
cluster's DNS) and from a Job inside it. Runs in file order against one cluster (conftest.py)."""

from __future__ import annotations

import json
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kube
from conftest import CLUSTER, NS, OPERATOR_NS

FRANZ_IMAGE = "sluice.local/e2e-franz:test"


def bootstrap(cluster: dict) -> str:
    return cluster["status"]["bootstrapServers"]


def create_topic(bootstrap_servers: str, name: str, partitions: int = 3, rf: int = 3) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap_servers})
    for f in a.create_topics([NewTopic(name, partitions, rf)], operation_timeout=30).values():
        f.result(60)


def produce(bootstrap_servers: str, topic: str, values: list[bytes]) -> list[tuple[int, int, bytes]]:
    """acks=all, idempotent; answers (partition, offset, value) of every acknowledged message and
    fails if any delivery failed."""
    acked, failed = [], []

    def report(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            failed.append(str(err))
    p = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 60000})
    for v in values:
        p.produce(topic, v, on_delivery=report)
        p.poll(0)
    assert p.flush(90) == 0, "messages still in flight after 90 s"
    assert not failed, f"deliveries failed: {failed[:3]}"
    return acked


def consume(bootstrap_servers: str, topic: str, want: int, timeout: float = 60) -> list[tuple[int, int, bytes]]:
    c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"reader-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    return got


def test_helm_install_makes_the_operator_ready(operator):
    dep = kube.get("deployment", "sluice-sluice-operator", OPERATOR_NS) if kube.exists(
        "deployment", "sluice-sluice-operator", OPERATOR_NS) else kube.get(
        "deployments", ns=OPERATOR_NS)["items"][0]
    assert kube.condition(dep, "Available")["status"] == "True", dep["status"]
    pods = kube.pods(OPERATOR_NS, "app.kubernetes.io/name=sluice-operator")
    assert pods and all(kube.pod_ready(p) for p in pods), [p["status"] for p in pods]
    # It really runs on the node, from the image built here.
    assert {p["spec"]["nodeName"] for p in pods} == {kube.node_env()["SLUICE_K8S_NODE_NAME"]}
    assert all(s["started"] for p in pods for s in p["status"]["containerStatuses"])


def test_a_kafka_cluster_becomes_ready_with_the_status_the_crd_promises(cluster):
    status = cluster["status"]
    assert status["observedGeneration"] == cluster["metadata"]["generation"]
    assert status["brokers"] == {"desired": 3, "ready": 3}, status
    assert status["controllers"] == {"desired": 3, "ready": 3}, status
    assert bootstrap(cluster) == f"{CLUSTER}-bootstrap.{NS}.svc:9092"
    assert len(status["clusterId"]) == 22
    voters = status["voters"].split(",")
    assert [v.split("@")[1] for v in voters] == [
        f"{CLUSTER}-controller-{i}.{CLUSTER}-controllers.{NS}.svc:9093" for i in range(3)]
    for c in ("Progressing", "Degraded"):
        assert kube.condition(cluster, c)["status"] == "False", status["conditions"]
    # Every pod runs, its data on a bound PersistentVolume of this node.
    pods = kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER}")
    assert len(pods) == 6 and all(kube.pod_ready(p) for p in pods), [p["metadata"]["name"] for p in pods]
    claims = kube.get("pvc", ns=NS)["items"]
    assert len(claims) == 6 and {c["status"]["phase"] for c in claims} == {"Bound"}


def test_the_brokers_form_one_quorum_and_replicate(cluster):
    """Seen from outside: every broker is listed, a replicated topic gets a leader and a full ISR."""
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    md = a.list_topics(timeout=30)
    assert sorted(md.brokers) == [0, 1, 2], md.brokers
    assert all(f"{CLUSTER}-broker-" in str(b) for b in md.brokers.values()), md.brokers
    topic = "quorum-check"
    create_topic(bootstrap(cluster), topic)

    def in_sync():
        t = a.list_topics(topic, timeout=10).topics[topic]
        return all(len(p.isrs) == 3 and p.leader >= 0 for p in t.partitions.values()) and len(t.partitions) == 3
    kube.wait_until(in_sync, 60, f"{topic}: three partitions led, ISR of three")


def test_a_client_outside_the_cluster_network_produces_and_consumes(cluster):
    topic = "from-outside"
    create_topic(bootstrap(cluster), topic)
    values = [f"outside-{i}".encode() for i in range(2000)]
    acked = produce(bootstrap(cluster), topic, values)
    got = consume(bootstrap(cluster), topic, len(acked))
    assert sorted(got) == sorted(acked), f"{len(acked)} acknowledged, {len(got)} read back"


def test_a_job_inside_the_cluster_produces_and_consumes(cluster):
    """franz-go in a pod, through the bootstrap Service's DNS name: the init container produces,
    the container reads everything back."""
    topic, count = "from-inside", 1000
    job = f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: franz-roundtrip}}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 180
  template:
    spec:
      restartPolicy: Never
      securityContext: {{runAsNonRoot: true, runAsUser: 65532}}
      initContainers:
      - name: produce
        image: {FRANZ_IMAGE}
        args: [produce, -brokers, "{bootstrap(cluster)}", -topic, {topic}, -count, "{count}", -acks, all, -timeout, 120s]
      containers:
      - name: consume
        image: {FRANZ_IMAGE}
        args: [consume, -brokers, "{bootstrap(cluster)}", -topic, {topic}, -partitions, "0,1,2", -count, "{count}", -timeout, 120s]
"""
    create_topic(bootstrap(cluster), topic)
    kube.apply(job, NS)

    def finished():
        j = kube.get("job", "franz-roundtrip", NS)
        for kind in ("Complete", "Failed"):
            c = kube.condition(j, kind)
            if c and c["status"] == "True":
                return kind
        return None
    try:
        outcome = kube.wait_until(finished, 200, "the Job to finish", interval=2)
    except TimeoutError:
        print(kube.describe_failure(NS))
        raise
    produced = kube.kubectl("logs", "-n", NS, "job/franz-roundtrip", "-c", "produce").splitlines()
    consumed = kube.kubectl("logs", "-n", NS, "job/franz-roundtrip", "-c", "consume").splitlines()
    assert outcome == "Complete", (produced[-3:], consumed[-3:])
    assert json.loads(produced[-1]).get("produced") == count, produced[-1]
    assert json.loads(consumed[-1]).get("consumed") == count, consumed[-1]
    # And what the Job wrote is what a client outside reads.
    assert len(consume(bootstrap(cluster), topic, count)) == count


def topic_resource(name: str, partitions: int, config: dict[str, str] | None = None) -> str:
    cfg = "".join(f'\n    {k}: "{v}"' for k, v in (config or {}).items())
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: Topic
metadata: {{name: {name}, namespace: {NS}}}
spec:
  clusterRef: {{name: {CLUSTER}}}
  partitions: {partitions}
  replicationFactor: 3
  config:{cfg or " {}"}
"""


def topic_config(admin: AdminClient, topic: str, key: str) -> str | None:
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource("topic", topic)
    entries = admin.describe_configs([res])[res].result(30)
    e = entries.get(key)
    return e.value if e is not None else None


def test_topic_resources_create_grow_revert_and_delete_topics(cluster):
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    kube.apply(topic_resource("orders", 3, {"retention.ms": "3600000"}))

    def partitions():
        t = a.list_topics("orders", timeout=10).topics.get("orders")
        return len(t.partitions) if t and t.error is None else 0
    kube.wait_until(lambda: partitions() == 3, 60, "topic orders with 3 partitions")
    kube.wait_until(lambda: kube.condition(kube.get("topic", "orders", NS), "Ready")["status"] == "True",
                    60, "Topic orders Ready")
    assert topic_config(a, "orders", "retention.ms") == "3600000"

    kube.apply(topic_resource("orders", 5, {"retention.ms": "3600000"}))
    kube.wait_until(lambda: partitions() == 5, 60, "topic orders grown to 5 partitions")

    # A change made outside Kubernetes is put back on the next resync (30 s here).
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    res = ConfigResource("topic", "orders", incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(30)
    assert topic_config(a, "orders", "retention.ms") == "60000"
    kube.wait_until(lambda: topic_config(a, "orders", "retention.ms") == "3600000", 90,
                    "retention.ms changed outside Kubernetes reverted")

    kube.kubectl("delete", "topic", "orders", "-n", NS, "--wait=true", "--timeout=60s")
    kube.wait_until(lambda: "orders" not in a.list_topics(timeout=10).topics, 60, "topic orders deleted")


def test_a_broker_pod_deleted_by_hand_comes_back_with_its_data_and_rejoins(cluster):
    topic = "survives-pod-delete"
    create_topic(bootstrap(cluster), topic)
    acked = produce(bootstrap(cluster), topic, [f"kept-{i}".encode() for i in range(1000)])
    pod = f"{CLUSTER}-broker-1"
    old_uid = kube.get("pod", pod, NS)["metadata"]["uid"]
    claim = kube.get("pvc", f"data-{pod}", NS)
    volume = claim["spec"]["volumeName"]
    kube.kubectl("delete", "pod", pod, "-n", NS, "--wait=true", "--timeout=120s")

    def back():
        p = kube.get("pod", pod, NS)
        return p["metadata"]["uid"] != old_uid and kube.pod_ready(p)
    kube.wait_until(back, 180, f"{pod} recreated and Ready", interval=2)
    # The same claim and volume, so the same data directory.
    assert kube.get("pvc", f"data-{pod}", NS)["spec"]["volumeName"] == volume
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})

    def rejoined():
        t = a.list_topics(topic, timeout=10).topics[topic]
        return all(sorted(p.isrs) == [0, 1, 2] for p in t.partitions.values())
    kube.wait_until(rejoined, 120, "broker 1 back in every ISR")
    got = consume(bootstrap(cluster), topic, len(acked))
    assert sorted(got) == sorted(acked)
    # The broker's own log holds them: read its partition on its volume, which is a directory of
    # this machine.
    pv = kube.get("pv", volume)
    path = pv["spec"]["local"]["path"]
    from replicated_load import segment_records
    from pathlib import Path
    on_disk = sum(len(segment_records(d)) for d in Path(path).glob(f"**/{topic}-*") if d.is_dir())
    assert on_disk == len(acked), f"broker 1 holds {on_disk} of {len(acked)} records on its volume"


class _Bootstrap:
    """What replicated_load.check needs of a cluster: where to bootstrap from (here, the Service)."""

    def __init__(self, bootstrap_servers: str):
        self.bootstrap = bootstrap_servers

    def live_brokers(self):
        return [self]


def container_restarts(pod: str) -> int:
    return sum(c["restartCount"] for c in kube.get("pod", pod, NS)["status"].get("containerStatuses", []))


def kill9_in_pod(pod: str) -> None:
    """SIGKILL to the broker process of `pod`, found on this machine (the node) by the POD_NAME
    the operator puts in its environment."""
    from pathlib import Path
    import os
    import signal
    want = f"POD_NAME={pod}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"sluice-broker" in (proc / "cmdline").read_bytes() and want in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                return
        except OSError:
            continue
    raise AssertionError(f"no sluice-broker process of pod {pod} on this node")


def test_killing_the_pod_that_leads_a_partition_under_acks_all_load_loses_nothing(cluster):
    from replicated_load import AckLedger, LoadProducer, check
    topic = "leader-kill"
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    # A pod is Ready once its port accepts connections, a moment before the controller has
    # unfenced the broker (it serves clients from then on): wait for all three in Metadata.
    kube.wait_until(lambda: sorted(a.list_topics(timeout=10).brokers) == [0, 1, 2], 60, "three brokers listed")
    create_topic(bootstrap(cluster), topic)
    kube.wait_until(lambda: all(len(p.isrs) == 3 for p in a.list_topics(topic, timeout=10).topics[topic].partitions.values()),
                    60, f"{topic} fully in sync")
    leader = a.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    pod = f"{CLUSTER}-broker-{leader}"
    ledger = AckLedger()
    with LoadProducer(bootstrap(cluster), topic, [0, 1, 2], ledger, rate=500) as load:
        load.wait_progress(1000, 60, "acknowledged messages before the kill")
        # kill -9 of the broker process in the pod: no controlled shutdown, no handover; kubelet
        # restarts the container in the same pod, on the same volume.
        restarts = container_restarts(pod)
        kill9_in_pod(pod)
        killed = time.monotonic()

        def moved():
            p0 = a.list_topics(topic, timeout=10).topics[topic].partitions[0]
            return p0.leader >= 0 and p0.leader != leader
        kube.wait_until(moved, 60, "partition 0 led by another broker")
        print(f"partition 0 moved off broker {leader} {time.monotonic() - killed:.1f}s after the kill")
        load.wait_progress(2000, 120, "acknowledged messages after the failover")
        kube.wait_until(lambda: container_restarts(pod) > restarts and kube.pod_ready(kube.get("pod", pod, NS)),
                        180, f"{pod} restarted by kubelet and Ready", interval=2)
        load.wait_progress(1000, 60, "acknowledged messages with the broker back")
    kube.wait_until(lambda: all(len(p.isrs) == 3 for p in a.list_topics(topic, timeout=10).topics[topic].partitions.values()),
                    120, f"{topic} fully in sync again")
    assert ledger.count() >= 4000
    check(_Bootstrap(bootstrap(cluster)), topic, [0, 1, 2], ledger, replicas=False)


def scale_brokers(n: int) -> None:
    kube.kubectl("patch", "kafkacluster", CLUSTER, "-n", NS, "--type=merge",
                 "-p", json.dumps({"spec": {"brokers": {"replicas": n}}}))


def brokers_ready(n: int):
    def check():
        kc = kube.get("kafkacluster", CLUSTER, NS)
        st = kc.get("status") or {}
        c = kube.condition(kc, "Ready")
        sts = kube.get("statefulset", f"{CLUSTER}-broker", NS)
        return (st.get("brokers") == {"desired": n, "ready": n} and c and c["status"] == "True"
                and sts["spec"]["replicas"] == n and st.get("observedGeneration") == kc["metadata"]["generation"])
    return check


def test_scaling_brokers_down_first_moves_their_replicas_and_refuses_what_cannot_fit(cluster):
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    scale_brokers(4)
    kube.wait_until(brokers_ready(4), 240, "a fourth broker Ready", interval=2)
    kube.wait_until(lambda: sorted(a.list_topics(timeout=10).brokers) == [0, 1, 2, 3], 60, "broker 3 listed")
    topic = "on-four"
    create_topic(bootstrap(cluster), topic, partitions=4, rf=2)
    acked = produce(bootstrap(cluster), topic, [f"four-{i}".encode() for i in range(1000)])

    def replicas():
        return {p: sorted(part.replicas) for p, part in a.list_topics(topic, timeout=10).topics[topic].partitions.items()}
    assert any(3 in r for r in replicas().values()), replicas()

    # Back to three: the operator moves broker 3's replicas to 0-2, then removes it.
    scale_brokers(3)
    kube.wait_until(brokers_ready(3), 300, "broker 3 drained and removed", interval=2)
    kube.wait_until(lambda: sorted(a.list_topics(timeout=10).brokers) == [0, 1, 2], 60, "broker 3 no longer listed")
    assert all(3 not in r and len(r) == 2 for r in replicas().values()), replicas()
    got = consume(bootstrap(cluster), topic, len(acked))
    assert sorted(v for _, _, v in got) == sorted(v for _, _, v in acked)

    # Two brokers cannot hold the cluster's replication factor of three: refused, saying why, and
    # nothing removed. (Here the spec's default.replication.factor is what refuses it, before any
    # topic is looked at; a drain that cannot fit a topic is refused the same way, naming it.)
    scale_brokers(2)

    def refused():
        kc = kube.get("kafkacluster", CLUSTER, NS)
        c = kube.condition(kc, "Degraded")
        return c["message"] if c and c["status"] == "True" and c["reason"] in ("ScaleDownBlocked", "InvalidSpec") else None
    message = kube.wait_until(refused, 60, "the scale-down to 2 refused")
    assert "replication.factor" in message or "replication factor" in message, message
    assert kube.get("statefulset", f"{CLUSTER}-broker", NS)["spec"]["replicas"] == 3
    scale_brokers(3)
    kube.wait_until(brokers_ready(3), 120, "the cluster Ready at three brokers again", interval=2)


def patch_spec(spec: dict) -> None:
    kube.kubectl("patch", "kafkacluster", CLUSTER, "-n", NS, "--type=merge", "-p", json.dumps({"spec": spec}))


def settled() -> dict | None:
    """The KafkaCluster once its generation is observed, it is Ready and no operation runs."""
    kc = kube.get("kafkacluster", CLUSTER, NS)
    st = kc.get("status") or {}
    c = kube.condition(kc, "Ready")
    ok = (st.get("observedGeneration") == kc["metadata"]["generation"] and c and c["status"] == "True"
          and not st.get("operation"))
    return kc if ok else None


def restart_operator() -> str:
    """Deletes the operator's pod (its Deployment starts another, which takes over the leader Lease):
    what a node drain or an upgrade does in the middle of an operation. Returns the old pod's name."""
    pods = kube.pods(OPERATOR_NS, "app.kubernetes.io/name=sluice-operator")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    old = pods[0]["metadata"]["name"]
    kube.kubectl("delete", "pod", old, "-n", OPERATOR_NS, "--wait=false")
    print(f"operator pod {old} deleted at {time.strftime('%H:%M:%S')}")
    return old


def cluster_pods() -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER}")}


class OperationLog:
    """Records every distinct `status.operation` seen while waiting, to show what the operator reported."""

    def __init__(self):
        self.seen: list[dict] = []

    def note(self) -> dict:
        kc = kube.get("kafkacluster", CLUSTER, NS)
        op = (kc.get("status") or {}).get("operation")
        if op and (not self.seen or self.seen[-1] != op):
            self.seen.append(op)
            print(f"operation: {op}")
        return kc


class LeaderWatch:
    """Polls Metadata twice a second while running and keeps, per partition of `topic`, the longest
    stretch it had no leader. One leader election, even after a broker is lost without a word, takes
    at most the broker session timeout (9 s); a planned step should need far less."""

    ELECTION_S = 9.0

    def __init__(self, bootstrap_servers: str, topic: str):
        import threading
        self.admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self.topic = topic
        self.longest: dict[int, float] = {}
        self._since: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.5):
            try:
                parts = self.admin.list_topics(self.topic, timeout=5).topics[self.topic].partitions
            except Exception:  # noqa: BLE001 - an unanswered poll proves nothing either way
                continue
            now = time.monotonic()
            for p, meta in parts.items():
                if meta.leader < 0:
                    self._since.setdefault(p, now)
                    self.longest[p] = max(self.longest.get(p, 0.0), now - self._since[p])
                else:
                    self._since.pop(p, None)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        worst = max(self.longest.values(), default=0.0)
        print(f"{self.topic}: longest time a partition had no leader: {worst:.1f}s")
        if exc[0] is None:
            assert worst < self.ELECTION_S, f"a partition of {self.topic} had no leader for {worst:.1f}s: {self.longest}"


def loaded_topic(cluster: dict, topic: str, partitions: int = 6) -> AdminClient:
    a = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    if topic not in a.list_topics(timeout=10).topics:
        create_topic(bootstrap(cluster), topic, partitions=partitions)
    kube.wait_until(lambda: all(len(p.isrs) == 3 for p in a.list_topics(topic, timeout=10).topics[topic].partitions.values()),
                    60, f"{topic} fully in sync")
    return a


def test_a_config_change_rolls_one_pod_at_a_time_under_load_and_loses_nothing(cluster):
    from replicated_load import AckLedger, LoadProducer, check
    topic = "roll-load"
    loaded_topic(cluster, topic)
    before = cluster_pods()
    assert len(before) == 6, before
    ledger, log = AckLedger(), OperationLog()
    with LoadProducer(bootstrap(cluster), topic, list(range(6)), ledger, rate=300) as load, \
            LeaderWatch(bootstrap(cluster), topic):
        load.wait_progress(200, 60, "before the change")
        # A key brokers read only at start: every pod restarts, controllers first, then brokers.
        patch_spec({"config": {"log.retention.hours": "100"}})
        replaced_order: list[str] = []
        restarted: list[str] = []

        def rolled():
            log.note()
            now = cluster_pods()
            for name, uid in now.items():
                if before.get(name) != uid and name not in replaced_order:
                    replaced_order.append(name)
            # Half-way, the operator itself restarts: the new one carries on from what the pods show.
            if len(replaced_order) == 3 and not restarted:
                restarted.append(restart_operator())
            # Never more than one pod missing or unready at a time.
            unready = [p["metadata"]["name"] for p in kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER}")
                       if not kube.pod_ready(p)]
            assert len(unready) + (6 - len(now)) <= 1, f"two pods down at once: {unready}, {sorted(now)}"
            return len(replaced_order) == 6 and settled()
        try:
            kube.wait_until(rolled, 600, "every pod replaced one at a time and the cluster settled", interval=1)
        except TimeoutError:
            print(kube.describe_failure(NS))
            raise
        load.wait_progress(200, 120, "after the roll")
    print(f"restart order: {replaced_order}")
    assert [n.split("-")[1] for n in replaced_order] == ["controller"] * 3 + ["broker"] * 3, replaced_order
    assert [n for n in replaced_order if "broker" in n] == [f"{CLUSTER}-broker-{i}" for i in (2, 1, 0)]
    assert any(op["type"] == "Roll" and op.get("podsToRestart") for op in log.seen), log.seen
    assert restarted, "the operator was not restarted during the roll"
    cm = kube.get("configmap", f"{CLUSTER}-broker-config", NS)
    assert "log.retention.hours=100" in json.dumps(cm["data"])
    check(_Bootstrap(bootstrap(cluster)), topic, list(range(6)), ledger, replicas=False)


def test_a_live_config_change_restarts_nothing(cluster):
    from confluent_kafka.admin import ConfigResource, ConfigSource
    topic = "live-config"
    a = loaded_topic(cluster, topic, partitions=1)
    before = cluster_pods()

    def retention():
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entry = a.describe_configs([res])[res].result(30)["retention.ms"]
        return entry.value, int(getattr(entry.source, "value", entry.source))
    patch_spec({"config": {"log.retention.ms": "3600000"}})
    kube.wait_until(lambda: retention()[0] == "3600000", 60, "the topic inherits the new default")
    assert retention()[1] == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value, retention()
    kube.wait_until(settled, 60, "the cluster settled")
    assert cluster_pods() == before, "a live config change restarted pods"
    cm = kube.get("configmap", f"{CLUSTER}-broker-config", NS)
    assert "log.retention.ms" not in json.dumps(cm["data"])
    # Removed from the spec: removed from the cluster, back to the file's log.retention.hours.
    kube.kubectl("patch", "kafkacluster", CLUSTER, "-n", NS, "--type=json",
                 "-p", json.dumps([{"op": "remove", "path": "/spec/config/log.retention.ms"}]))
    kube.wait_until(lambda: retention()[0] == str(100 * 3600 * 1000), 60, "the default back to the file's")
    assert cluster_pods() == before


def voters(kc: dict) -> list[str]:
    return sorted(v.split("@")[0] for v in ((kc.get("status") or {}).get("voters") or "").split(",") if v)


def test_controllers_scale_3_5_3_under_load_one_voter_at_a_time(cluster):
    from replicated_load import AckLedger, LoadProducer, check
    topic = "quorum-load"
    loaded_topic(cluster, topic, partitions=3)
    ledger, log = AckLedger(), OperationLog()
    brokers_before = {n: u for n, u in cluster_pods().items() if "broker" in n}
    with LoadProducer(bootstrap(cluster), topic, [0, 1, 2], ledger, rate=300) as load, \
            LeaderWatch(bootstrap(cluster), topic):
        load.wait_progress(200, 60, "before growing the quorum")
        for n in (5, 3):
            patch_spec({"controllers": {"replicas": n}})

            def done():
                kc = log.note()
                sts = kube.get("statefulset", f"{CLUSTER}-controller", NS)
                return (voters(kc) == [str(1000 + i) for i in range(n)] and sts["spec"]["replicas"] == n
                        and (kc.get("status") or {}).get("controllers") == {"desired": n, "ready": n}
                        and settled())
            try:
                kube.wait_until(done, 420, f"{n} voters and {n} controller pods", interval=1)
            except TimeoutError:
                print(kube.describe_failure(NS))
                raise
            load.wait_progress(200, 120, f"with {n} controllers")
    assert any(op["type"] == "QuorumChange" for op in log.seen), log.seen
    # The brokers kept running throughout: the quorum's addresses are not part of what rolls them.
    assert {n: u for n, u in cluster_pods().items() if "broker" in n} == brokers_before
    check(_Bootstrap(bootstrap(cluster)), topic, [0, 1, 2], ledger, replicas=False)


def test_brokers_scale_3_5_3_under_load_spreading_then_draining(cluster):
    from replicated_load import AckLedger, LoadProducer, check
    topic = "spread-load"
    a = loaded_topic(cluster, topic, partitions=10)

    def per_broker() -> dict[int, int]:
        counts: dict[int, int] = {}
        for t in a.list_topics(timeout=10).topics.values():
            for p in t.partitions.values():
                for b in p.replicas:
                    counts[b] = counts.get(b, 0) + 1
        return counts
    from confluent_kafka.admin import ConfigResource

    def throttle_seen(topics: list[str]) -> tuple[bool, bool]:
        """Whether the move throttle is on now: every topic of `topics` marked, and broker 0's rate
        the default 50 MiB/s."""
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
        b = ConfigResource(ConfigResource.Type.BROKER, "0")
        got = a.describe_configs(resources + [b])
        marked = bool(topics) and all(
            got[r].result(30)["leader.replication.throttled.replicas"].value == "*"
            and got[r].result(30)["follower.replication.throttled.replicas"].value == "*"
            for r in resources)
        rate = got[b].result(30)["leader.replication.throttled.rate"].value == str(50 * 1024 * 1024)
        return marked, rate
    throttled = {"topic": False, "rate": False, "status": False}
    ever_throttled: set[str] = set()

    def note_throttle():
        kc = log.note()
        listed = (kc.get("status") or {}).get("throttledTopics") or []
        ever_throttled.update(listed)
        throttled["status"] |= bool(listed)
        marked, rate = throttle_seen(listed)
        throttled["topic"] |= marked
        throttled["rate"] |= rate

    ledger, log = AckLedger(), OperationLog()
    with LoadProducer(bootstrap(cluster), topic, list(range(10)), ledger, rate=300) as load, \
            LeaderWatch(bootstrap(cluster), topic):
        load.wait_progress(100, 60, "before the scale-up")
        scale_brokers(5)

        def spread():
            note_throttle()
            counts = per_broker()
            share = sum(counts.values()) / 5
            return settled() and len(counts) == 5 and min(counts.values()) >= 0.8 * share
        try:
            kube.wait_until(spread, 600, "five brokers with an even share of the replicas", interval=2)
        except TimeoutError:
            print(per_broker(), log.seen)
            print(kube.describe_failure(NS))
            raise
        print(f"after the scale-up: {per_broker()}")
        load.wait_progress(100, 120, "with five brokers")
        # A topic with four replicas cannot live on three brokers: the scale-down is refused, naming it,
        # and nothing is removed, until the topic is gone.
        create_topic(bootstrap(cluster), "wide", partitions=1, rf=4)
        scale_brokers(3)

        def refused():
            kc = log.note()
            c = kube.condition(kc, "Degraded")
            blocked = c and c["status"] == "True" and c["reason"] == "ScaleDownBlocked"
            return c["message"] if blocked and "cannot be drained" in c["message"] else None
        message = kube.wait_until(refused, 120, "the scale-down to 3 refused while 'wide' needs four brokers")
        assert "wide (replication factor 4)" in message, message
        assert kube.get("statefulset", f"{CLUSTER}-broker", NS)["spec"]["replicas"] == 5
        for f in a.delete_topics(["wide"], operation_timeout=30).values():
            f.result(60)

        # While the replicas move off brokers 3 and 4, the operator restarts; the new one finds the
        # moves in the cluster and carries on.
        since = len(log.seen)

        def draining():
            log.note()
            return any(op.get("type") == "ScaleDown" and (op.get("partitionsToMove") or 0) > 0
                       for op in log.seen[since:])
        kube.wait_until(draining, 120, "the drain of brokers 3 and 4 under way", interval=0.5)
        restart_operator()

        def drained():
            note_throttle()
            return brokers_ready(3)() and settled() and set(per_broker()) == {0, 1, 2}
        kube.wait_until(drained, 600, "brokers 3 and 4 drained and removed", interval=2)
        load.wait_progress(100, 120, "with three brokers again")
    # The moves were throttled while they ran, and the throttle is gone with them.
    assert throttled == {"topic": True, "rate": True, "status": True}, throttled
    print(f"topics throttled while they moved: {sorted(ever_throttled)}")
    # Once the pods of brokers 3 and 4 are gone, with a new client each time (the old one may still pick
    # those brokers): every topic that was throttled is no longer. A DescribeConfigs can go unanswered
    # for a while right after the scale-down (noted in the issue), so each try is short.
    kube.wait_until(lambda: not any(kube.exists("pod", f"{CLUSTER}-broker-{i}", NS) for i in (3, 4)), 120,
                    "the pods of brokers 3 and 4 gone")

    def unthrottled() -> bool:
        fresh = AdminClient({"bootstrap.servers": bootstrap(cluster)})
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in sorted(ever_throttled)]
        try:
            got = {r.name: f.result(10) for r, f in fresh.describe_configs(resources).items()}
        except Exception as e:  # noqa: BLE001 - retried; the last failure is what wait_until reports
            print(f"describe failed at {time.strftime('%H:%M:%S')}: {e!r}")
            return False
        left = [t for t, c in got.items() if c["leader.replication.throttled.replicas"].value not in ("", None)]
        assert not left, f"still throttled: {left}"
        return True
    began = time.monotonic()
    kube.wait_until(unthrottled, 180, "the throttled topics described", interval=5)
    print(f"described the throttled topics {time.monotonic() - began:.1f}s after the scale-down")

    def rate_lifted() -> bool:
        b = ConfigResource(ConfigResource.Type.BROKER, "0")
        fresh = AdminClient({"bootstrap.servers": bootstrap(cluster)})
        try:
            rate = fresh.describe_configs([b])[b].result(10)["leader.replication.throttled.rate"].value
        except Exception:  # noqa: BLE001 - retried
            return False
        assert rate != str(50 * 1024 * 1024), "the move throttle rate is still set"
        return True
    kube.wait_until(rate_lifted, 120, "broker 0's throttle rate described", interval=5)
    assert not (kube.get("kafkacluster", CLUSTER, NS).get("status") or {}).get("throttledTopics")
    assert any(op["type"] == "ScaleUp" and op.get("partitionsToMove") for op in log.seen), log.seen
    assert any(op["type"] == "ScaleDown" for op in log.seen), log.seen
    check(_Bootstrap(bootstrap(cluster)), topic, list(range(10)), ledger, replicas=False)


def test_deleting_the_kafka_cluster_removes_everything_it_owns(cluster):
    uid = cluster["metadata"]["uid"]
    kube.kubectl("delete", "kafkacluster", CLUSTER, "-n", NS, "--wait=true", "--timeout=120s")

    def owned_left():
        left = []
        for kind in ("statefulsets", "services", "configmaps", "poddisruptionbudgets", "pods"):
            for o in kube.get(kind, ns=NS)["items"]:
                refs = o["metadata"].get("ownerReferences") or []
                labels = o["metadata"].get("labels") or {}
                if any(r.get("uid") == uid for r in refs) or labels.get("app.kubernetes.io/instance") == CLUSTER:
                    left.append(f"{kind}/{o['metadata']['name']}")
        return left
    kube.wait_until(lambda: not owned_left(), 180, "every object of the cluster gone", interval=2)
    # The namespace goes too, with no finalizer holding it.
    kube.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s")
    assert not kube.exists("namespace", NS)
