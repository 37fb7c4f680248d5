"""Kernel TLS: over an SSL listener, rustls does the handshake and then hands the session's keys to the
kernel, so a Fetch keeps sendfile(2) under TLS (the kernel encrypts the page-cache pages as they leave).

The machines this suite runs on boot a kernel without CONFIG_TLS, so Sluice's broker runs here inside
scripts/ktls-vm's virtual machine (Debian's kernel, which has it; e2e/broker/ktls_vm.py), and the clients
on the host reach it at the guest's address. What the kernel did is read from the guest's
/proc/net/tls_stat, and the syscalls from an strace of the broker inside the guest.

Against Apache Kafka the client-facing tests run on a normal broker on the host (same certificates,
clients and checks); Kafka has no kernel TLS, so the kernel counters and syscall checks are Sluice's
own, and the two tests that are only about them are skipped there.
"""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

import harness
from clients import create_topic, java, kp_read, produce, read_partitions, unique, wait_until
from ktls_vm import GUEST_IP, ServerRecords, make_vm_broker
from test_tls import Pki
from test_zero_copy import READ_SYSCALLS, TRACED, syscall_bytes

VALUE_SIZE = 10_000
MESSAGES = 3_000  # ~30 MB: enough to tell sendfile from copying, quick under emulation


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = Pki(tmp_path_factory.mktemp("ktls-pki") / "ca", "kTLS e2e CA")
    ca.issue("broker", san=f"DNS:localhost,IP:127.0.0.1,IP:{GUEST_IP}")
    ca.issue("client-1")
    ca.issue("client-2")
    return ca


def broker_config(ca: Pki, **extra) -> dict:
    return {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(ca.keystore("broker")), **extra}


def client_config(ca: Pki, name: str | None = None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca.ca)}
    if name:
        conf.update({"ssl.certificate.location": str(ca.dir / f"{name}.pem"),
                     "ssl.key.location": str(ca.dir / f"{name}.key")})
    return conf


def start_broker(peer: str, log_dir, name: str, config: dict):
    """Sluice in the virtual machine, or Kafka on the host; started, with an SSL listener beside PLAINTEXT."""
    if peer == "sluice":
        b = make_vm_broker(name, log_dir, config, secure="SSL", trace_syscalls=TRACED)
    else:
        b = harness.make_broker(name, log_dir, config, secure="SSL")
    try:
        b.start()
    except Exception:
        b.cleanup()
        raise
    return b


@pytest.fixture(scope="module")
def ktls_broker(peer, log_dir, pki):
    b = start_broker(peer, log_dir, "kernel-tls", broker_config(pki))
    yield b
    b.cleanup()


def payload(i: int) -> bytes:
    """Distinct, checkable values: a wrong byte anywhere (a record encrypted from the wrong offset, say)
    shows as a mismatch."""
    head = f"message {i:06d} ".encode()
    return head + bytes((i + j) % 251 for j in range(VALUE_SIZE - len(head)))


def group_read(bootstrap: str, topic: str, count: int, conf: dict, timeout: float = 180) -> list:
    """Read `count` messages in a consumer group, committing as it goes; the committed offset is checked."""
    group = unique("ktls-group")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    out = []
    try:
        c.subscribe([topic])
        wait_until(lambda: out.extend(m for m in c.consume(200, 1.0) if not m.error()) or len(out) >= count,
                   timeout, f"{count} messages in group {group}")
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=30)[0]
        assert committed.offset == count, f"committed offset {committed.offset}, expected {count}"
    finally:
        c.close()
    return out


# A virtual machine's boot and emulated CPU: more than the suite's 120 s default.
@pytest.mark.timeout(420)
def test_clients_produce_and_consume_through_kernel_tls(ktls_broker, pki, peer, tmp_path):
    """confluent-kafka (OpenSSL), kafka-python (Python's ssl) and the Java client (JSSE) over TLS 1.3:
    every acknowledged message is read back, byte for byte, by all three, and in a consumer group. On
    Sluice each connection's TLS is the kernel's (its counters move, no record fails to decrypt)."""
    b = ktls_broker
    conf = client_config(pki)
    before = b.tls_stat() if peer == "sluice" else None
    topic = unique("ktls")
    create_topic(b.bootstrap, topic, partitions=1)
    messages = [(f"k{i}".encode(), payload(i), 0) for i in range(MESSAGES)]
    delivered = produce(b.secure_bootstrap, topic, messages,
                        conf={**conf, "enable.idempotence": True, "acks": "all", "compression.type": "none"},
                        timeout=240)
    assert [d.offset for d in delivered] == list(range(MESSAGES))

    got = read_partitions(b.secure_bootstrap, topic, [0], conf=conf, timeout=240)
    assert [(m.offset, m.key, m.value) for m in got] == [(i, f"k{i}".encode(), payload(i)) for i in range(MESSAGES)]
    in_group = group_read(b.secure_bootstrap, topic, MESSAGES, conf)
    assert [m.value() for m in in_group[:MESSAGES]] == [payload(i) for i in range(MESSAGES)]

    records = kp_read(b.secure_bootstrap, topic, 0, MESSAGES, timeout=240,
                      security_protocol="SSL", ssl_cafile=str(pki.ca))
    assert [r.value for r in records[:MESSAGES]] == [payload(i) for i in range(MESSAGES)]

    java_config = tmp_path / "java-ssl.properties"
    java_config.write_text(f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={pki.ca}\n")
    rc, lines, err = java("consume", "--bootstrap", b.secure_bootstrap, "--topic", topic, "--group", unique("g"),
                          "--count", str(MESSAGES), "--timeout-ms", "120000", "--client-config", str(java_config),
                          timeout=240)
    assert rc == 0 and lines[-1] == {"consumed": MESSAGES}, f"java consume failed: {lines[-1:]} {err}"

    if peer == "sluice":
        after = b.tls_stat()
        # producer, readers, group coordinator connections, kafka-python, Java: each its own session.
        assert after["TlsTxSw"] - before["TlsTxSw"] >= 4, (before, after)
        assert after["TlsRxSw"] - before["TlsRxSw"] >= 4, (before, after)
        assert after["TlsDecryptError"] == 0, after
        # Every client has closed: the kernel holds no session for them any more (a close_notify or the
        # socket's close ended each).
        wait_until(lambda: b.tls_stat()["TlsCurrTxSw"] == 0, 30, "the kernel's TLS sessions to close")


def sluice_only(peer: str) -> None:
    if peer != "sluice":
        pytest.skip("what the kernel and the broker's syscalls do under TLS is Sluice's own (Kafka has no "
                    "kernel TLS); the client-facing tests of this module run against Kafka")


def fetch_trace(b, pki) -> tuple[dict[str, int], int]:
    """Produce ~30 MB, then read it over TLS while the broker is traced; the bytes per syscall, and the
    payload size."""
    topic = unique("ktls-zc")
    create_topic(b.bootstrap, topic, partitions=1)
    value = os.urandom(VALUE_SIZE)
    produce(b.bootstrap, topic, [(None, value, 0)] * MESSAGES,
            conf={"compression.type": "none", "linger.ms": 20, "batch.size": 1_000_000}, timeout=240)
    with b.trace() as trace:
        got = read_partitions(b.secure_bootstrap, topic, [0], conf={
            **client_config(pki), "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760},
            timeout=240)
    assert len(got) == MESSAGES and all(m.value == value for m in got)
    return syscall_bytes(trace.text), VALUE_SIZE * MESSAGES


@pytest.mark.timeout(420)
def test_fetch_keeps_sendfile_under_kernel_tls(ktls_broker, pki, peer):
    """Over TLS, the fetched bytes leave through sendfile and are not read into the broker's memory."""
    sluice_only(peer)
    totals, payload_bytes = fetch_trace(ktls_broker, pki)
    sent, read_in = totals["sendfile"], sum(totals[name] for name in READ_SYSCALLS)
    summary = f"payload {payload_bytes} B, sendfile {sent} B, read-family {read_in} B {totals}"
    assert sent >= 0.9 * payload_bytes, f"fetched data did not go out through sendfile: {summary}"
    assert read_in < 0.05 * payload_bytes, f"the broker read fetched data into memory: {summary}"


@pytest.mark.timeout(420)
def test_without_offload_fetches_are_copied_through_rustls(peer, log_dir, pki):
    """The control for the test above: with `sluice.ssl.kernel.offload=false` on the same kernel, the
    same fetch is read into the broker (pread) and encrypted there, and the kernel takes no session."""
    sluice_only(peer)
    b = start_broker(peer, log_dir, "kernel-tls-off", broker_config(pki, **{"sluice.ssl.kernel.offload": "false"}))
    try:
        totals, payload_bytes = fetch_trace(b, pki)
        summary = f"payload {payload_bytes} B {totals}"
        assert totals["sendfile"] < 0.05 * payload_bytes, summary
        assert totals["pread64"] >= 0.9 * payload_bytes, summary
        assert b.tls_stat()["TlsTxSw"] == 0
    finally:
        b.cleanup()


@pytest.mark.timeout(420)
def test_tls12_client_certificates_and_acls_through_kernel_tls(peer, log_dir, pki):
    """A listener that speaks only TLS 1.2 and requires client certificates, with ACLs on: the principal
    still comes from the certificate after the kernel took the session. client-1 (a super user) produces
    and consumes; client-2 is known (its certificate is trusted) but refused the topic.

    On the wire, no AES-GCM nonce is sent twice on a connection. TLS 1.2 sends each record's nonce in the
    clear, and the kernel counts its own up from where the hand-over starts it, so a wrong start would
    reuse the one of the Finished rustls sent (clients cannot notice: they read the nonce off the wire)."""
    config = broker_config(pki, **{
        "ssl.enabled.protocols": "TLSv1.2",
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca),
        "ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # ANONYMOUS: the harness's PLAINTEXT probes and topic creation.
        "super.users": "User:ANONYMOUS;User:CN=client-1",
    })
    b = start_broker(peer, log_dir, "kernel-tls12", config)
    try:
        before = b.tls_stat() if peer == "sluice" else None
        topic = unique("ktls12")
        create_topic(b.bootstrap, topic, partitions=1)
        messages = [(None, payload(i), 0) for i in range(500)]
        iface = f"ktls{b.net}" if peer == "sluice" else "lo"
        with ServerRecords(iface, b.secure_port) as wire:
            produce(b.secure_bootstrap, topic, messages, conf={**client_config(pki, "client-1"), "acks": "all"},
                    timeout=120)
            got = read_partitions(b.secure_bootstrap, topic, [0], conf=client_config(pki, "client-1"),
                                  timeout=120)
        assert [m.value for m in got] == [payload(i) for i in range(500)]
        connections = wire.records()
        assert connections, "nothing captured from the TLS port"
        encrypted = 0
        for conn, records in connections.items():
            types = [t for t, _ in records]
            assert 20 in types, f"no ChangeCipherSpec on {conn}: {types[:10]}"
            # After ChangeCipherSpec every record is encrypted: the Finished (22), then data (23). A
            # TLS 1.2 AES-GCM record opens with its 8-byte explicit nonce.
            nonces = [payload_[:8] for t, payload_ in records[types.index(20) + 1:]]
            assert len(nonces) == len(set(nonces)), \
                f"a nonce sent twice on {conn}: {[n.hex() for n in nonces if nonces.count(n) > 1][:4]}"
            encrypted += len(nonces)
        # The Finished and the data records of producer and reader, every one of them checked.
        assert encrypted >= 10, connections

        # Refused at Metadata (the harness's produce asserts the topic has no error) or at Produce.
        with pytest.raises((KafkaException, AssertionError)) as refused:
            produce(b.secure_bootstrap, topic, [(None, b"not allowed", 0)],
                    conf={**client_config(pki, "client-2"), "message.timeout.ms": 10_000}, timeout=30)
        assert "AUTHORIZATION" in str(refused.value).upper()
        if peer == "sluice":
            after = b.tls_stat()
            assert after["TlsTxSw"] - before["TlsTxSw"] >= 2 and after["TlsDecryptError"] == 0, (before, after)
    finally:
        b.cleanup()
