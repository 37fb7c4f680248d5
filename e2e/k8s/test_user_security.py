"""A secured cluster on a real node: TLS listeners with SCRAM and client-certificate
authentication, ACLs on, and KafkaUser resources giving clients their credentials and rights.
Clients on this machine use what the operator wrote into Secrets, as a user would. Runs after
test_user_path.py against its own cluster; tests run in file order and the last one removes it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

import kube
from conftest import CLUSTER as DEMO, NS

CLUSTER = "secure"

CLUSTER_SPEC = f"""
apiVersion: sluice.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: {CLUSTER}
  namespace: {NS}
spec:
  controllers:
    replicas: 1
    storage: {{size: 1Gi}}
    resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}
  brokers:
    replicas: 2
    storage: {{size: 1Gi}}
    resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
  config:
    default.replication.factor: "2"
    min.insync.replicas: "2"
    offsets.topic.replication.factor: "2"
  listeners:
    - {{name: scram, port: 9092, tls: true, authentication: scram-sha-512}}
    - {{name: mtls, port: 9094, tls: true, authentication: tls}}
    - {{name: own, port: 9096, tls: true, certificateSecret: own-cert}}
  authorization:
    superUsers: []
"""


def settled() -> dict | None:
    """The KafkaCluster once it is Ready and no operation runs."""
    kc = kube.get("kafkacluster", CLUSTER, NS)
    c = kube.condition(kc, "Ready")
    return kc if c and c.get("status") == "True" and not (kc.get("status") or {}).get("operation") else None


def own_certificate(directory: Path, ca_name: str) -> tuple[Path, Path, Path]:
    """A CA of the user's own (openssl, as a user without cert-manager would) and a broker certificate it
    signs for every name clients reach the `own` listener at: (CA certificate, certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    crt, key, csr, ext = (directory / n for n in ("tls.crt", "tls.key", "tls.csr", "ext.cnf"))
    ext.write_text(f"subjectAltName=DNS:*.{CLUSTER}-brokers.{NS}.svc,DNS:{CLUSTER}-bootstrap.{NS}.svc\n"
                   "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for cmd in (["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
                 "-subj", f"/CN={ca_name}"],
                ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={CLUSTER}-bootstrap"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", crt, "-days", "2", "-extfile", ext]):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return ca_crt, crt, key


def make_namespace() -> None:
    # The node has two cores: conftest's cluster, if still there, goes first.
    kube.kubectl("delete", "kafkacluster", DEMO, "-n", NS, "--wait=false", "--ignore-not-found", check=False)
    kube.wait_until(lambda: not kube.pods(NS, f"app.kubernetes.io/instance={DEMO}"), 180,
                    f"the pods of KafkaCluster {DEMO} gone", interval=2)
    # test_user_path.py ends by deleting the namespace; one still terminating cannot take objects.
    kube.wait_until(lambda: kube.kubectl("get", "namespace", NS, "--ignore-not-found",
                                         "-o", "jsonpath={.status.phase}").strip() in ("", "Active"),
                    120, f"namespace {NS} absent or Active", interval=2)
    kube.kubectl("create", "namespace", NS, check=False)


def put_tls_secret(name: str, crt: Path, key: Path) -> None:
    """Creates or replaces a kubernetes.io/tls Secret, as `kubectl create secret tls` writes it."""
    manifest = kube.kubectl("create", "secret", "tls", name, "-n", NS, f"--cert={crt}", f"--key={key}",
                            "--dry-run=client", "-o", "yaml")
    kube.apply(manifest)


@pytest.fixture(scope="module")
def own_ca(operator, tmp_path_factory) -> Path:
    """The user's certificate for the `own` listener, put in Secret own-cert; answers its CA."""
    make_namespace()
    ca, crt, key = own_certificate(tmp_path_factory.mktemp("own-cert"), "users own CA")
    put_tls_secret("own-cert", crt, key)
    return ca


@pytest.fixture(scope="module")
def secure(operator, own_ca) -> dict:
    """The secured KafkaCluster, Ready=True with no operation left."""
    kube.apply(CLUSTER_SPEC)
    try:
        return kube.wait_until(settled, 300, f"KafkaCluster {CLUSTER} Ready=True", interval=2)
    except TimeoutError:
        print(kube.describe_failure(NS))
        raise


@pytest.fixture(scope="module")
def creds(tmp_path_factory) -> Path:
    """Where the credentials read from Secrets are written for the clients."""
    return tmp_path_factory.mktemp("secure-credentials")


def write_private(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.touch(mode=0o600)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ca_file(secure, creds) -> Path:
    return write_private(creds, "cluster-ca.crt", kube.secret_data(f"{CLUSTER}-cluster-ca-cert", NS)["ca.crt"])


def listener(kc: dict, name: str) -> str:
    """The bootstrap address status.listeners gives for listener `name`."""
    found = [entry["bootstrapServers"] for entry in kc["status"].get("listeners") or [] if entry["name"] == name]
    assert len(found) == 1, kc["status"].get("listeners")
    return found[0]


def scram_client(kc: dict, username: str, password: str, ca: Path) -> dict:
    # Hostname verification is librdkafka's default; spelled out because it is part of what is tested.
    return {"bootstrap.servers": listener(kc, "scram"), "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": username, "sasl.password": password,
            "ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https"}


def acl(resource_type: str, name: str, operations: list[str], pattern: str = "literal") -> dict:
    return {"resource": {"type": resource_type, "name": name, "patternType": pattern}, "operations": operations}


def kafka_user(name: str, authentication: str, acls: list[dict]) -> str:
    return json.dumps({"apiVersion": "sluice.dev/v1alpha1", "kind": "KafkaUser",
                       "metadata": {"name": name, "namespace": NS},
                       "spec": {"clusterRef": {"name": CLUSTER}, "authentication": authentication, "acls": acls}})


def ready_user(name: str, authentication: str, acls: list[dict]) -> tuple[dict, dict[str, str]]:
    """Applies KafkaUser `name` and waits until it is Ready with its Secret written; answers the
    KafkaUser and the Secret's data."""
    kube.apply(kafka_user(name, authentication, acls))

    def ready():
        ku = kube.get("kafkauser", name, NS)
        c = kube.condition(ku, "Ready")
        secret = (ku.get("status") or {}).get("secret")
        return ku if c and c["status"] == "True" and secret and kube.exists("secret", secret, NS) else None
    try:
        ku = kube.wait_until(ready, 120, f"KafkaUser {name} Ready with its Secret", interval=1)
    except TimeoutError:
        print(kube.kubectl("get", "kafkauser", name, "-n", NS, "-o", "yaml", check=False))
        print(kube.describe_failure(NS))
        raise
    assert ku["status"]["username"] == name, ku["status"]
    assert ku["status"]["secret"] == name, ku["status"]
    secret = kube.get("secret", name, NS)
    owners = [(r["kind"], r["uid"]) for r in secret["metadata"].get("ownerReferences") or []]
    assert ("KafkaUser", ku["metadata"]["uid"]) in owners, owners
    return ku, kube.secret_data(name, NS)


def reaches_every_broker(conf: dict, topic: str) -> bool:
    """Whether every broker lets a client of `conf` in and lets it describe `topic`. Credentials and
    ACLs reach the brokers through the metadata log, a moment after the KafkaUser is Ready."""
    brokers = list(Producer(conf).list_topics(timeout=10).brokers.values())
    for b in brokers:
        md = Producer({**conf, "bootstrap.servers": f"{b.host}:{b.port}"}).list_topics(topic, timeout=10)
        if md.topics[topic].error is not None:
            return False
    return len(brokers) == 2


def deliver(conf: dict, topic: str, values: list[bytes], idempotent: bool = True
            ) -> tuple[list[tuple[int, int, bytes]], list[KafkaError]]:
    """acks=all; answers (partition, offset, value) of every acknowledged message and the errors of
    the deliveries that failed."""
    acked, failed = [], []

    def report(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            failed.append(err)
    p = Producer({**conf, "acks": "all", "enable.idempotence": idempotent, "message.timeout.ms": 60000})
    for v in values:
        p.produce(topic, v, on_delivery=report)
        p.poll(0)
    assert p.flush(90) == 0, "messages still in flight after 90 s"
    return acked, failed


def consume(conf: dict, topic: str, group: str, want: int, timeout: float = 60
            ) -> tuple[list[tuple[int, int, bytes]], list[KafkaError]]:
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, errors = [], []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is None:
                got.append((m.partition(), m.offset(), m.value()))
            else:
                errors.append(m.error())
    finally:
        c.close()
    return got, errors


def refusal(conf: dict, within: float = 10) -> list[KafkaError]:
    """The errors a fresh client of `conf` reports when it cannot get metadata within `within`
    seconds; empty if it gets them."""
    errors: list[KafkaError] = []
    p = Producer({**conf, "error_cb": errors.append})
    try:
        p.list_topics(timeout=within)
    except KafkaException as e:
        p.poll(1)  # error_cb runs from poll: why the connections failed
        return errors + [e.args[0]]
    return []


def authentication_failed(errors: list[KafkaError]) -> bool:
    return any(e.code() == KafkaError._AUTHENTICATION for e in errors)


def names(errors: list[KafkaError]) -> list[str]:
    return sorted({e.name() for e in errors})


@pytest.fixture(scope="module")
def orders(secure) -> dict:
    """Topic `orders`, Ready: the operator reached the cluster with authorization on."""
    kube.apply(f"""
apiVersion: sluice.dev/v1alpha1
kind: Topic
metadata: {{name: orders, namespace: {NS}}}
spec:
  clusterRef: {{name: {CLUSTER}}}
  partitions: 3
  replicationFactor: 2
""")

    def ready():
        t = kube.get("topic", "orders", NS)
        c = kube.condition(t, "Ready")
        return t if c and c["status"] == "True" else None
    try:
        return kube.wait_until(ready, 90, "Topic orders Ready", interval=1)
    except TimeoutError:
        print(kube.kubectl("get", "topic", "orders", "-n", NS, "-o", "yaml", check=False))
        print(kube.describe_failure(NS))
        raise


ALICE_ACLS = [
    acl("topic", "orders", ["Write", "Describe"]),
    acl("topic", "orders", ["Read", "Describe"]),
    acl("group", "alice-", ["Read"], pattern="prefixed"),
]


@pytest.fixture(scope="module")
def alice(orders) -> dict[str, str]:
    """KafkaUser alice (SCRAM-SHA-512), Ready: her Secret's data."""
    return ready_user("alice", "scram-sha-512", ALICE_ACLS)[1]


def test_a_secured_cluster_reports_each_listener_and_publishes_its_ca(secure):
    st = secure["status"]
    assert [(entry["name"], entry["bootstrapServers"]) for entry in st["listeners"]] == [
        ("scram", f"{CLUSTER}-bootstrap.{NS}.svc:9092"), ("mtls", f"{CLUSTER}-bootstrap.{NS}.svc:9094"),
        ("own", f"{CLUSTER}-bootstrap.{NS}.svc:9096")]
    assert st["bootstrapServers"] == st["listeners"][0]["bootstrapServers"]
    assert st["brokers"] == {"desired": 2, "ready": 2}, st
    assert st["controllers"] == {"desired": 1, "ready": 1}, st
    ports = {p["port"] for p in kube.get("service", f"{CLUSTER}-bootstrap", NS)["spec"]["ports"]}
    assert {9092, 9094, 9096} <= ports, ports
    ca = kube.secret_data(f"{CLUSTER}-cluster-ca-cert", NS)
    assert ca["ca.crt"].startswith("-----BEGIN CERTIFICATE-----"), sorted(ca)
    # Every client reads this Secret: the CA's private key is not in it.
    assert not any(k.endswith(".key") for k in ca), sorted(ca)


def test_a_topic_resource_becomes_ready_on_a_cluster_with_authorization(orders):
    st = orders["status"]
    assert st["partitions"] == 3 and st["replicationFactor"] == 2, st
    assert st.get("topicId"), st


def test_a_scram_user_produces_and_consumes_with_the_secret_the_operator_wrote(secure, alice, ca_file):
    assert {"username", "password", "sasl.jaas.config", "ca.crt"} <= set(alice), sorted(alice)
    assert alice["username"] == "alice" and len(alice["password"]) >= 16
    jaas = alice["sasl.jaas.config"]
    assert "ScramLoginModule" in jaas and 'username="alice"' in jaas and f'password="{alice["password"]}"' in jaas, jaas
    assert alice["ca.crt"] == ca_file.read_text()

    conf = scram_client(secure, alice["username"], alice["password"], ca_file)
    kube.wait_until(lambda: reaches_every_broker(conf, "orders"), 60, "alice let in by both brokers", interval=1)
    acked, failed = deliver(conf, "orders", [f"alice-{i}".encode() for i in range(200)])
    assert not failed, f"deliveries failed: {names(failed)}"
    assert len(acked) == 200
    got, errors = consume(conf, "orders", "alice-readers", len(acked))
    assert sorted(got) == sorted(acked), f"{len(acked)} acknowledged, {len(got)} read back; errors: {names(errors)}"


def test_a_wrong_password_is_refused(secure, alice, ca_file):
    errors = refusal(scram_client(secure, "alice", alice["password"] + "x", ca_file))
    assert authentication_failed(errors), names(errors)


def test_a_user_without_an_acl_on_a_topic_cannot_write_to_it(secure, orders, ca_file):
    # Bob may write his own topics, not orders.
    _, bob = ready_user("bob", "scram-sha-512", [acl("topic", "bob-", ["Write", "Describe"], pattern="prefixed")])
    conf = scram_client(secure, bob["username"], bob["password"], ca_file)
    # Authenticated, so what follows is authorization: orders is not even listed to him.
    md = kube.wait_until(lambda: Producer(conf).list_topics(timeout=10), 60, "bob let in", interval=1)
    assert "orders" not in md.topics, sorted(md.topics)
    # Not idempotent: an idempotent producer would need a Write ACL on orders to start at all.
    acked, failed = deliver(conf, "orders", [f"bob-{i}".encode() for i in range(5)], idempotent=False)
    assert not acked, acked
    assert failed and all(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in failed), names(failed)


def test_a_client_without_tls_gets_nothing_from_a_tls_listener(secure):
    errors = refusal({"bootstrap.servers": listener(secure, "scram"), "security.protocol": "PLAINTEXT"}, within=5)
    assert errors, "a plaintext client got metadata from the TLS listener"


def test_the_replication_listener_refuses_a_client_without_the_operators_certificate(secure, ca_file):
    broker = f"{CLUSTER}-broker-0.{CLUSTER}-brokers.{NS}.svc:9091"
    for conf in ({"security.protocol": "PLAINTEXT"},
                 {"security.protocol": "SSL", "ssl.ca.location": str(ca_file)}):
        errors = refusal({"bootstrap.servers": broker, **conf}, within=5)
        assert errors, f"a client with {conf} got metadata from {broker}"


def test_a_tls_user_produces_with_its_client_certificate(secure, orders, creds):
    _, carol = ready_user("carol", "tls", [acl("topic", "orders", ["Write", "Describe"])])
    assert {"user.crt", "user.key", "ca.crt"} <= set(carol), sorted(carol)
    ca = write_private(creds, "carol-ca.crt", carol["ca.crt"])
    conf = {"bootstrap.servers": listener(secure, "mtls"), "security.protocol": "SSL",
            "ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https",
            "ssl.certificate.location": str(write_private(creds, "carol.crt", carol["user.crt"])),
            "ssl.key.location": str(write_private(creds, "carol.key", carol["user.key"]))}
    # Her ACLs name User:carol: the certificate maps to that principal, or nothing is allowed.
    kube.wait_until(lambda: reaches_every_broker(conf, "orders"), 60, "carol let in by both brokers", interval=1)
    acked, failed = deliver(conf, "orders", [f"carol-{i}".encode() for i in range(50)])
    assert not failed, f"deliveries failed: {names(failed)}"
    assert len(acked) == 50

    # Without a certificate the same listener lets nobody in.
    anonymous = {k: v for k, v in conf.items() if k not in ("ssl.certificate.location", "ssl.key.location")}
    errors = refusal(anonymous)
    assert errors, "a client without a certificate got metadata from the mtls listener"


def broker_pods() -> dict[str, tuple[str, int]]:
    """Each broker pod's uid and restart count."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"],
                                    sum(c["restartCount"] for c in p["status"]["containerStatuses"]))
            for p in kube.pods(NS, f"app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=broker")}


def test_a_listener_serves_the_users_certificate_and_a_renewed_one_without_a_restart(
        secure, own_ca, ca_file, tmp_path_factory):
    def own(ca: Path) -> dict:
        return {"bootstrap.servers": listener(secure, "own"), "security.protocol": "SSL",
                "ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https"}
    # Served with the Secret's certificate: trusted through the user's CA, not the cluster's.
    assert not refusal(own(own_ca)), "no metadata over the listener with the user's certificate"
    assert refusal(own(ca_file), within=5), "the listener served a certificate of the cluster CA"

    # cert-manager renews by rewriting the Secret: the new certificate reaches the brokers (the
    # operator's resync, the kubelet's Secret refresh, the broker's file watch) without a restart.
    before = broker_pods()
    new_ca, crt, key = own_certificate(tmp_path_factory.mktemp("own-cert-renewed"), "users renewed CA")
    put_tls_secret("own-cert", crt, key)
    try:
        kube.wait_until(lambda: not refusal(own(new_ca), within=5), 300,
                        "the renewed certificate served on the own listener", interval=5)
    except TimeoutError:
        print(kube.describe_failure(NS))
        raise
    assert broker_pods() == before, "a broker restarted for a renewed certificate"


def test_deleting_a_kafka_user_removes_its_credential_from_the_cluster(secure, alice, ca_file):
    conf = scram_client(secure, alice["username"], alice["password"], ca_file)
    kube.wait_until(lambda: not refusal(conf, within=5), 60, "alice's credential working before the deletion")
    kube.kubectl("delete", "kafkauser", "alice", "-n", NS, "--wait=false")
    try:
        # Gone once the operator's finalizer has removed her credential and ACLs from Kafka.
        kube.wait_until(lambda: not kube.exists("kafkauser", "alice", NS), 120, "KafkaUser alice gone", interval=1)
    except TimeoutError:
        print(kube.kubectl("get", "kafkauser", "alice", "-n", NS, "-o", "yaml", check=False))
        raise
    kube.wait_until(lambda: not kube.exists("secret", "alice", NS), 60, "Secret alice garbage-collected", interval=1)
    kube.wait_until(lambda: authentication_failed(refusal(conf)), 60,
                    "alice's old password refused by a fresh client", interval=1)


def test_deleting_the_users_and_the_secured_cluster_leaves_nothing_behind(secure):
    uids = {secure["metadata"]["uid"]} | {u["metadata"]["uid"] for u in kube.get("kafkausers", ns=NS)["items"]}
    # Users and topics first, while the cluster their finalizers talk to is still there.
    kube.kubectl("delete", "kafkausers,topics", "--all", "-n", NS, "--wait=true", "--timeout=120s", timeout=150)
    kube.kubectl("delete", "kafkacluster", CLUSTER, "-n", NS, "--wait=true", "--timeout=120s", timeout=150)

    def owned_left():
        left = []
        for kind in ("statefulsets", "services", "configmaps", "secrets", "poddisruptionbudgets", "pods"):
            for o in kube.get(kind, ns=NS)["items"]:
                refs = o["metadata"].get("ownerReferences") or []
                labels = o["metadata"].get("labels") or {}
                if any(r.get("uid") in uids for r in refs) or labels.get("app.kubernetes.io/instance") == CLUSTER:
                    left.append(f"{kind}/{o['metadata']['name']}")
        return left
    kube.wait_until(lambda: not owned_left(), 180, "every object of the cluster and its users gone", interval=2)
    assert not kube.exists("secret", f"{CLUSTER}-cluster-ca-cert", NS)
    kube.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", timeout=150)
    assert not kube.exists("namespace", NS)
