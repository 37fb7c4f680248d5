"""`min.insync.replicas`: with replication factor 3 and min.insync.replicas=2, and two of the three
replicas' brokers gone (one stopped, one killed), the ISR is the leader alone. acks=all is refused with
NOT_ENOUGH_REPLICAS (retriable, and nothing is appended: the idempotent load stalls rather than losing or
duplicating anything), while acks=1 is still accepted. With both brokers back in the ISR, acks=all is
accepted again and the stalled load goes on. The checker then proves every acknowledged message, the
acks=1 ones included, is there once, in order, on every replica.

Two of three combined nodes down would take the controller quorum's majority with them, so this cluster
runs the controller beside the brokers: node 1 `process.roles=controller`, brokers 2-4."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError

import kwire
from replicated_load import (REPLICATED_CLUSTER, AckLedger, LoadProducer, check, create_replicated_topic,
                             encode_value, partition_states, produce_once, raw_produce, wait_in_sync,
                             wait_partitions)

PARTITIONS = [0, 1, 2]
NOT_ENOUGH_REPLICAS = 19
# A killed broker leaves the ISR once fenced: session timeout (4 s) after its last heartbeat.
ISR_SHRINK_WITHIN_S = 25
# Refused writes are not retried by this producer, so its one answer is the broker's.
NO_RETRIES = {"acks": "all", "enable.idempotence": False, "retries": 0, "message.timeout.ms": 15000}


def test_min_insync_replicas_refuses_acks_all_while_the_isr_is_too_small(cluster_factory, trial):
    c = cluster_factory(size=1, brokers=3, **REPLICATED_CLUSTER)
    brokers = {n.node_id for n in c.brokers}
    topic = create_replicated_topic(c, len(PARTITIONS), min_isr=2)
    ledger = AckLedger()
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load:
        load.wait_progress(1000, 60, "with every replica in sync")

        keep = c.node(partition_states(c.brokers[0], topic)[0].leader)
        stopped, killed = (c.node(i) for i in sorted(brokers - {keep.node_id}))
        stopped.stop()
        killed.kill9()
        wait_partitions([keep], topic, PARTITIONS, lambda p, s: s.leader == keep.node_id and s.isr == [keep.node_id],
                        ISR_SHRINK_WITHIN_S, f"node {keep.node_id} to lead every partition with an ISR of itself alone")
        print(f"brokers {stopped.node_id} (SIGTERM) and {killed.node_id} (kill -9) down; ISR = [{keep.node_id}]")

        # acks=all refused: raw, with the exact error code, on every partition...
        for p in PARTITIONS:
            answer = raw_produce(keep, topic, p, encode_value("refused", p, 0), acks=-1)
            assert answer is not None and answer.error_code == NOT_ENOUGH_REPLICAS, (
                f"acks=all to partition {p} with ISR [{keep.node_id}] answered "
                f"{'nothing' if answer is None else kwire.error_name(answer.error_code)}, not NOT_ENOUGH_REPLICAS")
        # ...and as librdkafka reports it to a producer that does not retry. (The error is retriable in the
        # protocol; the Python error object of a delivery report does not carry that flag. The load below, which
        # does retry, shows it: it stalls, then goes on without a failed delivery.)
        err, _ = produce_once(keep.bootstrap, topic, 0, encode_value("refused", 0, 1), NO_RETRIES)
        assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
        # The idempotent acks=all load stalls: nothing acknowledged while the ISR is too small.
        time.sleep(1)
        stalled_at = load.acked()
        time.sleep(3)
        assert load.acked() == stalled_at, f"{load.acked() - stalled_at} acks=all messages acknowledged with ISR [{keep.node_id}]"

        # acks=1 still accepted, through a client and raw; both must survive (they are in the ledger).
        for p in PARTITIONS:
            value = encode_value("acks1", p, 0)
            err, offset = produce_once(keep.bootstrap, topic, p, value, {"acks": 1, "enable.idempotence": False})
            assert err is None, f"acks=1 to partition {p} with ISR [{keep.node_id}]: {err}"
            ledger.ack(value, p, offset)
            value = encode_value("acks1raw", p, 0)
            answer = raw_produce(keep, topic, p, value, acks=1)
            assert answer is not None and answer.error_code == 0, f"raw acks=1 to partition {p}: {answer}"
            ledger.ack(value, p, answer.base_offset)

        c.start([stopped.node_id, killed.node_id])
        wait_in_sync(c, topic, PARTITIONS, brokers, timeout=90)
        # acks=all accepted again: the stalled load resumes, a fresh producer and a raw request succeed.
        load.wait_progress(500, 60, "with the ISR whole again")
        for p in PARTITIONS:
            value = encode_value("accepted", p, 0)
            err, offset = produce_once(keep.bootstrap, topic, p, value, NO_RETRIES)
            assert err is None, f"acks=all to partition {p} with every replica in sync: {err}"
            ledger.ack(value, p, offset)
            value = encode_value("acceptedraw", p, 0)
            answer = raw_produce(keep, topic, p, value, acks=-1)
            assert answer is not None and answer.error_code == 0, f"raw acks=all to partition {p}: {answer}"
            ledger.ack(value, p, answer.base_offset)
        unflushed = load.stop()

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} load deliveries failed, e.g. {ledger.failed[:3]}"
    refused = [encode_value("refused", p, 0) for p in PARTITIONS] + [encode_value("refused", 0, 1)]
    check(c, topic, PARTITIONS, ledger, absent=refused)
