"""The quorum needs a majority of its three voters: two suffice, one does not."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from clients import unique
from cluster_harness import create_topics, metadata, wait_listed, wait_until

# What CreateTopics through the survivor of a majority loss fails with. Against Kafka 4.4 the call
# runs out of time in the client (_TIMED_OUT): either the survivor has it and keeps the forwarded
# request until its forwarding channel gives up, after 60 s, and only then answers REQUEST_TIMED_OUT;
# or librdkafka waits for a dead node its Metadata named "controller" ("Timed out waiting for
# controller"). A broker that honours the request's timeout_ms answers REQUEST_TIMED_OUT in time, and
# NOT_CONTROLLER is as retriable.
NO_QUORUM_ERRORS = {KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_CONTROLLER}
REQUEST_TIMEOUT_S = 10


def same_topics_everywhere(c):
    views = [{name: t.topic_id for name, t in metadata(n.bootstrap).topics.items()} for n in c.nodes]
    return views[0] if all(v == views[0] for v in views) else None


def test_majority_loss_stops_admin_until_a_majority_returns(cluster_factory):
    c = cluster_factory()
    before = unique("before")
    create_topics(c.node(1).bootstrap, [before])
    wait_listed(c.nodes, {before: 1})

    leader = c.leader_id()
    survivor = next(n for n in c.nodes if n.node_id != leader)
    down = [n.node_id for n in c.nodes if n is not survivor]
    for i in down:
        c.node(i).kill9()

    lost = unique("lost")
    start = time.monotonic()
    with pytest.raises(KafkaException) as failure:
        create_topics(survivor.bootstrap, [lost], timeout=REQUEST_TIMEOUT_S)
    took = time.monotonic() - start
    err = failure.value.args[0]
    print(f"CreateTopics through lone node {survivor.node_id}: {err.name()} ({err.code()}) after {took:.1f}s")
    assert err.code() in NO_QUORUM_ERRORS, err
    assert took < REQUEST_TIMEOUT_S + 10
    assert lost not in metadata(survivor.bootstrap).topics

    c.start(down)
    again = unique("again")
    create_topics(survivor.bootstrap, [again])
    wait_listed(c.nodes, {before: 1, again: 1})
    # All three agree on every topic and its id (including whether `lost` was created after all:
    # Kafka's broker may still deliver the forwarded request once a leader is back).
    topics = wait_until(lambda: same_topics_everywhere(c), 20, "all nodes to list the same topics")
    print(f"after the majority returned: {sorted(topics)}")


def test_node_joining_late_learns_every_topic(cluster_factory):
    c = cluster_factory(start=False)
    c.start([1, 2])  # two of the three voters are a majority
    topics = {}
    for k in range(4):
        name = unique(f"early{k}")
        create_topics(c.node(k % 2 + 1).bootstrap, [name], partitions=k + 1)
        topics[name] = k + 1
    early = wait_listed([c.node(1), c.node(2)], topics)

    c.start([3])
    late = wait_listed([c.node(3)], topics)
    for name in topics:
        assert late[3].topics[name].topic_id == early[1].topics[name].topic_id, name
