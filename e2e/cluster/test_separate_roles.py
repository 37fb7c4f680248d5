"""Three controllers beside three brokers (`process.roles=controller` and `process.roles=broker`): the
brokers follow the controllers' log without voting (observers), and the cluster survives kill -9 of the
active controller, of a follower controller and of a broker, each restarted after. Every acknowledged
message is read back at the end."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from clients import unique
from cluster_harness import create_topic_via, metadata, wait_listed, wait_until

NEW_LEADER_WITHIN_S = 15


def produce(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """Produces `values` with acks=all; answers the values the broker acknowledged."""
    acked: list[bytes] = []
    failed: list[str] = []

    def report(err, msg):
        if err is None:
            acked.append(msg.value())
        else:
            failed.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 30000})
    for v in values:
        p.produce(topic, v, on_delivery=report)
    p.flush(40)
    assert not failed, f"deliveries failed: {failed[:3]}"
    return acked


def consume_all(bootstrap: str, topic: str, want: int, timeout: float = 40.0) -> list[bytes]:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("reader"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


def observers(c, via) -> set[int]:
    return {int(r["NodeId"]) for r in c.replication(via=via) if r["Status"] == "Observer"}


def test_three_controllers_beside_three_brokers(cluster_factory):
    c = cluster_factory(size=3, brokers=3)
    controllers = {n.node_id for n in c.controllers}
    brokers = c.brokers
    broker_ids = {n.node_id for n in brokers}
    assert controllers == {1, 2, 3} and broker_ids == {4, 5, 6}

    # Only brokers are listed to clients; the tool sees three voters and the brokers as observers.
    for b in brokers:
        assert set(metadata(b.bootstrap).brokers) == broker_ids
    status = c.quorum_status(via=brokers[0])
    assert int(status["LeaderId"]) in controllers, status
    rows = {int(r["NodeId"]): r["Status"] for r in c.replication(via=brokers[1])}
    assert {i for i, s in rows.items() if s in ("Leader", "Follower")} == controllers, rows
    wait_until(lambda: observers(c, brokers[2]) == broker_ids, 20, f"brokers {sorted(broker_ids)} as observers")

    # A topic created through one broker is seen by every broker; produced through one, read through another.
    topic = unique("roles")
    create_topic_via(brokers[0], topic, partitions=3)
    wait_listed(brokers, {topic: 3}, led=True)
    acked = produce(brokers[1].bootstrap, topic, [f"before-{i}".encode() for i in range(300)])

    # kill -9 of the active controller: a new one among the other two, and admin works through a broker.
    old = c.leader_id(via=brokers[0])
    c.node(old).kill9()
    killed_at = time.monotonic()
    others = controllers - {old}
    new = wait_until(lambda: (lambda l: l if l in others else None)(c.leader_id(via=brokers[1])),
                     NEW_LEADER_WITHIN_S, f"a new active controller among {sorted(others)}")
    print(f"controller {old} killed; brokers report leader {new} after {time.monotonic() - killed_at:.1f}s")
    after_leader = unique("after-leader")
    create_topic_via(brokers[2], after_leader)
    wait_listed(brokers, {topic: 3, after_leader: 1})
    acked += produce(brokers[0].bootstrap, topic, [f"no-leader-{i}".encode() for i in range(100)])
    c.start([old])

    # kill -9 of a follower controller: nothing changes for clients.
    leader = c.leader_id(via=brokers[0])
    follower = next(i for i in controllers if i != leader)
    c.node(follower).kill9()
    after_follower = unique("after-follower")
    create_topic_via(brokers[1], after_follower)
    wait_listed(brokers, {topic: 3, after_leader: 1, after_follower: 1})
    c.start([follower])

    def caught_up(node_id: int, status: str):
        rows = {int(r["NodeId"]): r for r in c.replication(via=brokers[0])}
        row = rows.get(node_id)
        return row is not None and row["Status"] == status and int(row["Lag"]) == 0

    for i in (old, follower):
        wait_until(lambda: caught_up(i, "Follower"), 30, f"controller {i} to follow with lag 0")

    # kill -9 of a broker: fenced out of Metadata, then back, caught up, after a restart.
    victim = brokers[2]
    victim.kill9()
    survivors = [b for b in brokers if b is not victim]
    for b in survivors:
        wait_until(lambda: victim.node_id not in metadata(b.bootstrap).brokers,
                   c.session_timeout_ms / 1000 + 8, f"broker {b.node_id} to stop listing {victim.node_id}")
    while_down = unique("while-down")
    create_topic_via(survivors[0], while_down)
    c.start([victim.node_id])
    want = {topic: 3, after_leader: 1, after_follower: 1, while_down: 1}
    wait_listed(brokers, want)
    wait_until(lambda: caught_up(victim.node_id, "Observer"), 30, f"broker {victim.node_id} to observe with lag 0")

    # Every acknowledged message is there, read through a broker that produced none of them.
    got = consume_all(brokers[2].bootstrap, topic, len(acked))
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
