"""ACLs with Kafka's authorizer settings (`authorizer.class.name`, `super.users`,
`allow.everyone.if.no.acl.found`): managed with Kafka's own `kafka-acls` and an admin client, enforced on
produce, fetch, groups, offsets and admin requests for SASL users and for TLS client certificates. The
PLAINTEXT listener's User:ANONYMOUS is a super user here, as a broker's own listener must be in Kafka; the
clients under test come in on the second listener."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ConfigResource, NewTopic, ResourcePatternType, ResourceType)

from clients import create_topic, produce, unique
from harness import run_kafka_tool
from test_sasl import USERS, client, sasl_config
from test_tls import Pki, reaches

AUTHORIZER = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
              "super.users": "User:ANONYMOUS;User:admin"}


def kafka_acls(bootstrap: str, *args: str) -> str:
    done = run_kafka_tool("org.apache.kafka.tools.AclCommand", "--bootstrap-server", bootstrap, *args, timeout=90)
    assert done.returncode == 0, f"kafka-acls {args}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
    return done.stdout


# PLAIN's users: the super user admin, and alice and bob, who get what ACLs grant them.
PASSWORDS = {**USERS, "bob": "bob-secret"}


def user(name: str) -> dict:
    return client("SASL_PLAINTEXT", name, PASSWORDS[name])


def produce_one(bootstrap: str, topic: str, conf: dict, timeout: float = 20) -> str | None:
    """None if one message is acknowledged, else the error librdkafka reports."""
    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": int(timeout * 1000) - 2000,
                  "linger.ms": 0, **conf})
    reports = []
    p.produce(topic, b"value", on_delivery=lambda err, msg: reports.append(err))
    p.flush(timeout)
    if not reports:
        return "no delivery report"
    return None if reports[0] is None else reports[0].name()


def consume_one(bootstrap: str, topic: str, group: str, conf: dict, timeout: float = 20) -> str:
    """"ok" once a message of `topic` arrives through group `group` (and its offset is committed), else the
    first error the consumer reports."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    try:
        c.subscribe([topic])
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                return m.error().name()
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException as e:
                return e.args[0].name()
            return "ok"
        return "timeout"
    finally:
        c.close()


@pytest.fixture
def secured(broker_factory):
    users = " ".join(f'user_{u}="{p}"' for u, p in PASSWORDS.items())
    config = sasl_config("SASL_PLAINTEXT", {
        **AUTHORIZER,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            f'org.apache.kafka.common.security.plain.PlainLoginModule required {users};'})
    return broker_factory(config, secure="SASL_PLAINTEXT")


def test_kafka_acls_grants_produce_consume_and_group_rights(secured):
    b = secured
    topic, group = unique("acl"), unique("acl-group")
    create_topic(b.bootstrap, topic)
    produce(b.bootstrap, topic, [(b"k", b"from the super user")])
    alice, bob = user("alice"), user("bob")

    # Nothing granted: a resource without ACLs is closed (allow.everyone.if.no.acl.found is false).
    assert produce_one(b.secure_bootstrap, topic, alice) == "TOPIC_AUTHORIZATION_FAILED"
    assert consume_one(b.secure_bootstrap, topic, group, alice) in ("TOPIC_AUTHORIZATION_FAILED",
                                                                     "GROUP_AUTHORIZATION_FAILED")
    # kafka-acls grants alice the producer's rights on the topic, and reading through her group.
    kafka_acls(b.bootstrap, "--add", "--allow-principal", "User:alice", "--producer", "--topic", topic)
    assert produce_one(b.secure_bootstrap, topic, alice) is None
    assert produce_one(b.secure_bootstrap, topic, bob) == "TOPIC_AUTHORIZATION_FAILED", "bob was granted nothing"
    # READ on the topic but not on the group: the group refuses her.
    kafka_acls(b.bootstrap, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic)
    assert consume_one(b.secure_bootstrap, topic, group, alice) == "GROUP_AUTHORIZATION_FAILED"
    kafka_acls(b.bootstrap, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", group)
    assert consume_one(b.secure_bootstrap, topic, group, alice) == "ok"

    listed = kafka_acls(b.bootstrap, "--list", "--topic", topic)
    assert "User:alice" in listed and "WRITE" in listed and "READ" in listed, listed
    # A DENY wins over her ALLOW.
    kafka_acls(b.bootstrap, "--add", "--deny-principal", "User:alice", "--operation", "Write", "--topic", topic)
    assert produce_one(b.secure_bootstrap, topic, alice) == "TOPIC_AUTHORIZATION_FAILED"
    # Removing every ACL of the topic closes it again.
    kafka_acls(b.bootstrap, "--remove", "--force", "--topic", topic)
    assert kafka_acls(b.bootstrap, "--list", "--topic", topic).count("User:alice") == 0
    assert consume_one(b.secure_bootstrap, topic, unique("g"), alice) in ("TOPIC_AUTHORIZATION_FAILED",
                                                                          "GROUP_AUTHORIZATION_FAILED")


def test_admin_operations_need_their_acls_and_prefixes_match(secured, tmp_path):
    b = secured
    prefix = unique("team-")
    su = AdminClient({"bootstrap.servers": b.bootstrap})
    alice = AdminClient({"bootstrap.servers": b.secure_bootstrap, **user("alice")})

    # No CREATE: refused. CREATE on a prefix: topics under it may be created, others not.
    with pytest.raises(KafkaException) as refused:
        alice.create_topics([NewTopic(prefix + "a", 1, 1)])[prefix + "a"].result(timeout=30)
    assert refused.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"
    futures = su.create_acls([AclBinding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, "User:alice", "*",
                                         op, AclPermissionType.ALLOW)
                              for op in (AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS)])
    for f in futures.values():
        f.result(timeout=30)
    alice.create_topics([NewTopic(prefix + "a", 1, 1)])[prefix + "a"].result(timeout=30)
    other = unique("other")
    with pytest.raises(KafkaException):
        alice.create_topics([NewTopic(other, 1, 1)])[other].result(timeout=30)

    # Metadata lists only what she may describe (CREATE does not imply DESCRIBE; DESCRIBE_CONFIGS neither).
    create_topic(b.bootstrap, unique("hidden"))
    assert not any(t.startswith(prefix) or t.startswith("hidden") for t in alice.list_topics(timeout=30).topics)
    su.create_acls([AclBinding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, "User:alice", "*",
                               AclOperation.DESCRIBE, AclPermissionType.ALLOW)])
    time.sleep(0.5)
    seen = set(alice.list_topics(timeout=30).topics)
    assert prefix + "a" in seen and not any(t.startswith("hidden") for t in seen), seen

    # Configs: DESCRIBE_CONFIGS on her prefix only; the broker's configs need it on the cluster.
    alice.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, prefix + "a")])[
        ConfigResource(ConfigResource.Type.TOPIC, prefix + "a")].result(timeout=30)
    with pytest.raises(KafkaException) as refused:
        res = ConfigResource(ConfigResource.Type.BROKER, "1")
        alice.describe_configs([res])[res].result(timeout=30)
    assert refused.value.args[0].name() == "CLUSTER_AUTHORIZATION_FAILED"
    # Deleting her topic needs DELETE, which she lacks.
    with pytest.raises(KafkaException) as refused:
        alice.delete_topics([prefix + "a"])[prefix + "a"].result(timeout=30)
    assert refused.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"

    # ACLs themselves are the cluster's: she may neither create nor list them (asked with Kafka's tool, which
    # reports the error; librdkafka's describe_acls drops it).
    # (The dict of futures is kept: dropping it leaves its futures unresolved.)
    futures = alice.create_acls([AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:alice",
                                            "*", AclOperation.ALL, AclPermissionType.ALLOW)])
    with pytest.raises(KafkaException) as refused:
        list(futures.values())[0].result(timeout=30)
    assert refused.value.args[0].name() == "CLUSTER_AUTHORIZATION_FAILED"
    config = tmp_path / "alice.properties"
    config.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                      "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                      f'username="alice" password="{PASSWORDS["alice"]}";\n')
    done = run_kafka_tool("org.apache.kafka.tools.AclCommand", "--bootstrap-server", b.secure_bootstrap,
                          "--command-config", str(config), "--list", timeout=90)
    assert "ClusterAuthorizationException" in done.stdout + done.stderr, done.stdout[-1500:] + done.stderr[-1500:]
    # The super user sees them all, and deletes with a filter.
    found = su.describe_acls(AclBindingFilter(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, None, None,
                                              AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert sorted(a.operation.name for a in found) == ["CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"]
    deleted = su.delete_acls([AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.MATCH, "User:alice",
                                               None, AclOperation.ANY, AclPermissionType.ANY)])
    assert len(list(deleted.values())[0].result(timeout=30)) == 3
    # Bad ACLs are refused with INVALID_REQUEST-like errors (an unparseable principal).
    with pytest.raises(Exception):
        futures = su.create_acls([AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "alice", "*",
                                             AclOperation.READ, AclPermissionType.ALLOW)])
        list(futures.values())[0].result(timeout=30)


def test_no_authorizer_means_acl_requests_are_refused(broker_factory):
    """Without `authorizer.class.name` ACL requests get SECURITY_DISABLED, which Kafka's tool reports.
    (librdkafka's describe_acls drops that error and answers an empty list, against either broker.)"""
    b = broker_factory({})
    done = run_kafka_tool("org.apache.kafka.tools.AclCommand", "--bootstrap-server", b.bootstrap, "--list",
                          timeout=90)
    assert "SecurityDisabledException" in done.stdout + done.stderr, done.stdout[-1500:] + done.stderr[-1500:]


def test_allow_everyone_if_no_acl_found_and_mtls_principals(broker_factory, tmp_path):
    """With allow.everyone.if.no.acl.found a topic nobody named stays open; one with an ACL is closed to the
    others. The principal of a TLS client certificate is its subject, mapped by `ssl.principal.mapping.rules`
    (the subject itself, `User:CN=…`, is what e2e/cluster/test_security.py grants)."""
    ca = Pki(tmp_path / "ca", "e2e CA")
    ca.issue("broker", san="DNS:localhost,IP:127.0.0.1")
    ca.issue("alice")
    ca.issue("eve")
    # The certificates' subjects (CN=alice) map to upper-cased names: User:ALICE.
    b = broker_factory({**AUTHORIZER, "allow.everyone.if.no.acl.found": "true", "ssl.keystore.type": "PEM",
                        "ssl.principal.mapping.rules": "RULE:^CN=([a-z]+)$/$1/U,DEFAULT",
                        "ssl.keystore.location": str(ca.keystore("broker")), "ssl.truststore.type": "PEM",
                        "ssl.truststore.location": str(ca.ca), "ssl.client.auth": "required"}, secure="SSL")
    open_topic, guarded = unique("open"), unique("guarded")
    create_topic(b.bootstrap, open_topic)
    create_topic(b.bootstrap, guarded)

    def tls(name: str) -> dict:
        cert, key = ca.dir / f"{name}.pem", ca.dir / f"{name}.key"
        return {"security.protocol": "SSL", "ssl.ca.location": str(ca.ca), "ssl.certificate.location": str(cert),
                "ssl.key.location": str(key)}

    assert reaches(b.secure_bootstrap, tls("alice"))
    assert produce_one(b.secure_bootstrap, open_topic, tls("eve")) is None, "no ACL names it: open"
    kafka_acls(b.bootstrap, "--add", "--allow-principal", "User:ALICE", "--operation", "Write",
               "--operation", "Describe", "--topic", guarded)
    assert produce_one(b.secure_bootstrap, guarded, tls("alice")) is None
    assert produce_one(b.secure_bootstrap, guarded, tls("eve")) == "TOPIC_AUTHORIZATION_FAILED"
