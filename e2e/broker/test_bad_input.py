"""Bad input on raw sockets: the broker drops the offending connection (as Apache Kafka does) and
nothing else: a client producing and consuming meanwhile is unaffected, and the process lives on.

What Apache Kafka does, and Sluice must do too:
- a frame it cannot parse (garbage header, too-short frame) -> closes the connection without answering;
- a size prefix above socket.request.max.bytes (100 MiB by default) or negative -> closes at once,
  without trying to read (or allocate) the body;
- ApiVersions at a version it does not support -> answers UNSUPPORTED_VERSION (35) in a v0-format
  response listing at least its ApiVersions range (KIP-511), and the connection stays usable.

Where Sluice differs on purpose: a well-formed request for an unknown API key, or for a version of an API
it does not serve, names itself (API key, correlation id), so Sluice answers it with UNSUPPORTED_VERSION
(35) and keeps the connection, instead of dropping it as Kafka does; a client learns what went wrong.
"""

import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import kwire
from harness import peer_name
from clients import create_topic, read_partitions, unique

CLOSE_TIMEOUT = 10


def frame_with_size(size: int, body: bytes = b"") -> bytes:
    return struct.pack(">i", size) + body


BAD_FRAMES = {
    "garbage-header": frame_with_size(16, b"\xff" * 16),
    "http-request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "size-2GiB": frame_with_size(0x7FFFFFFF, b"abc"),
    "size-over-socket.request.max.bytes": frame_with_size(104857600 + 1, b"abc"),
    "size-negative": frame_with_size(-1, b"abc"),
    "size-zero": frame_with_size(0),
    "frame-shorter-than-header": kwire.frame(b"\x00\x03"),
}

# Well-formed requests the broker does not serve: Sluice answers them, Kafka hangs up.
UNSERVED_REQUESTS = {
    "unknown-api-key": kwire.frame(kwire.request_header(9999, 0, 5, "bad", False)),
    "metadata-unsupported-version": kwire.frame(
        kwire.request_header(kwire.API_METADATA, 200, 5, "bad", False) + struct.pack(">i", -1)
    ),
}


class Traffic:
    """A well-behaved client on its own thread while the bad input goes on: it produces a batch,
    then consumes it back with a long-lived consumer, over and over."""

    def __init__(self, bootstrap, topic):
        self.bootstrap, self.topic = bootstrap, topic
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.error: Exception | None = None
        self.rounds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all"})
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("traffic"),
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(self.topic, 0, 0)])
        try:
            while not self.stop.is_set():
                batch = [f"ok-{len(self.sent) + i}".encode() for i in range(50)]
                for v in batch:
                    producer.produce(self.topic, value=v, partition=0)
                if producer.flush(30) != 0:
                    raise TimeoutError("traffic: produce not acknowledged within 30s")
                self.sent += batch
                deadline = time.monotonic() + 30
                while len(self.received) < len(self.sent):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"traffic: consumed {len(self.received)} of {len(self.sent)}")
                    msg = consumer.poll(0.2)
                    if msg is not None:
                        if msg.error():
                            raise KafkaException(msg.error())
                        self.received.append(msg.value())
                self.rounds += 1
                time.sleep(0.05)
        except Exception as e:  # reported by finish()
            self.error = e
        finally:
            consumer.close()

    def finish(self):
        # At least one whole round, however quickly the bad input was dealt with: a test that ends before the
        # client got going proves nothing about it.
        deadline = time.monotonic() + 60
        while self.rounds == 0 and self.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), "traffic thread stuck"
        assert self.error is None, f"the well-behaved client failed: {self.error!r}"
        assert self.sent and self.received == self.sent, "the well-behaved client did not get back what it sent"


@pytest.fixture
def traffic(broker):
    topic = unique("bad-input-traffic")
    create_topic(broker.bootstrap, topic, partitions=1)
    t = Traffic(broker.bootstrap, topic)
    yield t
    t.finish()
    got = read_partitions(broker.bootstrap, topic, [0])
    assert [m.value for m in got] == t.sent, "the well-behaved client's messages were not all stored in order"
    assert broker.is_alive()


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame_closes_only_that_connection(broker, traffic, name):
    with kwire.connect(broker.bootstrap) as sock:
        sock.sendall(BAD_FRAMES[name])
        assert kwire.wait_closed(sock, CLOSE_TIMEOUT), f"{name}: connection still open after {CLOSE_TIMEOUT}s"
    # The broker still answers on a fresh connection.
    with kwire.connect(broker.bootstrap) as sock:
        brokers, _ = kwire.metadata(sock)
        assert [b.node_id for b in brokers] == [1]


@pytest.mark.parametrize("name", list(UNSERVED_REQUESTS))
def test_unserved_request_gets_unsupported_version(broker, traffic, name):
    with kwire.connect(broker.bootstrap) as sock:
        sock.sendall(UNSERVED_REQUESTS[name])
        if peer_name() == "kafka":
            assert kwire.wait_closed(sock, CLOSE_TIMEOUT), f"{name}: Kafka kept the connection open"
            return
        answer = kwire.recv_frame(sock)
        correlation_id, error_code = struct.unpack(">ih", answer[:6])
        assert (correlation_id, error_code) == (5, kwire.ERROR_UNSUPPORTED_VERSION)
        # The same connection goes on serving.
        brokers, _ = kwire.metadata(sock)
        assert [b.node_id for b in brokers] == [1]


def test_truncated_requests_then_close(broker, traffic):
    # Announce more than is sent, then hang up, at various points of the frame.
    fragments = [
        struct.pack(">i", 100)[:2],
        struct.pack(">i", 100),
        struct.pack(">i", 100) + b"\x00\x12\x00\x00",
        kwire.frame(kwire.request_header(kwire.API_METADATA, 1, 1, "trunc", False) + struct.pack(">i", -1))[:-3],
    ]
    for _ in range(20):
        for data in fragments:
            with kwire.connect(broker.bootstrap) as sock:
                sock.sendall(data)
    # Connections that stall half-way do not block anyone else either.
    stalled = []
    try:
        for data in fragments:
            sock = kwire.connect(broker.bootstrap)
            sock.sendall(data)
            stalled.append(sock)
        with kwire.connect(broker.bootstrap) as sock:
            brokers, _ = kwire.metadata(sock)
            assert [b.node_id for b in brokers] == [1]
    finally:
        for sock in stalled:
            sock.close()


def test_api_versions_unsupported_version_gets_fallback_answer(broker, traffic):
    with kwire.connect(broker.bootstrap) as sock:
        r = kwire.api_versions(sock, 127)
        assert r.error_code == kwire.ERROR_UNSUPPORTED_VERSION == 35
        assert kwire.API_API_VERSIONS in r.api_keys, "the fallback answer must give the ApiVersions range"
        lo, hi = r.api_keys[kwire.API_API_VERSIONS]
        assert lo == 0 and hi >= 3
        # The client retries with a version it now knows is supported, on the same connection.
        r = kwire.api_versions(sock, 3)
        assert r.error_code == 0
        assert r.api_keys[kwire.API_API_VERSIONS] == (lo, hi)
        for key in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19, 20):
            assert key in r.api_keys, f"api key {key} missing from ApiVersions"
        # v0 still works too (old clients).
        assert kwire.api_versions(sock, 0).error_code == 0


def test_raw_socket_flood_of_connections(broker, traffic):
    """Many connections opened and dropped without a word do not exhaust the broker."""
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
    finally:
        for s in socks:
            s.close()
    with kwire.connect(broker.bootstrap) as sock:
        assert kwire.api_versions(sock, 3).error_code == 0
