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


def test_a_config_change_rolls_the_pods(cluster):
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER}")}
    kube.kubectl("patch", "kafkacluster", CLUSTER, "-n", NS, "--type=merge",
                 "-p", json.dumps({"spec": {"config": {"log.retention.hours": "100"}}}))

    def rolled():
        now = kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER}")
        kc = kube.get("kafkacluster", CLUSTER, NS)
        c = kube.condition(kc, "Ready")
        return (len(now) == 6 and all(kube.pod_ready(p) for p in now)
                and all(before.get(p["metadata"]["name"]) != p["metadata"]["uid"] for p in now)
                and c and c["status"] == "True"
                and kc["status"]["observedGeneration"] == kc["metadata"]["generation"])
    try:
        kube.wait_until(rolled, 420, "every pod replaced and the cluster Ready again", interval=3)
    except TimeoutError:
        print(kube.describe_failure(NS))
        raise
    cm = kube.get("configmap", f"{CLUSTER}-broker-config", NS)
    assert "log.retention.hours=100" in json.dumps(cm["data"])


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
