"""A network partition cuts a partition's leader off from the other two nodes (each node in its own
network namespace, routed through this one; the cut drops their packets both ways) while clients still
reach all three, the cut-off leader included.

What must hold: the cut-off leader acknowledges no acks=all write (it cannot reach min.insync.replicas=2
without its followers, nor shrink its ISR without the controller), so a Produce sent straight to it is
refused or times out, however long it still believes it leads; the majority side elects a new leader
from the ISR and the idempotent producer carries on there; healed, the old leader rejoins as a follower,
truncates the records it appended alone, and returns to the ISR. The checker proves every acknowledged
message is there once, in order, on every replica, and that the records sent to the cut-off leader are
gone from every replica, its own log included."""

from __future__ import annotations

import time

import kwire
from replicated_load import (REPLICATED_CLUSTER, AckLedger, LoadProducer, check, create_replicated_topic,
                             encode_value, partition_states, raw_produce, segment_records, wait_in_sync,
                             wait_partitions)

PARTITIONS = [0, 1, 2]
# The controller fences the cut-off broker after the session timeout (4 s) and elects at once; if it was also
# the active controller, a new one is elected first (controller.quorum.fetch.timeout.ms, 2 s on Kafka).
NEW_LEADER_WITHIN_S = 30
PROBE_TIMEOUT_MS = 3000


def probe(c, node_id: int, topic: str, partition: int, n: int) -> tuple[bytes, str]:
    """An acks=all write sent to node `node_id` alone; returns its value and what the node answered, and
    fails the test at once if it was acknowledged."""
    value = encode_value("cutoff", partition, n)
    answer = raw_produce(c.node(node_id), topic, partition, value, acks=-1, timeout_ms=PROBE_TIMEOUT_MS)
    said = "no answer" if answer is None else kwire.error_name(answer.error_code)
    assert answer is None or answer.error_code != 0, (
        f"node {node_id}, cut off from the other nodes, acknowledged an acks=all write to partition "
        f"{partition} at offset {answer.base_offset}")
    return value, said


def test_partition_isolating_a_leader(cluster_factory, trial):
    c = cluster_factory(netns=True, **REPLICATED_CLUSTER)
    topic = create_replicated_topic(c, len(PARTITIONS))
    ledger = AckLedger()
    never_acked: list[bytes] = []
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load:
        load.wait_progress(1000, 60, "before the partition")

        before = partition_states(c.node(1), topic)
        victim = before[0].leader
        led = [p for p in PARTITIONS if before[p].leader == victim]
        others = [n for n in c.nodes if n.node_id != victim]
        c.partition(victim)
        cut_at = time.monotonic()

        # While it still believes it leads, the cut-off leader appends what it is sent and acknowledges none of it.
        value, said = probe(c, victim, topic, led[0], 0)
        never_acked.append(value)
        # Whether it appended the write (Kafka does, then waits for followers that never come) is its own
        # business; if it did, the checker proves it truncated it after healing.
        appended = value in segment_records(c.node(victim).partition_dir(topic, led[0])).values()
        print(f"node {victim} cut off; an acks=all write sent to it for partition {led[0]}: {said} "
              f"({'appended to' if appended else 'not in'} its own log)")

        # The majority side elects a new leader from the ISR, with a higher epoch.
        after = wait_partitions(
            others, topic, led,
            lambda p, s: s.leader in set(before[p].isr) - {victim} and s.leader_epoch > before[p].leader_epoch,
            NEW_LEADER_WITHIN_S, f"a new leader on the majority side for partitions {led}")
        print(f"new leaders {({p: after[p].leader for p in led})} listed by the majority "
              f"{time.monotonic() - cut_at:.1f}s after the cut")

        # The old leader still does not acknowledge, however its view of itself has aged.
        for n, p in enumerate(led, start=1):
            value, said = probe(c, victim, topic, p, n)
            never_acked.append(value)
            print(f"after the election, an acks=all write sent to node {victim} for partition {p}: {said}")

        took = load.wait_progress(500, 90, "on the majority side")
        print(f"every partition acknowledged 500 more messages {took:.1f}s after the probes")

        c.heal()
        healed_at = time.monotonic()
        wait_in_sync(c, topic, PARTITIONS, {1, 2, 3}, timeout=90)
        print(f"node {victim} back in the ISR of every partition {time.monotonic() - healed_at:.1f}s after healing")
        load.wait_progress(500, 60, "after healing")
        unflushed = load.stop()

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} deliveries failed, e.g. {ledger.failed[:3]}"
    check(c, topic, PARTITIONS, ledger, absent=never_acked)
