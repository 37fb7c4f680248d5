"""kill -9 of a partition's leader under an idempotent acks=all load: a survivor from the ISR takes over
within seconds, the producer rides through without a failed or duplicated message, and the killed node,
restarted, catches up and rejoins the ISR of every partition. The checker then proves every acknowledged
message is there once, in order, on every replica."""

from __future__ import annotations

import time

from replicated_load import (REPLICATED_CLUSTER, AckLedger, LoadProducer, check, create_replicated_topic,
                             partition_states, wait_in_sync, wait_partitions)

PARTITIONS = [0, 1, 2]
# Fencing takes the session timeout (4 s) after the last heartbeat; the election follows at once.
NEW_LEADER_WITHIN_S = 20


def test_kill9_of_a_partition_leader(cluster_factory, trial):
    c = cluster_factory(**REPLICATED_CLUSTER)
    topic = create_replicated_topic(c, len(PARTITIONS))
    ledger = AckLedger()
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load:
        load.wait_progress(1000, 60, "before the kill")

        before = partition_states(c.node(1), topic)
        victim = before[0].leader
        in_sync = set(before[0].isr)
        led_by_victim = [p for p in PARTITIONS if before[p].leader == victim]
        c.node(victim).kill9()
        killed_at = time.monotonic()
        survivors = c.live_brokers()

        # A new leader for each partition the victim led, from the ISR it had, with a higher leader epoch.
        after = wait_partitions(
            survivors, topic, led_by_victim,
            lambda p, s: s.leader in in_sync - {victim} and s.leader_epoch > before[p].leader_epoch,
            NEW_LEADER_WITHIN_S, f"a new leader among the survivors for partitions {led_by_victim} led by node {victim}")
        print(f"leader {victim} of partitions {led_by_victim} killed; new leaders "
              f"{ {p: after[p].leader for p in led_by_victim} } listed {time.monotonic() - killed_at:.1f}s later")
        assert all(victim not in after[p].isr for p in led_by_victim), after

        took = load.wait_progress(500, 60, "after the kill")
        print(f"every partition acknowledged 500 more messages {took:.1f}s after the new leaders were listed")

        restarted_at = time.monotonic()
        c.start([victim])
        wait_in_sync(c, topic, PARTITIONS, {1, 2, 3}, timeout=60)
        print(f"node {victim} back in the ISR of every partition {time.monotonic() - restarted_at:.1f}s after its restart")
        load.wait_progress(500, 60, "after the restart")
        unflushed = load.stop()

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} deliveries failed across the failover, e.g. {ledger.failed[:3]}"
    check(c, topic, PARTITIONS, ledger)
