"""Topics and records cross nodes: what one node is told, every node knows."""

from __future__ import annotations

from collections import defaultdict

from clients import produce, read_partitions, unique
from cluster_harness import admin, create_topics, wait_listed


def test_topic_created_through_one_node_is_visible_through_every_node(cluster_factory):
    c = cluster_factory()
    a = c.node(1)
    first = unique("cross")
    create_topics(a.bootstrap, [first], partitions=3)
    seen = wait_listed(c.nodes, {first: 3})
    ids = {i: md.topics[first].topic_id for i, md in seen.items()}
    assert len(set(ids.values())) == 1 and ids[1] != "00" * 16, ids

    # Five more, one at a time, each through a different node than the one before.
    topics = {first: 3}
    for k in range(5):
        name = unique(f"seq{k}")
        create_topics(c.node(k % 3 + 1).bootstrap, [name], partitions=k + 1)
        topics[name] = k + 1
    seen = wait_listed(c.nodes, topics)
    for name in topics:
        ids = {i: md.topics[name].topic_id for i, md in seen.items()}
        assert len(set(ids.values())) == 1, (name, ids)
    # The same through a real client that knows only that node.
    for n in c.nodes:
        listed = admin(n.bootstrap).list_topics(timeout=10).topics
        assert {name: len(listed[name].partitions) for name in topics if name in listed} == topics, n.node_id


def test_produce_through_one_node_consume_through_another(cluster_factory):
    c = cluster_factory()
    topic = unique("records")
    create_topics(c.node(1).bootstrap, [topic], partitions=3, replication_factor=3)
    wait_listed(c.nodes, {topic: 3}, led=True)

    messages = [(f"key-{i % 17}".encode(), f"value-{i}".encode()) for i in range(1000)]
    delivered = produce(c.node(2).bootstrap, topic, messages, conf={"acks": "all", "enable.idempotence": True})
    consumed = read_partitions(c.node(3).bootstrap, topic, [0, 1, 2])

    assert len(consumed) == 1000
    sent = defaultdict(list)
    for d in sorted(delivered, key=lambda d: (d.partition, d.offset)):
        sent[d.partition].append((d.offset, d.key, d.value))
    got = defaultdict(list)
    for m in consumed:
        got[m.partition].append((m.offset, m.key, m.value))
    assert set(got) == set(sent)
    for p in sent:
        assert got[p] == sent[p], f"partition {p}"
        assert [o for o, _, _ in got[p]] == list(range(len(got[p]))), f"partition {p}: offsets not dense"
    # Keyed: a key's records all went to one partition, in the order they were produced.
    for key in {k for k, _ in messages}:
        parts = {p for p in got for _, k, _ in got[p] if k == key}
        assert len(parts) == 1, key
        (p,) = parts
        assert [v for _, k, v in got[p] if k == key] == [v for k, v in messages if k == key], key
