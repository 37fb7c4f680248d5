"""Three nodes whose own traffic all goes over mutual TLS, with ACLs enforced: the controller quorum and broker
registration on an SSL controller listener, replication on an SSL inter-broker listener, each node known by
its certificate (`User:CN=node`, the one super user). The harness's PLAINTEXT listener stays for its probes
and the checker, as User:ANONYMOUS, which the ACLs let read and create topics but not act as a node
(CLUSTER_ACTION): had any node-to-node request gone in the clear, it would have been refused. A client with
its own certificate produces under an idempotent acks=all load through a follower's restart; one without an
ACL is refused; the checker reads back every acknowledged message from every replica."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from cluster_harness import wait_until
from clients import unique
from harness import run_kafka_tool
from ktls_vm import guest_ip
from replicated_load import (REPLICATED_CONFIG, AckLedger, LoadProducer, check, create_replicated_topic,
                             wait_in_sync)
from test_tls import Pki

PARTITIONS = [0, 1, 2]


def test_a_cluster_over_mutual_tls_with_acls(cluster_factory, tmp_path):
    mutual_tls_cluster(cluster_factory, tmp_path, vm=False)


@pytest.mark.timeout(1200)
def test_a_cluster_over_mutual_tls_under_kernel_tls(cluster_factory, tmp_path, peer):
    """The same cluster with each Sluice node in its own virtual machine whose kernel has kernel TLS
    (e2e/broker/ktls_vm.py; the nodes reach each other through the host): every TLS session a node accepts,
    the other nodes' controller and replication connections (rustls clients) included, is handed to its
    kernel, and the followers' fetches leave the leader through sendfile. Each node's kernel counters show
    it took sessions and none failed to decrypt."""
    if peer != "sluice":
        pytest.skip("kernel TLS is Sluice's own; test_a_cluster_over_mutual_tls_with_acls is the same cluster "
                    "on Kafka")
    c = mutual_tls_cluster(cluster_factory, tmp_path, vm=True)
    for node in c.nodes:
        stat = node.tls_stat()
        assert stat["TlsRxSw"] >= 2 and stat["TlsDecryptError"] == 0, (node.node_id, stat)


def wait_authorized(bootstrap: str, topic: str, conf: dict, timeout: float = 60) -> None:
    """As in Kafka, a broker learns an ACL or a SCRAM credential from the metadata log after the controller has
    committed it, so a client may be refused by a leader that has not caught up yet (more so in the slow
    virtual machines). Produce one probe record to every partition as the client, until each is accepted: the
    load starts once every leader knows the grant. The checker ignores records outside its ledger."""
    pending = set(PARTITIONS)

    def accepted_everywhere() -> bool:
        p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000, **conf})
        errors = {}
        for part in pending:
            p.produce(topic, unique("probe").encode(), partition=part,
                      on_delivery=lambda err, _msg, part=part: errors.__setitem__(part, err))
        p.flush(15)
        pending.difference_update(part for part, err in errors.items() if err is None)
        if pending:
            raise RuntimeError(f"partitions {sorted(pending)} refused the client: {errors}")
        return True

    wait_until(accepted_everywhere, timeout, f"every leader of {topic} to accept the client")


def mutual_tls_cluster(cluster_factory, tmp_path, vm: bool):
    ca = Pki(tmp_path / "ca", "cluster CA")
    ca.issue("node", san="DNS:localhost,IP:127.0.0.1," + ",".join(f"IP:{guest_ip(i)}" for i in (1, 2, 3)))
    ca.issue("alice")
    ca.issue("eve")
    tls = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(ca.keystore("node")),
           "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca.ca), "ssl.client.auth": "required"}
    c = cluster_factory(secure="SSL", lenient_stop=True, vm=vm, extra_config={
        **REPLICATED_CONFIG, **tls,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL,SSL:SSL",
        "inter.broker.listener.name": "SSL",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:CN=node",
    })
    secure = ",".join(n.secure_bootstrap for n in c.brokers)

    # ACLs, set by a node's identity over TLS with Kafka's own tool.
    node_config = tmp_path / "node.properties"
    node_config.write_text("security.protocol=SSL\nssl.keystore.type=PEM\n"
                           f"ssl.keystore.location={ca.keystore('node')}\n"
                           f"ssl.truststore.type=PEM\nssl.truststore.location={ca.ca}\n")

    def acls(*args: str) -> None:
        done = run_kafka_tool("org.apache.kafka.tools.AclCommand", "--bootstrap-server", secure,
                              "--command-config", str(node_config), "--add", *args, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    acls("--allow-principal", "User:ANONYMOUS", "--operation", "All", "--topic", "*", "--group", "*")
    acls("--allow-principal", "User:ANONYMOUS", "--operation", "Create", "--operation", "Describe",
         "--operation", "DescribeConfigs", "--cluster")
    topic = create_replicated_topic(c, len(PARTITIONS), prefix="mtls")
    acls("--allow-principal", "User:CN=alice", "--producer", "--topic", topic)

    def client(name: str) -> dict:
        return {"security.protocol": "SSL", "ssl.ca.location": str(ca.ca),
                "ssl.certificate.location": str(ca.dir / f"{name}.pem"),
                "ssl.key.location": str(ca.dir / f"{name}.key")}

    # eve has a certificate the cluster trusts, and no ACL.
    p = Producer({"bootstrap.servers": secure, "message.timeout.ms": 15000, **client("eve")})
    reports = []
    p.produce(topic, b"from eve", partition=0, on_delivery=lambda err, msg: reports.append(err))
    p.flush(20)
    assert reports and reports[0] is not None and reports[0].name() == "TOPIC_AUTHORIZATION_FAILED", reports

    ledger = AckLedger()
    leaders = wait_in_sync(c, topic, PARTITIONS, {1, 2, 3})
    follower = next(i for i in (1, 2, 3) if i != leaders[0].leader)
    wait_authorized(secure, topic, client("alice"))
    with LoadProducer(secure, topic, PARTITIONS, ledger, conf=client("alice")) as load:
        load.wait_progress(500, 60, "before the restart")
        # A follower stops and comes back: it catches up over the SSL inter-broker listener, and re-registers
        # over the SSL controller listener.
        c.restart([follower])
        load.wait_progress(500, 90, "after the restart")
    wait_in_sync(c, topic, PARTITIONS, {1, 2, 3}, timeout=90)
    status = c.quorum_status()
    assert int(status["LeaderId"]) in (1, 2, 3) and int(status["HighWatermark"]) > 0, status
    result = check(c, topic, PARTITIONS, ledger)
    assert result.acked >= 3000, result
    return c


def test_a_cluster_over_sasl_ssl_with_scram_clients(cluster_factory, tmp_path):
    """Every node-to-node path over SASL_SSL, the nodes authenticating with PLAIN as User:node (the super user);
    a client's SCRAM-SHA-512 credential is created through a broker, which forwards it to the active
    controller over that listener; the client then produces under load through a follower's restart."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType,
                                       ResourceType, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    ca = Pki(tmp_path / "ca", "cluster CA")
    ca.issue("node", san="DNS:localhost,IP:127.0.0.1")
    plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="node" '
             'password="node-secret" user_node="node-secret";')
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    c = cluster_factory(secure="SASL_SSL", lenient_stop=True, extra_config={
        **REPLICATED_CONFIG,
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(ca.keystore("node")),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca.ca),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:node",
    })
    secure = ",".join(n.secure_bootstrap for n in c.brokers)
    base = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(ca.ca)}
    node = AdminClient({"bootstrap.servers": secure, **base, "sasl.mechanism": "PLAIN", "sasl.username": "node",
                        "sasl.password": "node-secret"})
    node.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"alice-secret")])["alice"].result(60)
    grants = [AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                         AclOperation.ALL, AclPermissionType.ALLOW),
              AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                         AclOperation.CREATE, AclPermissionType.ALLOW),
              AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                         AclOperation.DESCRIBE, AclPermissionType.ALLOW)]
    for f in node.create_acls(grants).values():
        f.result(60)
    topic = create_replicated_topic(c, len(PARTITIONS), prefix="sasl")
    for f in node.create_acls([AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                                          op, AclPermissionType.ALLOW)
                               for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]).values():
        f.result(60)

    alice = {**base, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "alice-secret"}
    ledger = AckLedger()
    leaders = wait_in_sync(c, topic, PARTITIONS, {1, 2, 3})
    follower = next(i for i in (1, 2, 3) if i != leaders[0].leader)
    wait_authorized(secure, topic, alice)
    with LoadProducer(secure, topic, PARTITIONS, ledger, conf=alice) as load:
        load.wait_progress(500, 60, "before the restart")
        c.restart([follower])
        load.wait_progress(500, 90, "after the restart")
    wait_in_sync(c, topic, PARTITIONS, {1, 2, 3}, timeout=90)
    check(c, topic, PARTITIONS, ledger)
