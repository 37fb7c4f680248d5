"""kill -9 of a follower under an idempotent acks=all load: it leaves the ISR of every partition it
follows, leadership stays where it was, and acks=all goes on (two in-sync replicas still satisfy
min.insync.replicas=2); restarted, it catches up and returns to every ISR. The checker then proves every
acknowledged message is there once, in order, on every replica, the returned follower included."""

from __future__ import annotations

import time

from confluent_kafka import TopicCollection

from cluster_harness import admin
from replicated_load import (REPLICATED_CLUSTER, AckLedger, LoadProducer, check, create_replicated_topic,
                             partition_states, wait_in_sync, wait_partitions)

# Two partitions on three brokers: one broker leads neither, and follows both.
PARTITIONS = [0, 1]
# Out of the ISR once fenced (session timeout 4 s), or behind for replica.lag.time.max.ms (10 s) at the latest.
ISR_SHRINK_WITHIN_S = 25


def isr_by_admin_client(bootstrap: str, topic: str) -> dict[int, set[int]]:
    """Each partition's ISR as confluent-kafka's AdminClient describes the topic."""
    client = admin(bootstrap)
    description = client.describe_topics(TopicCollection([topic]), request_timeout=10)[topic].result(20)
    return {p.id: {n.id for n in p.isr} for p in description.partitions}


def test_kill9_of_a_follower(cluster_factory, trial):
    c = cluster_factory(**REPLICATED_CLUSTER)
    topic = create_replicated_topic(c, len(PARTITIONS))
    before = partition_states(c.node(1), topic)
    leaders = {p: before[p].leader for p in PARTITIONS}
    victim = min(n.node_id for n in c.nodes if n.node_id not in leaders.values())
    assert all(victim in before[p].replicas for p in PARTITIONS), before

    ledger = AckLedger()
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load:
        load.wait_progress(1000, 60, "before the kill")
        c.node(victim).kill9()
        killed_at = time.monotonic()
        survivors = c.live_brokers()
        others = {n.node_id for n in survivors}

        # Out of every ISR, and nothing else changes: same leaders, same epochs.
        wait_in_sync(c, topic, PARTITIONS, others, timeout=ISR_SHRINK_WITHIN_S)
        print(f"follower {victim} out of every ISR {time.monotonic() - killed_at:.1f}s after kill -9")
        after = partition_states(survivors[0], topic)
        assert {p: after[p].leader for p in PARTITIONS} == leaders, after
        assert all(after[p].leader_epoch == before[p].leader_epoch for p in PARTITIONS), (before, after)

        # Two in-sync replicas are enough for acks=all with min.insync.replicas=2.
        load.wait_progress(1000, 30, "with the follower down")

        restarted_at = time.monotonic()
        c.start([victim])
        wait_partitions(c.live_brokers(), topic, PARTITIONS,
                        lambda p, s: s.leader == leaders[p] and set(s.isr) == {1, 2, 3}, 60,
                        f"node {victim} back in the ISR of every partition, leaders unchanged")
        print(f"follower {victim} back in every ISR {time.monotonic() - restarted_at:.1f}s after its restart")
        # The same, as a client library describes it.
        assert isr_by_admin_client(c.bootstrap, topic) == {p: {1, 2, 3} for p in PARTITIONS}
        load.wait_progress(500, 60, "after the restart")
        unflushed = load.stop()

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} deliveries failed, e.g. {ledger.failed[:3]}"
    wait_in_sync(c, topic, PARTITIONS, {1, 2, 3})
    check(c, topic, PARTITIONS, ledger)
