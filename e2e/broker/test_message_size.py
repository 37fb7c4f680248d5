"""message.max.bytes: a batch just under the broker's limit is accepted and read back; one over it is
rejected by the broker with MESSAGE_TOO_LARGE (error code 10), not by the client."""

import pytest
from confluent_kafka import KafkaError, Producer
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from clients import create_topic, kp_read, produce, read_partitions, unique

BROKER_MAX = 200_000
JUST_UNDER = 199_000  # value bytes; the batch adds well under 1000 bytes of framing
OVER = 201_000
MESSAGE_TOO_LARGE = 10


@pytest.fixture
def small_limit_broker(broker_factory):
    return broker_factory({"message.max.bytes": BROKER_MAX})


def test_confluent_just_under_limit_ok_and_over_limit_rejected_by_broker(small_limit_broker):
    b = small_limit_broker
    topic = unique("size")
    create_topic(b.bootstrap, topic, partitions=1)
    # The client's own limit is far above the broker's, so only the broker can refuse.
    conf = {"compression.type": "none", "batch.num.messages": 1, "linger.ms": 0, "message.max.bytes": 1_000_000}
    big = bytes(i % 251 for i in range(JUST_UNDER))
    [ok] = produce(b.bootstrap, topic, [(b"big", big, 0)], conf=conf)
    assert ok.offset == 0

    p = Producer({"bootstrap.servers": b.bootstrap, "retries": 0, **conf})
    reports = []
    p.produce(topic, value=b"x" * OVER, partition=0, on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1 and reports[0] is not None, "an over-limit message was accepted"
    assert reports[0].code() == KafkaError.MSG_SIZE_TOO_LARGE == MESSAGE_TOO_LARGE
    assert not reports[0].retriable()

    # The rejection did not break the connection or the partition: the next message goes through.
    [after] = produce(b.bootstrap, topic, [(b"after", b"small", 0)], conf=conf)
    assert after.offset == 1
    got = read_partitions(b.bootstrap, topic, [0], conf={"fetch.max.bytes": 1_000_000, "max.partition.fetch.bytes": 1_000_000})
    assert [(m.offset, m.key, m.value) for m in got] == [(0, b"big", big), (1, b"after", b"small")]


def test_kafka_python_over_limit_rejected_by_broker(small_limit_broker):
    b = small_limit_broker
    topic = unique("size-kp")
    create_topic(b.bootstrap, topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", retries=0, max_request_size=1_000_000, linger_ms=0)
    try:
        under = p.send(topic, value=b"u" * JUST_UNDER, partition=0)
        assert under.get(timeout=30).offset == 0
        over = p.send(topic, value=b"o" * OVER, partition=0)  # passes kafka-python's own size check
        with pytest.raises(MessageSizeTooLargeError) as e:
            over.get(timeout=30)
        assert e.value.errno == MESSAGE_TOO_LARGE
    finally:
        p.close(timeout=10)
    [m] = kp_read(b.bootstrap, topic, 0, 1)
    assert (m.offset, len(m.value)) == (0, JUST_UNDER)
