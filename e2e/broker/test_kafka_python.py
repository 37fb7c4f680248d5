"""kafka-python: produce, consume in a group (with commits), and its admin client."""

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from clients import unique, wait_until

COUNT = 1000
PARTITIONS = 3


def test_kafka_python_admin_produce_group_consume(broker):
    topic = unique("kp")
    group = unique("kp-g")
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30000)
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30000)
        wait_until(lambda: topic in a.list_topics(), 30, "topic listed")

        p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=10)
        try:
            futures = [p.send(topic, key=f"k{i % 10}".encode(), value=f"v{i}".encode()) for i in range(COUNT)]
            p.flush(timeout=60)
            metas = [f.get(timeout=30) for f in futures]
        finally:
            p.close(timeout=10)
        assert {m.partition for m in metas} <= set(range(PARTITIONS))

        c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=1000)
        got = []
        try:
            def step():
                for records in c.poll(timeout_ms=500).values():
                    got.extend(records)
                return len(got) >= COUNT

            wait_until(step, 60, f"{COUNT} records in the group", interval=0)
            c.commit()
            assert len(c.assignment()) == PARTITIONS
        finally:
            c.close()
        assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(COUNT))
        # Same key, same partition, in send order.
        by_key = {}
        for r in got:
            by_key.setdefault(r.key, []).append((r.partition, int(r.value[1:])))
        for key, seq in by_key.items():
            assert len({part for part, _ in seq}) == 1
            assert [n for _, n in seq] == sorted(n for _, n in seq), f"{key} out of order"

        offsets = a.list_group_offsets(group)[group]
        assert sum(om.offset for om in offsets.values()) == COUNT

        a.delete_topics([topic], timeout_ms=30000)
        wait_until(lambda: topic not in a.list_topics(), 30, "topic gone")
    finally:
        a.close()
