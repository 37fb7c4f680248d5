"""A confluent-kafka consumer group of 3 over 6 partitions: each member gets 2; when one leaves, the
other two take over all 6 after the rebalance and consume everything."""

import threading

from confluent_kafka import Consumer, KafkaError

from clients import create_topic, produce, unique, wait_until

PARTITIONS = 6


class Member:
    """A group member polling on its own thread and recording assignments and messages."""

    def __init__(self, bootstrap, group, topic, name):
        self.name = name
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 200,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "range",
            }
        )
        self.lock = threading.Lock()
        self.assignment: set[int] = set()
        self.messages: list[tuple[int, int, bytes]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _on_assign(self, consumer, partitions):
        with self.lock:
            self.assignment = {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        with self.lock:
            self.assignment = set()

    def _run(self):
        while not self.stopping.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(msg.error()))
                continue
            with self.lock:
                self.messages.append((msg.partition(), msg.offset(), msg.value()))
        self.consumer.close()  # commits the final offsets and leaves the group

    def current_assignment(self) -> set[int]:
        with self.lock:
            return set(self.assignment)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), f"{self.name} did not close within 30s"


def test_group_splits_partitions_and_rebalances_when_member_leaves(broker):
    topic = unique("group")
    group = unique("group-g")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    first = [(None, f"a-{i}".encode(), i % PARTITIONS) for i in range(600)]
    produce(broker.bootstrap, topic, first)

    members = [Member(broker.bootstrap, group, topic, f"member-{i}") for i in range(3)]
    try:

        def split_evenly():
            sets = [m.current_assignment() for m in members]
            return all(len(s) == 2 for s in sets) and set().union(*sets) == set(range(PARTITIONS))

        wait_until(split_evenly, 60, "3 members to hold 2 partitions each")

        def consumed(ms, prefix):
            values = set()
            for m in ms:
                with m.lock:
                    values.update(v for _, _, v in m.messages if v.startswith(prefix))
            return values

        want_first = {v for _, v, _ in first}
        wait_until(lambda: consumed(members, b"a-") >= want_first, 60, "the first 600 messages to be consumed")

        leaver = members.pop()
        leaver.stop()

        def two_hold_all():
            sets = [m.current_assignment() for m in members]
            return all(len(s) == 3 for s in sets) and set().union(*sets) == set(range(PARTITIONS))

        wait_until(two_hold_all, 60, "the 2 remaining members to take over all 6 partitions")

        second = [(None, f"b-{i}".encode(), i % PARTITIONS) for i in range(600)]
        produce(broker.bootstrap, topic, second)
        want_second = {v for _, v, _ in second}
        wait_until(lambda: consumed(members, b"b-") >= want_second, 60, "the remaining members to consume the rest")

        # After the rebalance each remaining member read the new messages from its own 3 partitions.
        for m in members:
            with m.lock:
                parts = {p for p, _, v in m.messages if v.startswith(b"b-")}
            assert parts == m.current_assignment()
        for m in members + [leaver]:
            assert not m.errors, f"{m.name}: {m.errors}"
    finally:
        for m in members:
            m.stop()
