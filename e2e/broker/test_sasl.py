"""SASL/PLAIN on SASL_PLAINTEXT and SASL_SSL listeners, users from the listener's JAAS config as a Kafka
broker takes them (`listener.name.<listener>.plain.sasl.jaas.config`): confluent-kafka and kafka-python
authenticate, produce and consume; a wrong password, an unknown user and a mechanism the listener does not
offer are refused; a client that skips authentication is not served. SCRAM-SHA-256/512 users live in the
cluster metadata, managed with the admin API and `kafka-configs`; Kafka's Java client and franz-go log in
with PLAIN and with SCRAM over SASL_SSL."""

import socket

import pytest

from clients import create_topic, java, kp_produce, kp_read, produce, read_partitions, unique
from test_tls import Pki, reaches

USERS = {"admin": "admin-secret", "alice": "alice-secret"}


def sasl_config(listener: str, extra: dict | None = None) -> dict:
    users = " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
    return {
        "sasl.enabled.mechanisms": "PLAIN",
        f"listener.name.{listener.lower()}.plain.sasl.jaas.config":
            f'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            f'password="admin-secret" {users};',
        **(extra or {}),
    }


def client(protocol: str, user: str, password: str, mechanism: str = "PLAIN", ca=None) -> dict:
    conf = {"security.protocol": protocol, "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": password}
    if ca is not None:
        conf["ssl.ca.location"] = str(ca)
    return conf


def test_plain_over_sasl_plaintext_with_two_clients(broker_factory):
    b = broker_factory(sasl_config("SASL_PLAINTEXT"), secure="SASL_PLAINTEXT")
    topic = unique("sasl")
    create_topic(b.bootstrap, topic)
    conf = client("SASL_PLAINTEXT", "alice", "alice-secret")
    messages = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(300)]
    produce(b.secure_bootstrap, topic, messages, conf={**conf, "enable.idempotence": True, "acks": "all"})
    got = read_partitions(b.secure_bootstrap, topic, [0], conf=conf)
    assert [(m.key, m.value) for m in got] == messages

    kp = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "admin",
          "sasl_plain_password": "admin-secret"}
    kp_produce(b.secure_bootstrap, topic, [(b"kp", b"kafka-python")], **kp)
    records = kp_read(b.secure_bootstrap, topic, 0, len(messages) + 1, **kp)
    assert [(r.key, r.value) for r in records][-1] == (b"kp", b"kafka-python")


def test_wrong_passwords_unknown_users_and_other_mechanisms_are_refused(broker_factory):
    b = broker_factory(sasl_config("SASL_PLAINTEXT"), secure="SASL_PLAINTEXT")
    assert reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "alice", "alice-secret"))
    refused = {
        "wrong password": client("SASL_PLAINTEXT", "alice", "admin-secret"),
        "unknown user": client("SASL_PLAINTEXT", "mallory", "x"),
        "a mechanism the listener does not offer": client("SASL_PLAINTEXT", "alice", "alice-secret", "SCRAM-SHA-256"),
    }
    for why, conf in refused.items():
        assert not reaches(b.secure_bootstrap, conf, timeout=4), why
    # A client that does not authenticate (plaintext Kafka on the SASL port) is not served: its Metadata
    # request gets no answer.
    assert not reaches(b.secure_bootstrap, {}, timeout=4)
    with socket.create_connection(("127.0.0.1", b.secure_port), timeout=10) as s:
        # Metadata v1, correlation id 5, no client id, all topics.
        s.sendall(bytes([0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
        s.settimeout(10)
        try:
            answer = s.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert answer == b"", f"an unauthenticated Metadata request got {answer[:16]!r}"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("sasl-pki"), "e2e CA")
    pki.issue("broker", san="DNS:localhost,IP:127.0.0.1")
    return pki


def sasl_ssl_broker(broker_factory, ca: Pki, mechanisms=None):
    """A broker with a SASL_SSL listener and a certificate `ca` signed; the listener's mechanisms are those of
    `mechanisms(listener, extra)` (`sasl_config`, PLAIN's users, unless told)."""
    return broker_factory((mechanisms or sasl_config)("SASL_SSL", {
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(ca.keystore("broker"))}), secure="SASL_SSL")


def test_plain_over_sasl_ssl(broker_factory, ca):
    b = sasl_ssl_broker(broker_factory, ca)
    topic = unique("sasl-ssl")
    create_topic(b.bootstrap, topic)
    conf = client("SASL_SSL", "admin", "admin-secret", ca=ca.ca)
    produce(b.secure_bootstrap, topic, [(None, b"encrypted and authenticated")], conf=conf)
    got = read_partitions(b.secure_bootstrap, topic, [0], conf=conf)
    assert [m.value for m in got] == [b"encrypted and authenticated"]
    assert not reaches(b.secure_bootstrap, client("SASL_SSL", "admin", "wrong", ca=ca.ca), timeout=4)


def java_over_sasl_ssl(b, ca: Pki, dir, mechanism: str, user: str, password: str) -> None:
    """Kafka's own client, as `user` with `mechanism` over SASL_SSL (the broker's certificate checked against a
    PEM truststore and its host name: the listener advertises localhost, which the certificate names),
    produces 100 records and a consumer group reads them; with a wrong password the producer cannot send,
    and says why."""
    topic = unique("java-sasl")
    create_topic(b.bootstrap, topic)
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"

    def config(password: str) -> str:
        path = dir / f"client-{mechanism}-{password}.properties"
        path.write_text(
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={mechanism}\n"
            f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
            f'username="{user}" password="{password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={ca.ca}\n")
        return str(path)

    rc, lines, err = java("produce", "--bootstrap", b.secure_bootstrap, "--topic", topic, "--count", "100",
                          "--client-config", config(password))
    assert rc == 0, f"java produce failed: {lines} {err}"
    assert (lines[-1]["acked"], lines[-1]["failed"]) == (100, 0)
    rc, lines, err = java("consume", "--bootstrap", b.secure_bootstrap, "--topic", topic, "--group", unique("g"),
                          "--count", "100", "--timeout-ms", "60000", "--client-config", config(password))
    assert rc == 0 and lines[-1] == {"consumed": 100}, f"java consume failed: {lines[-1:]} {err}"
    # A wrong password: the producer cannot send, and says why.
    rc, lines, err = java("produce", "--bootstrap", b.secure_bootstrap, "--topic", topic, "--count", "1",
                          "--client-config", config("wrong"), timeout=120)
    assert rc != 0 or (lines and lines[-1].get("failed") == 1), f"a wrong password produced: {lines} {err}"
    assert "Authentication failed" in err or "SaslAuthenticationException" in err \
        or any("Authentication" in str(line) for line in lines), err[-2000:]


def test_the_java_client_over_sasl_ssl(broker_factory, ca, tmp_path):
    """Kafka's own client, PLAIN over TLS."""
    java_over_sasl_ssl(sasl_ssl_broker(broker_factory, ca), ca, tmp_path, "PLAIN", "alice", "alice-secret")


def franz_over_sasl_ssl(b, ca: Pki, *sasl: str) -> None:
    """franz-go (crypto/tls, and its SASL as the `sasl` flags of e2e-franz say) produces idempotently and reads
    back over SASL_SSL."""
    from test_franz_go import franz
    topic = unique("franz-sasl")
    create_topic(b.bootstrap, topic)
    secure = ("-brokers", b.secure_bootstrap, "-tls-ca", str(ca.ca), *sasl)
    lines = franz("produce", *secure, "-topic", topic, "-count", "200", "-keys", "5")
    assert lines[-1]["idempotent"] is True
    assert len([line for line in lines if "o" in line]) == 200
    *records, summary = franz("consume", *secure, "-topic", topic, "-partitions", "0", "-count", "200")
    assert summary == {"consumed": 200}
    assert [r["o"] for r in records] == list(range(200))


def test_franz_go_over_sasl_ssl(broker_factory, ca):
    """franz-go with its sasl/plain."""
    franz_over_sasl_ssl(sasl_ssl_broker(broker_factory, ca), ca, "-sasl-plain", "admin:admin-secret")


def scram_config(listener: str, extra: dict | None = None) -> dict:
    """PLAIN (for the users of `sasl_config`) and both SCRAM mechanisms, whose users live in the cluster
    metadata: the test creates them through the PLAINTEXT listener."""
    scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return sasl_config(listener, {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.{listener.lower()}.scram-sha-256.sasl.jaas.config": scram_jaas,
        f"listener.name.{listener.lower()}.scram-sha-512.sasl.jaas.config": scram_jaas,
        **(extra or {}),
    })


def add_scram_user(b, user: str, password: str, mechanism: str, ca: Pki) -> None:
    """Creates `user`'s `mechanism` credential with confluent-kafka's admin API on the PLAINTEXT listener, then
    waits until librdkafka logs in with it over the SASL_SSL listener."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 4096)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})  # kept alive until the answer: its futures die with it
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode())])[user].result(
        timeout=30)
    assert reaches(b.secure_bootstrap, client("SASL_SSL", user, password, mechanism, ca=ca.ca))


def scram_users(bootstrap: str) -> dict:
    """The SCRAM users and their mechanisms and iteration counts, as DescribeUserScramCredentials lists them."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_user_scram_credentials().result(timeout=30)
    return {user: sorted((info.mechanism.name, info.iterations) for info in d.scram_credential_infos)
            for user, d in described.items()}


def test_scram_users_are_managed_with_the_admin_api_and_kafka_configs(broker_factory):
    """SCRAM-SHA-256 and -512 credentials created with confluent-kafka's admin API and with Kafka's own
    `kafka-configs --add-config 'SCRAM-SHA-512=[…]'`; clients of each library authenticate with them; a wrong
    password, a mechanism the user has no credential for and a deleted credential are refused."""
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)
    from clients import kafka_configs
    b = broker_factory(scram_config("SASL_PLAINTEXT"), secure="SASL_PLAINTEXT")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"carol-secret", b"pinch-of-salt"),
        # Below Kafka's minimum of 4096 iterations: refused, and nothing of this user is kept.
        UserScramCredentialUpsertion("weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x"),
    ])
    futures["carol"].result(timeout=30)
    with pytest.raises(Exception) as refused:
        futures["weak"].result(timeout=30)
    assert "UNACCEPTABLE_CREDENTIAL" in str(refused.value), refused.value
    # A user is altered once per request (Kafka refuses two mechanisms of one user together).
    admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     b"carol-512", b"more-salt")])["carol"].result(timeout=30)
    done = kafka_configs(b.bootstrap, "--alter", "--add-config", "SCRAM-SHA-512=[iterations=4096,password=dave-secret]",
                         "--entity-type", "users", "--entity-name", "dave")
    assert done.returncode == 0, done.stderr[-2000:]
    assert scram_users(b.bootstrap) == {
        "carol": [("SCRAM_SHA_256", 4096), ("SCRAM_SHA_512", 8192)],
        "dave": [("SCRAM_SHA_512", 4096)],
    }

    topic = unique("scram")
    create_topic(b.bootstrap, topic)
    carol256 = client("SASL_PLAINTEXT", "carol", "carol-secret", "SCRAM-SHA-256")
    produce(b.secure_bootstrap, topic, [(b"c", b"from carol")], conf=carol256)
    kp = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "dave",
          "sasl_plain_password": "dave-secret"}
    kp_produce(b.secure_bootstrap, topic, [(b"d", b"from dave")], **kp)
    got = read_partitions(b.secure_bootstrap, topic, [0], conf=client("SASL_PLAINTEXT", "carol", "carol-512",
                                                                       "SCRAM-SHA-512"))
    assert [(m.key, m.value) for m in got] == [(b"c", b"from carol"), (b"d", b"from dave")]

    refused = {
        "wrong password": client("SASL_PLAINTEXT", "carol", "carol-512", "SCRAM-SHA-256"),
        "no credential for the mechanism": client("SASL_PLAINTEXT", "dave", "dave-secret", "SCRAM-SHA-256"),
        "unknown user": client("SASL_PLAINTEXT", "mallory", "x", "SCRAM-SHA-512"),
        "a PLAIN user is no SCRAM user": client("SASL_PLAINTEXT", "alice", "alice-secret", "SCRAM-SHA-256"),
    }
    for why, conf in refused.items():
        assert not reaches(b.secure_bootstrap, conf, timeout=4), why

    # Deleting a credential: the next login with it is refused; deleting one that is not there is an error.
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])[
        "carol"].result(timeout=30)
    with pytest.raises(Exception):
        admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])[
            "carol"].result(timeout=30)
    assert not reaches(b.secure_bootstrap, carol256, timeout=4)
    assert reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "carol", "carol-512", "SCRAM-SHA-512"))
    assert scram_users(b.bootstrap)["carol"] == [("SCRAM_SHA_512", 8192)]
    # Credentials are cluster metadata: they outlive a restart.
    b.restart()
    assert reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "dave", "dave-secret", "SCRAM-SHA-512"))


def test_the_java_client_over_sasl_ssl_with_scram(broker_factory, ca, tmp_path):
    """Kafka's own client, SCRAM-SHA-512 over TLS, as a user created with the admin API."""
    b = sasl_ssl_broker(broker_factory, ca, scram_config)
    add_scram_user(b, "frank", "frank-secret", "SCRAM-SHA-512", ca)
    java_over_sasl_ssl(b, ca, tmp_path, "SCRAM-SHA-512", "frank", "frank-secret")


def test_franz_go_over_sasl_ssl_with_scram(broker_factory, ca):
    """franz-go with its sasl/scram, SCRAM-SHA-256, as a user created with the admin API."""
    b = sasl_ssl_broker(broker_factory, ca, scram_config)
    add_scram_user(b, "grace", "grace-secret", "SCRAM-SHA-256", ca)
    franz_over_sasl_ssl(b, ca, "-sasl-scram", "SCRAM-SHA-256:grace:grace-secret")
