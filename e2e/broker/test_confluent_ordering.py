"""confluent-kafka (librdkafka): thousands of keyed messages over 12 partitions with batching and
linger; per-key and per-partition order kept, nothing lost, offsets contiguous from 0."""

from collections import defaultdict

from clients import create_topic, produce, read_partitions, unique

PARTITIONS = 12
KEYS = 60
MESSAGES = 6000


def test_keyed_messages_keep_order_and_offsets_are_contiguous(broker):
    topic = unique("ordering")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    messages = [(f"key-{i % KEYS}".encode(), f"{i % KEYS}:{i // KEYS}".encode()) for i in range(MESSAGES)]
    reports = produce(
        broker.bootstrap,
        topic,
        messages,
        # Idempotence is what makes librdkafka keep order across retries (without it, a batch retried
        # after a transient error such as a just-created partition may land behind later ones).
        conf={"linger.ms": 50, "batch.num.messages": 500, "enable.idempotence": True, "compression.type": "none"},
    )
    # Batching must not have put everything in one partition: the keys spread over them.
    used = {r.partition for r in reports}
    assert len(used) >= PARTITIONS // 2, f"keys only landed in partitions {sorted(used)}"

    got = read_partitions(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert len(got) == MESSAGES, f"consumed {len(got)} of {MESSAGES}"

    by_partition = defaultdict(list)
    for m in got:
        by_partition[m.partition].append(m)
    for p, msgs in by_partition.items():
        assert [m.offset for m in msgs] == list(range(len(msgs))), f"partition {p}: offsets not contiguous from 0"

    # Every delivery report's (partition, offset) holds exactly that message.
    at = {(m.partition, m.offset): (m.key, m.value) for m in got}
    for r in reports:
        assert at[(r.partition, r.offset)] == (r.key, r.value)

    # Per key: one partition, and the sequence numbers in the order produced.
    seqs = defaultdict(list)
    key_partitions = defaultdict(set)
    for m in got:
        k, seq = m.value.decode().split(":")
        assert m.key == f"key-{k}".encode()
        seqs[k].append(int(seq))
        key_partitions[k].add(m.partition)
    assert len(seqs) == KEYS
    for k, s in seqs.items():
        assert len(key_partitions[k]) == 1, f"key {k} spread over partitions {key_partitions[k]}"
        assert s == list(range(MESSAGES // KEYS)), f"key {k}: out of order or missing ({s[:10]}...)"
