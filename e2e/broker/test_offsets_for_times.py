"""ListOffsets by timestamp: the answer is the first record whose timestamp is >= the target, found
inside a batch (not just the batch's first record), and -1 (end) for a target after every record."""

import time

from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka.structs import TopicPartition as KPTopicPartition

from clients import batches_in_log, create_topic, produce, unique

COUNT = 50
PER_BATCH = 10
STEP_MS = 1000


def test_offsets_for_times_finds_exact_record_inside_batches(broker):
    topic = unique("times")
    create_topic(broker.bootstrap, topic, partitions=1)
    # Recent enough for the broker's timestamp-skew limits (log.message.timestamp.*.max.ms).
    t0 = int(time.time() * 1000) - 10 * 60 * 1000
    ts = [t0 + i * STEP_MS for i in range(COUNT)]
    for start in range(0, COUNT, PER_BATCH):
        # One produce+flush per group of records: each group becomes one batch.
        produce(broker.bootstrap, topic,
                [(None, f"t-{i}".encode(), 0, ts[i]) for i in range(start, start + PER_BATCH)],
                conf={"linger.ms": 200, "batch.num.messages": 1000})
    batches = [b for log in broker.partition_dir(topic, 0).glob("*.log") for b in batches_in_log(log)]
    assert len(batches) < COUNT and max(n for _, n, _ in batches) > 1, f"records were not batched: {batches}"

    queries = {
        t0 - 5_000: 0,  # before everything: the first record
        ts[0]: 0,
        ts[5]: 5,  # exact timestamp of a record in the middle of the first batch
        ts[13]: 13,
        ts[13] + 1: 14,  # between two records: the next one
        ts[27] - 1: 27,
        ts[40]: 40,  # first record of a batch
        ts[49]: 49,  # the very last record
        ts[49] + 1: -1,  # after everything: -1, i.e. "end" (no such record)
    }
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("times-g")})
    try:
        for target, want in queries.items():
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.error is None
            assert tp.offset == want, f"target {target - t0:+d} ms after t0: got offset {tp.offset}, want {want}"
    finally:
        c.close()

    # kafka-python also reports the timestamp of the record found.
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = KPTopicPartition(topic, 0)
        for target, want in queries.items():
            found = kc.offsets_for_times({tp: target})[tp]
            if want == -1:
                assert found is None, f"target after the last record: got {found}"
            else:
                assert (found.offset, found.timestamp) == (want, ts[want])
    finally:
        kc.close()
