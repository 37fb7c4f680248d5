"""A rolling restart of every node under an idempotent acks=all load, the way an operator upgrades a
cluster: SIGTERM one node, restart it, wait until it is back in the ISR of every partition, then the next.
Each stopped node hands its leaderships over on the way out (the survivors lead every partition while it
is down), acks=all goes on with two in-sync replicas, and the producer never sees a failed delivery. The
checker then proves every acknowledged message is there once, in order, on every replica."""

from __future__ import annotations

import time

from replicated_load import (REPLICATED_CLUSTER, AckLedger, LoadProducer, check, create_replicated_topic,
                             wait_in_sync, wait_partitions)

PARTITIONS = [0, 1, 2]
BACK_IN_SYNC_WITHIN_S = 90


def test_rolling_restart_of_every_node(cluster_factory, trial):
    c = cluster_factory(**REPLICATED_CLUSTER)
    topic = create_replicated_topic(c, len(PARTITIONS))
    ledger = AckLedger()
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load:
        load.wait_progress(1000, 60, "before the first restart")
        for node in c.nodes:
            i = node.node_id
            began = time.monotonic()
            node.stop()  # SIGTERM; the harness fails the test if it is still running 45 s later
            stopped = time.monotonic() - began
            others = [n for n in c.nodes if n.node_id != i]
            wait_partitions(others, topic, PARTITIONS, lambda p, s: s.leader not in (i, -1) and i not in s.isr, 20,
                            f"the others to lead every partition, without node {i} in any ISR")
            load.wait_progress(300, 30, f"with node {i} stopped")

            c.start([i])
            wait_in_sync(c, topic, PARTITIONS, {1, 2, 3}, timeout=BACK_IN_SYNC_WITHIN_S)
            print(f"node {i}: exited {stopped:.1f}s after SIGTERM, back in every ISR "
                  f"{time.monotonic() - began:.1f}s after it")
            load.wait_progress(300, 30, f"after node {i} returned")
        unflushed = load.stop()

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} deliveries failed during the rolling restart, e.g. {ledger.failed[:3]}"
    check(c, topic, PARTITIONS, ledger)
