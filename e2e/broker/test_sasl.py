"""SASL/PLAIN on SASL_PLAINTEXT and SASL_SSL listeners, users from the listener's JAAS config as a Kafka
broker takes them (`listener.name.<listener>.plain.sasl.jaas.config`): confluent-kafka and kafka-python
authenticate, produce and consume; a wrong password, an unknown user and a mechanism the listener does not
offer are refused; a client that skips authentication is not served."""

import socket

import pytest

from clients import create_topic, kp_produce, kp_read, produce, read_partitions, unique
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
    assert not reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "alice", "admin-secret")), "wrong password"
    assert not reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "mallory", "x")), "unknown user"
    assert not reaches(b.secure_bootstrap, client("SASL_PLAINTEXT", "alice", "alice-secret", "SCRAM-SHA-256")), \
        "a mechanism the listener does not offer"
    # A client that does not authenticate (plaintext Kafka on the SASL port) is not served: its Metadata
    # request gets no answer.
    assert not reaches(b.secure_bootstrap, {})
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


def test_plain_over_sasl_ssl(broker_factory, ca):
    b = broker_factory(sasl_config("SASL_SSL", {"ssl.keystore.type": "PEM",
                                                "ssl.keystore.location": str(ca.keystore("broker"))}),
                       secure="SASL_SSL")
    topic = unique("sasl-ssl")
    create_topic(b.bootstrap, topic)
    conf = client("SASL_SSL", "admin", "admin-secret", ca=ca.ca)
    produce(b.secure_bootstrap, topic, [(None, b"encrypted and authenticated")], conf=conf)
    got = read_partitions(b.secure_bootstrap, topic, [0], conf=conf)
    assert [m.value for m in got] == [b"encrypted and authenticated"]
    assert not reaches(b.secure_bootstrap, client("SASL_SSL", "admin", "wrong", ca=ca.ca))
