"""Kafka's own tools move partitions and leadership: `kafka-reassign-partitions` moves a partition to another
broker under an acks=all load, held back by `--throttle` while the new replica catches up and finished once it is
in sync (`--verify` also clears the throttles), and `kafka-leader-election` gives a partition back to its
preferred leader. Every acknowledged message is read back afterwards, from every replica."""

from __future__ import annotations

import json
import time

from confluent_kafka.admin import NewTopic

from cluster_harness import admin, wait_until
from clients import unique
from replicated_load import REPLICATED_CLUSTER, AckLedger, LoadProducer, check, partition_states, wait_in_sync

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
ELECT = "org.apache.kafka.tools.LeaderElectionCommand"
PARTITIONS = [0, 1]


# Followers fetch at most 64 KiB a partition at a time, so a throttle of 10 kB/s holds a replica that must copy
# a few hundred kB back for many seconds on either peer (one unthrottled fetch would otherwise take it all).
CONFIG = {**REPLICATED_CLUSTER["extra_config"], "replica.fetch.max.bytes": 65536}
THROTTLE = "10000"


def test_reassignment_with_a_throttle_and_a_preferred_leader_election(cluster_factory, tmp_path):
    c = cluster_factory(**{**REPLICATED_CLUSTER, "extra_config": CONFIG})
    bootstrap = ["--bootstrap-server", c.node(1).bootstrap]
    topic = unique("moving")
    client = admin(c.bootstrap)
    # Partition 0 on brokers 1 and 2 (1 preferred), partition 1 on 2 and 3; broker 3 has nothing of partition 0.
    client.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1, 2], [2, 3]],
                                   config={"min.insync.replicas": "1"})],
                         request_timeout=30)[topic].result(45)
    wait_until(lambda: all(s.leader >= 0 and len(s.isr) == 2 for s in partition_states(c.node(1), topic).values())
               and len(partition_states(c.node(1), topic)) == 2, 30, "both partitions led and in sync")

    ledger = AckLedger()
    # A few hundred kB land on partition 0 before the move: at the throttle, many seconds of catching up.
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger, rate=2000,
                      conf={"linger.ms": 20, "batch.size": 100_000}) as load:
        load.wait_progress(15_000, 120, "before the move")

        plan = tmp_path / "move.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [3, 2]}]}))
        out = c.kafka_tool(REASSIGN, *bootstrap, "--reassignment-json-file", str(plan), "--execute",
                           "--throttle", THROTTLE)
        assert "Successfully started partition reassignment" in out, out

        # Held back: a few seconds on, broker 3 is still catching up and the move is still listed.
        time.sleep(3)
        listed = c.kafka_tool(REASSIGN, *bootstrap, "--list")
        assert f"{topic}-0" in listed and "adding: 3" in listed, listed
        during = partition_states(c.node(1), topic)[0]
        assert 3 not in during.isr and set(during.replicas) == {1, 2, 3}, during

        # Lifting the throttle (an --execute of the same plan with --additional changes only the rate) lets it
        # finish; --verify then reports it and clears every throttle.
        c.kafka_tool(REASSIGN, *bootstrap, "--reassignment-json-file", str(plan), "--execute", "--additional",
                     "--throttle", "100000000")
        # Bounded requests: a request that stalls fails this --verify with the admin client's own message, and
        # the next one asks again.
        verify = lambda: c.kafka_tool(REASSIGN, *bootstrap, "--command-config", str(c.bounded_tool_config()),
                                      "--reassignment-json-file", str(plan), "--verify")
        done = wait_until(lambda: (lambda o: o if "is completed" in o else None)(verify()), 120,
                          "the reassignment to complete")
        assert f"Reassignment of partition {topic}-0 is completed" in done, done
        moved = wait_in_sync(c, topic, [0], {2, 3})[0]
        assert sorted(moved.replicas) == [2, 3], moved
        assert not c.kafka_tool(REASSIGN, *bootstrap, "--list").count(f"{topic}-0")

        # Leadership away from partition 1's preferred leader (2), then back with the tool.
        c.node(2).kill9()
        wait_until(lambda: partition_states(c.node(1), topic)[1].leader == 3, 30, "broker 3 leading partition 1")
        c.start([2])
        wait_until(lambda: set(partition_states(c.node(1), topic)[1].isr) == {2, 3}, 60, "broker 2 back in sync")
        assert partition_states(c.node(1), topic)[1].leader == 3
        out = c.kafka_tool(ELECT, *bootstrap, "--election-type", "preferred", "--topic", topic, "--partition", "1")
        assert f"Successfully completed leader election (PREFERRED) for partitions {topic}-1" in out, out
        wait_until(lambda: partition_states(c.node(1), topic)[1].leader == 2, 30, "broker 2 leading partition 1 again")
        load.wait_progress(500, 60, "after the election")
        unflushed = load.stop()

    assert unflushed == 0
    assert not ledger.failed, ledger.failed[:3]
    check(c, topic, PARTITIONS, ledger)
