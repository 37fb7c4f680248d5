"""TLS on an SSL listener with PEM stores (`ssl.keystore.type=PEM`), with real clients: confluent-kafka
(librdkafka) and kafka-python produce and consume over it, client certificates are required and checked
(mTLS), and clients that cannot or will not speak TLS to the broker are turned away. Certificates come
from `openssl`, a throwaway CA per test session."""

import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from clients import create_topic, kp_produce, kp_read, produce, read_partitions, unique


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA and what it signed, as PEM files in `dir`: `ca.pem`; per name, `NAME.key` (PKCS#8,
    unencrypted) and `NAME.pem` (the certificate), and `NAME-keystore.pem` (key, certificate, CA)."""

    def __init__(self, dir: Path, ca_name: str):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={ca_name}", cwd=dir)
        self.ca = dir / "ca.pem"

    def issue(self, name: str, san: str | None = None,
              valid: tuple[datetime, datetime] | None = None) -> tuple[Path, Path]:
        """A key and a certificate for `name`, valid for two days from now or, with `valid`, from its first
        to its second time (UTC; either may lie outside the CA's own validity)."""
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
        if valid is None:
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", f"{name}.pem", "-days", "2", "-extfile", str(ext), cwd=self.dir)
        else:
            # OpenSSL 3.0's `x509 -req` only counts days from now; `openssl ca` takes both dates.
            start, end = (t.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ") for t in valid)
            _openssl("ca", "-batch", "-config", str(self._ca_config()), "-cert", "ca.pem", "-keyfile", "ca.key",
                     "-in", f"{name}.csr", "-out", f"{name}.pem", "-notext", "-rand_serial",
                     "-startdate", start, "-enddate", end, "-extfile", str(ext), cwd=self.dir)
        key, cert = self.dir / f"{name}.key", self.dir / f"{name}.pem"
        (self.dir / f"{name}-keystore.pem").write_text(key.read_text() + cert.read_text() + self.ca.read_text())
        return cert, key

    def keystore(self, name: str) -> Path:
        return self.dir / f"{name}-keystore.pem"

    def _ca_config(self) -> Path:
        """The least `openssl ca` needs: its database (in `ca-db/`, with its copies of what it signed), any
        subject, SHA-256."""
        db = self.dir / "ca-db"
        config = self.dir / "ca.cnf"
        if not config.exists():
            db.mkdir()
            (db / "index.txt").touch()
            config.write_text(f"[ca]\ndefault_ca = this\n[this]\ndatabase = {db}/index.txt\n"
                              f"new_certs_dir = {db}\nserial = {db}/serial\ndefault_md = sha256\n"
                              "policy = any\nunique_subject = no\n[any]\ncommonName = supplied\n")
        return config


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca = Pki(root / "ca", "e2e CA")
    ca.issue("broker", san="DNS:localhost,IP:127.0.0.1")
    ca.issue("client-1")
    other = Pki(root / "other", "another CA")
    other.issue("broker", san="DNS:localhost,IP:127.0.0.1")
    other.issue("client-2")
    return ca, other


def ssl_config(broker_pki: Pki, **extra) -> dict:
    return {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(broker_pki.keystore("broker")), **extra}


def tls_client(ca: Path, cert: Path | None = None, key: Path | None = None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca)}
    if cert is not None:
        conf.update({"ssl.certificate.location": str(cert), "ssl.key.location": str(key)})
    return conf


def reaches(bootstrap: str, conf: dict, timeout: float = 10) -> bool:
    """Whether a librdkafka client with `conf` gets metadata within `timeout` seconds. A refused client keeps
    retrying until then, so the refusals are checked with a shorter one."""
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, **conf})
    try:
        a.list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False


def test_confluent_and_kafka_python_produce_and_consume_over_tls(broker_factory, pki):
    ca, _ = pki
    b = broker_factory(ssl_config(ca), secure="SSL")
    topic = unique("tls")
    create_topic(b.bootstrap, topic)
    conf = tls_client(ca.ca)
    # Small records and one of 900 KB, which the broker sends from its segment through the TLS
    # session in several chunks.
    big = bytes(range(256)) * 3600
    messages = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)] + [(b"big", big)]
    delivered = produce(b.secure_bootstrap, topic, messages, conf={**conf, "enable.idempotence": True, "acks": "all"})
    assert [d.offset for d in delivered] == list(range(len(messages)))
    got = read_partitions(b.secure_bootstrap, topic, [0], conf=conf)
    assert [(m.key, m.value) for m in got] == messages

    kp_tls = {"security_protocol": "SSL", "ssl_cafile": str(ca.ca)}
    kp_produce(b.secure_bootstrap, topic, [(b"kp", b"from kafka-python")], **kp_tls)
    records = kp_read(b.secure_bootstrap, topic, 0, len(messages) + 1, **kp_tls)
    assert [(r.key, r.value) for r in records] == messages + [(b"kp", b"from kafka-python")]


def mtls_broker(broker_factory, ca: Pki):
    """A broker whose SSL listener requires a client certificate that `ca` signed."""
    return broker_factory(ssl_config(ca, **{"ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca.ca),
                                            "ssl.client.auth": "required"}), secure="SSL")


def test_client_certificates_are_required_and_checked(broker_factory, pki):
    ca, other = pki
    b = mtls_broker(broker_factory, ca)
    cert, key = ca.dir / "client-1.pem", ca.dir / "client-1.key"
    assert reaches(b.secure_bootstrap, tls_client(ca.ca, cert, key))
    topic = unique("mtls")
    create_topic(b.bootstrap, topic)
    produce(b.secure_bootstrap, topic, [(None, b"with a certificate")], conf=tls_client(ca.ca, cert, key))
    assert not reaches(b.secure_bootstrap, tls_client(ca.ca), timeout=4), \
        "a client without a certificate was let in"
    stranger = tls_client(ca.ca, other.dir / "client-2.pem", other.dir / "client-2.key")
    assert not reaches(b.secure_bootstrap, stranger, timeout=4), "a certificate from an untrusted CA was let in"


def test_expired_and_not_yet_valid_client_certificates_are_refused(broker_factory, pki):
    """Certificates the trusted CA signed, one expired in 2020 and one valid only from tomorrow, are refused;
    one valid now from the same CA is accepted."""
    ca, _ = pki
    now = datetime.now(timezone.utc)
    expired = ca.issue("client-expired", valid=(datetime(2020, 1, 1, tzinfo=timezone.utc),
                                                datetime(2020, 1, 2, tzinfo=timezone.utc)))
    not_yet_valid = ca.issue("client-not-yet-valid", valid=(now + timedelta(days=1), now + timedelta(days=1, hours=1)))
    b = mtls_broker(broker_factory, ca)
    assert reaches(b.secure_bootstrap, tls_client(ca.ca, ca.dir / "client-1.pem", ca.dir / "client-1.key"))
    for why, (cert, key) in {"expired": expired, "not yet valid": not_yet_valid}.items():
        assert not reaches(b.secure_bootstrap, tls_client(ca.ca, cert, key), timeout=4), \
            f"a client certificate that is {why} was let in"


def test_clients_that_do_not_trust_the_broker_or_speak_plaintext_are_turned_away(broker_factory, pki):
    ca, other = pki
    b = broker_factory(ssl_config(ca), secure="SSL")
    # The client checks the broker's certificate against a CA that did not sign it.
    assert not reaches(b.secure_bootstrap, tls_client(other.ca), timeout=4)
    # A plaintext ApiVersions to the TLS port gets no Kafka answer: the broker closes the connection
    # (after a TLS alert, if anything).
    with socket.create_connection(("127.0.0.1", b.secure_port), timeout=10) as s:
        s.sendall(bytes([0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xFF, 0xFF]))
        s.settimeout(10)
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not answer or answer[0] == 0x15, f"a plaintext request got {answer[:16]!r}"
    # The plaintext listener beside it is unaffected.
    assert reaches(b.bootstrap, {})
