"""The Apache Kafka Java client (kafka-clients 4.x), unconfigured: its default producer is
idempotent with acks=all, its consumer uses a group, and its AdminClient manages topics."""

import base64
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition

from clients import admin, create_topic, java, read_partitions, unique, wait_until

COUNT = 5000
PARTITIONS = 4


def test_java_default_idempotent_producer_and_group_consumer(broker):
    topic = unique("java")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    rc, lines, err = java("produce", "--bootstrap", broker.bootstrap, "--topic", topic, "--count", str(COUNT),
                          "--prefix", "j")
    assert rc == 0, f"java produce failed: {lines} {err}"
    [summary] = lines
    # The defaults the broker must cope with: idempotent producer (InitProducerId, sequence numbers).
    assert summary["idempotence"] is True and summary["acks"] in ("all", "-1")
    assert (summary["acked"], summary["failed"]) == (COUNT, 0)

    # Stored once each, in send order per key's partition.
    records = read_partitions(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert len(records) == COUNT
    assert sorted(int(r.key[1:]) for r in records) == list(range(COUNT))
    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(int(r.key[1:]))
    for p, keys in by_partition.items():
        assert keys == sorted(keys), f"partition {p} not in send order"

    group = unique("java-g")
    rc, lines, err = java("consume", "--bootstrap", broker.bootstrap, "--topic", topic, "--group", group,
                          "--count", str(COUNT), "--timeout-ms", "60000", "--print")
    assert rc == 0, f"java consume failed: {lines[-1:]} {err}"
    got = [r for r in lines if "o" in r]
    assert lines[-1] == {"consumed": COUNT}
    assert sorted(base64.b64decode(r["k"]).decode() for r in got) == sorted(f"k{i}" for i in range(COUNT))
    # Its commit landed: the group's committed offsets are the partitions' ends.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        assert {tp.partition: tp.offset for tp in committed} == ends
    finally:
        c.close()


def test_java_admin_create_describe_delete(broker):
    topic = unique("java-admin")
    commands = [f"create-topic {topic} 2", f"describe-topic {topic}", f"delete-topic {topic}"]
    rc, results, err = java("admin", "--bootstrap", broker.bootstrap, stdin="\n".join(commands) + "\n")
    assert rc == 0 and len(results) == 3, f"{results} {err}"
    assert results[0]["ok"] and results[2]["ok"], results
    assert results[1]["name"] == topic and len(results[1]["partitions"]) == 2
    assert results[1]["topic_id"] not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), "topics need a real (non-zero) id"
    wait_until(lambda: topic not in admin(broker.bootstrap).list_topics(timeout=10).topics, 30, "topic deleted")
