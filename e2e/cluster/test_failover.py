"""One node of three dies (kill -9): the other two carry on, and the node catches up on restart."""

from __future__ import annotations

import time

from confluent_kafka.admin import NewPartitions

from clients import unique
from cluster_harness import admin, create_topic_via, create_topics, metadata, wait_listed, wait_until

NEW_LEADER_WITHIN_S = 15


def test_kill9_of_the_active_controller(cluster_factory):
    c = cluster_factory()
    topics = {}
    for n in c.nodes:
        name = unique(f"before{n.node_id}")
        create_topics(n.bootstrap, [name])
        topics[name] = 1
    wait_listed(c.nodes, topics)

    old = c.leader_id()
    c.node(old).kill9()
    killed_at = time.monotonic()
    survivors = c.live()
    live_ids = {n.node_id for n in survivors}

    def new_leader():
        lid = c.leader_id(via=survivors[0])
        return lid if lid in live_ids else None

    new = wait_until(new_leader, NEW_LEADER_WITHIN_S, f"a new leader among {sorted(live_ids)} after killing {old}")
    took = time.monotonic() - killed_at
    assert took <= NEW_LEADER_WITHIN_S, f"new leader {new} reported only {took:.1f}s after the kill"
    print(f"leader {old} killed; kafka-metadata-quorum reports leader {new} after {took:.1f}s")

    # CreateTopics through a survivor works (sent to it alone: see create_topic_via), and nothing
    # created before is lost.
    after = unique("after")
    create_topic_via(survivors[1], after)
    topics[after] = 1
    wait_listed(survivors, topics)

    c.start([old])
    wait_listed([c.node(old)], topics)


def test_kill9_of_a_follower_controller(cluster_factory):
    c = cluster_factory()
    leader = c.leader_id()
    follower = next(n for n in c.nodes if n.node_id != leader)
    grown, doomed = unique("grown"), unique("doomed")
    create_topics(c.node(leader).bootstrap, [grown, doomed])
    wait_listed(c.nodes, {grown: 1, doomed: 1})

    follower.kill9()
    survivors = c.live()
    # Admin operations keep working through either survivor, at once (sent to that node alone)...
    created = {unique(f"during{n.node_id}"): 2 for n in survivors}
    for n, name in zip(survivors, created):
        create_topic_via(n, name, partitions=2)
    # ... and through an AdminClient once the dead node is fenced (before, librdkafka may pick it as
    # the "controller" to send to): add partitions, delete a topic.
    for n in survivors:
        wait_until(lambda: follower.node_id not in metadata(n.bootstrap).brokers,
                   c.session_timeout_ms / 1000 + 8, f"node {n.node_id} to fence node {follower.node_id}")
    first, second = admin(survivors[0].bootstrap), admin(survivors[1].bootstrap)
    first.create_partitions([NewPartitions(grown, 3)])[grown].result(30)
    second.delete_topics([doomed], operation_timeout=30)[doomed].result(40)
    want = {grown: 3, **created}
    wait_listed(survivors, want)
    for n in survivors:
        wait_until(lambda: doomed not in metadata(n.bootstrap).topics, 20, f"node {n.node_id} to drop {doomed}")
    # Losing a follower does not cost the leader its majority.
    assert c.leader_id(via=survivors[0]) == leader

    c.start([follower.node_id])
    wait_listed([follower], want)
    assert doomed not in metadata(follower.bootstrap).topics

    # Caught up as a voter: the tool shows it following with no lag.
    def caught_up():
        rows = {int(r["NodeId"]): r for r in c.replication(via=follower)}
        row = rows.get(follower.node_id)
        return row is not None and row["Status"] == "Follower" and int(row["Lag"]) == 0 and rows

    wait_until(caught_up, 30, f"node {follower.node_id} to follow with lag 0")


def test_stopped_broker_is_fenced(cluster_factory):
    c = cluster_factory(session_timeout_ms=4000, heartbeat_interval_ms=500)
    leader = c.leader_id()
    victim = next(n for n in c.nodes if n.node_id != leader)
    victim.kill9()
    killed_at = time.monotonic()
    survivors = c.live()

    bound = c.session_timeout_ms / 1000 + 8
    for n in survivors:
        wait_until(
            lambda: set(metadata(n.bootstrap).brokers) == {s.node_id for s in survivors},
            max(0.0, bound - (time.monotonic() - killed_at)),
            f"node {n.node_id} to stop listing fenced node {victim.node_id}",
        )
    print(f"node {victim.node_id} gone from the survivors' Metadata {time.monotonic() - killed_at:.1f}s after kill -9")

    c.start([victim.node_id])  # ready = every node lists all three again
    for n in c.nodes:
        assert set(metadata(n.bootstrap).brokers) == {1, 2, 3}
