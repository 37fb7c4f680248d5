"""Committed offsets (with metadata) survive a broker restart, graceful or kill -9, and a new
consumer in the same group resumes exactly there."""

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from kafka import KafkaConsumer
from kafka.structs import TopicPartition as KPTopicPartition

from confluent_kafka import KafkaError

from clients import create_topic, produce, unique, wait_until

MESSAGES = 200
HALF = 100
METADATA = "sluice-e2e checkpoint #1"
RETRIABLE_COORDINATOR_ERRORS = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def group_consumer(bootstrap, group):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )


def poll_values(consumer, n, timeout=60):
    out = []

    def step():
        msg = consumer.poll(0.5)
        if msg is not None:
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.offset(), msg.value()))
        return len(out) >= n

    wait_until(step, timeout, f"{n} messages", interval=0)
    return out


def committed(consumer, tp, timeout=60):
    """committed(), retried while the restarted broker is still loading its group state: until then
    Kafka answers OffsetFetch with NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS, retriable errors."""
    result = []

    def attempt():
        try:
            result[:] = consumer.committed([tp], timeout=10)
            return True
        except KafkaException as e:
            if e.args[0].retriable() or e.args[0].code() in RETRIABLE_COORDINATOR_ERRORS:
                return False
            raise

    wait_until(attempt, timeout, "committed offsets to be readable", interval=0.5)
    return result[0]


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_committed_offset_and_metadata_survive_restart(broker_factory, how):
    b = broker_factory()
    topic = unique("commit")
    group = unique("commit-g")
    create_topic(b.bootstrap, topic, partitions=1)
    produce(b.bootstrap, topic, [(None, f"m-{i}".encode(), 0) for i in range(MESSAGES)])

    c = group_consumer(b.bootstrap, group)
    c.subscribe([topic])
    got = poll_values(c, HALF)
    assert [o for o, _ in got] == list(range(HALF))
    # Commit exactly "next offset to read = HALF", with a metadata string.
    c.commit(offsets=[TopicPartition(topic, 0, HALF, metadata=METADATA)], asynchronous=False)
    got_back = committed(c, TopicPartition(topic, 0))
    assert (got_back.offset, got_back.metadata) == (HALF, METADATA)
    c.close()

    if how == "stop":
        b.restart()
    else:
        b.kill9()
        b.start()

    # confluent-kafka: committed() still returns offset and metadata, and the group resumes there.
    c = group_consumer(b.bootstrap, group)
    try:
        got_back = committed(c, TopicPartition(topic, 0))
        assert got_back.error is None
        assert (got_back.offset, got_back.metadata) == (HALF, METADATA)
        c.subscribe([topic])
        got = poll_values(c, MESSAGES - HALF)
        assert got[0] == (HALF, f"m-{HALF}".encode())
        assert [o for o, _ in got] == list(range(HALF, MESSAGES))
    finally:
        c.close()

    # kafka-python sees the same metadata through its own OffsetFetch. confluent-kafka-python commits
    # the metadata as a C string *including* its NUL terminator (and strips it when reading back), so
    # the bytes the broker stored and must return verbatim end in "\x00".
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tp = KPTopicPartition(topic, 0)
        om = wait_until(lambda: kc.committed(tp, metadata=True), 30, "kafka-python committed()")
        assert (om.offset, om.metadata) == (HALF, METADATA + "\x00")
    finally:
        kc.close()
