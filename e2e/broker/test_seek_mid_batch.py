"""Seeking into the middle of a batch: the fetch returns the whole batch, and the client skips the
records before the requested offset, so the first record delivered is exactly the one asked for."""

from kafka import KafkaConsumer
from kafka.structs import TopicPartition as KPTopicPartition

from clients import batches_in_log, create_topic, produce, read_partitions, unique

COUNT = 100
SEEK = 37


def test_assign_at_offset_inside_batch_delivers_that_record_first(broker):
    topic = unique("seek")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"m-{i}".encode(), 0) for i in range(COUNT)],
            conf={"linger.ms": 500, "batch.num.messages": 1000})
    batches = [b for log in broker.partition_dir(topic, 0).glob("*.log") for b in batches_in_log(log)]
    assert batches == [(0, COUNT, 0)], f"expected one batch of {COUNT}, got {batches}"

    got = read_partitions(broker.bootstrap, topic, [0], start_offsets={0: SEEK})
    assert got[0].offset == SEEK and got[0].value == f"m-{SEEK}".encode()
    assert [m.offset for m in got] == list(range(SEEK, COUNT))

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KPTopicPartition(topic, 0)
        kc.assign([tp])
        kc.seek(tp, SEEK)
        records = []
        for _ in range(40):
            records += kc.poll(timeout_ms=500).get(tp, [])
            if len(records) >= COUNT - SEEK:
                break
        assert records, "kafka-python got nothing after seeking"
        assert (records[0].offset, records[0].value) == (SEEK, f"m-{SEEK}".encode())
        assert [r.offset for r in records] == list(range(SEEK, COUNT))
    finally:
        kc.close()
