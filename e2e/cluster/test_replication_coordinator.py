"""kill -9 of the broker coordinating a consumer group while the group consumes and commits: the
coordinator moves with the leadership of the group's `__consumer_offsets` partition (replicated with
offsets.topic.replication.factor=3), the group goes on committing through the new coordinator, and no
acknowledged commit is lost: the group's committed offsets afterwards are at least those committed before
the kill, and the consumer never resumes from an offset below an acknowledged commit (re-reading past
the last commit is all at-least-once allows). Every acknowledged message is consumed by the group, and
the checker proves it is stored once, in order, on every replica."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition

from clients import unique
from cluster_harness import find_coordinator, wait_until
from harness import Broker
from replicated_load import (REPLICATED_CLUSTER, REPLICATED_CONFIG, AckLedger, LoadProducer, check,
                             create_replicated_topic, high_watermarks, wait_in_sync)

PARTITIONS = [0, 1, 2]
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = list(range(int(REPLICATED_CONFIG["offsets.topic.num.partitions"])))
COMMIT_EVERY = 100  # records, or half a second, whichever comes first
NEW_COORDINATOR_WITHIN_S = 45


class GroupReader:
    """A confluent-kafka consumer in a group, in a thread: subscribes, consumes, and commits the position it
    reached (asynchronously) every COMMIT_EVERY records or half second. Keeps every record it was given in
    order, the highest offset per partition an acknowledged commit stored, and every rewind (a record at or
    below one already consumed) with the acknowledged commit it had to respect."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        self.topic = topic
        self.group = group
        self.conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 1000,
            "on_commit": self._on_commit,
        }
        self.lock = threading.Lock()
        self.consumed: list[tuple[int, int, bytes]] = []  # (partition, offset, value), as delivered
        self.committed: dict[int, int] = defaultdict(lambda: -1)  # acknowledged commits: highest per partition
        self.commit_failures: list[str] = []
        self.rewinds: list[tuple[int, int, int]] = []  # (partition, resumed at, committed then)
        self.errors: list[str] = []
        self.error: BaseException | None = None
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"group-{group}", daemon=True)

    def __enter__(self) -> "GroupReader":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - the test's own exception, if any, is the one to see
            if exc[0] is None:
                raise

    def stop(self, timeout: float = 40.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"group consumer did not close within {timeout}s")
        if self.error is not None:
            raise RuntimeError(f"group consumer thread failed: {self.error!r}") from self.error

    def commits(self) -> dict[int, int]:
        with self.lock:
            return dict(self.committed)

    def position(self) -> dict[int, int]:
        with self.lock:
            return {p: o + 1 for p, o in self._last.items()}

    def _on_commit(self, err, partitions) -> None:
        with self.lock:
            if err is not None:
                self.commit_failures.append(str(err))
                return
            for tp in partitions:
                if tp.error is None and tp.topic == self.topic and tp.offset >= 0:
                    self.committed[tp.partition] = max(self.committed[tp.partition], tp.offset)
                elif tp.error is not None:
                    self.commit_failures.append(str(tp.error))

    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def _consume(self) -> None:
        c = Consumer(self.conf)
        c.subscribe([self.topic])
        since_commit, last_commit = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None:
                    p, o = msg.partition(), msg.offset()
                    with self.lock:
                        if p in self._last and o <= self._last[p]:
                            self.rewinds.append((p, o, self.committed[p]))
                        self._last[p] = o
                        self.consumed.append((p, o, msg.value()))
                    since_commit += 1
                elif msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(msg.error()))
                if since_commit and (since_commit >= COMMIT_EVERY or time.monotonic() - last_commit > 0.5):
                    offsets = [TopicPartition(self.topic, p, o) for p, o in self.position().items()]
                    try:
                        c.commit(offsets=offsets, asynchronous=True)
                    except Exception as e:  # noqa: BLE001 - e.g. no coordinator yet; the next one retries
                        self.commit_failures.append(repr(e))
                    since_commit, last_commit = 0, time.monotonic()
        finally:
            c.close()


def coordinator_of(nodes: list[Broker], group: str) -> int | None:
    """The coordinator of `group` if every node in `nodes` names the same one (raw FindCoordinator), else None."""
    answers = {find_coordinator(n, group) for n in nodes}
    if len(answers) != 1:
        return None
    (error_code, node_id), = answers
    return node_id if error_code == 0 else None


def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed offsets, as a consumer of that group that never joins it fetches them."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        answer = c.committed([TopicPartition(topic, p) for p in PARTITIONS], timeout=10)
        return {tp.partition: tp.offset for tp in answer if tp.error is None}
    finally:
        c.close()


def test_kill9_of_the_group_coordinator(cluster_factory, trial):
    c = cluster_factory(**REPLICATED_CLUSTER)
    topic = create_replicated_topic(c, len(PARTITIONS))
    group = unique("group")
    ledger = AckLedger()
    with LoadProducer(c.bootstrap, topic, PARTITIONS, ledger) as load, GroupReader(c.bootstrap, topic, group) as reader:
        load.wait_progress(500, 60, "before the kill")
        wait_until(lambda: all(reader.commits().get(p, -1) >= 500 for p in PARTITIONS), 60,
                   "the group to commit 500 records of every partition")
        victim = wait_until(lambda: coordinator_of(c.nodes, group), 10, f"the coordinator of {group}")
        before = reader.commits()
        c.node(victim).kill9()
        killed_at = time.monotonic()
        survivors = c.live_brokers()
        via = ",".join(n.bootstrap for n in survivors)
        survivor_ids = {n.node_id for n in survivors}

        new = wait_until(lambda: (lambda k: k if k in survivor_ids else None)(coordinator_of(survivors, group)),
                         NEW_COORDINATOR_WITHIN_S, f"a new coordinator for {group} among {sorted(survivor_ids)}")
        print(f"coordinator {victim} killed; node {new} coordinates {group} {time.monotonic() - killed_at:.1f}s later")

        # The group commits through the new coordinator, past what it had committed before the kill...
        wait_until(lambda: all(reader.commits().get(p, -1) >= before[p] + 500 for p in PARTITIONS), 60,
                   "the group to commit 500 more records of every partition through the new coordinator")
        print(f"the group committed 500 more records of every partition {time.monotonic() - killed_at:.1f}s after the kill")
        # ...and what the new coordinator holds is at least every commit acknowledged before the kill.
        held = wait_until(lambda: committed_offsets(via, topic, group), 30, f"the committed offsets of {group}")
        assert all(held.get(p, -1) >= before[p] for p in PARTITIONS), (
            f"committed offsets went back: acknowledged before the kill {before}, held after {held}")

        c.start([victim])
        wait_in_sync(c, topic, PARTITIONS, {1, 2, 3})
        wait_in_sync(c, OFFSETS_TOPIC, OFFSETS_PARTITIONS, {1, 2, 3})
        load.wait_progress(200, 60, "after the restart")
        unflushed = load.stop()
        # The group reads everything that was written, to the end, and commits it.
        ends = high_watermarks(c.bootstrap, topic, PARTITIONS)
        wait_until(lambda: all(reader.position().get(p, 0) >= ends[p] for p in PARTITIONS), 60,
                   f"the group to consume up to the high watermarks {ends}")
        wait_until(lambda: all(reader.commits().get(p, -1) >= ends[p] for p in PARTITIONS), 30,
                   f"the group to commit up to the high watermarks {ends}")

    assert unflushed == 0, f"{unflushed} messages still undelivered when the load stopped"
    assert not ledger.failed, f"{len(ledger.failed)} deliveries failed, e.g. {ledger.failed[:3]}"
    # At least once, and no more often than a rewind to an acknowledged commit allows.
    bad = [(p, o, committed) for p, o, committed in reader.rewinds if o < committed]
    assert not bad, f"the group resumed below an acknowledged commit (partition, resumed at, committed): {bad[:5]}"
    seen = {(p, v) for p, _, v in reader.consumed}
    unread = [a for a in ledger.acked if (a.partition, a.value) not in seen]
    assert not unread, f"{len(unread)} acknowledged messages never consumed by the group, e.g. {unread[:3]}"
    print(f"group {group}: {len(reader.consumed)} records consumed, {len(reader.rewinds)} re-read after a rewind, "
          f"{len(reader.commit_failures)} commits failed (e.g. {reader.commit_failures[:2]})")
    check(c, topic, PARTITIONS, ledger)
