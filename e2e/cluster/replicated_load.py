"""The load and the checker every fault test of replicated partitions shares (test_replication_*.py).

The load: `LoadProducer`, a confluent-kafka (librdkafka) producer with `enable.idempotence=True` and
`acks=all`, in a background thread, sending at a steady rate round-robin to explicit partitions. Each value
names its stream, partition and a sequence number counted per partition (`load/2/000000041`), so the
order of a partition is known from the values alone. The delivery callback is the only source of truth
for "acknowledged": an `AckLedger` keeps every message reported delivered (with the offset the report
gave) and every one reported failed.

The checker: `check()` reads every partition from its earliest offset to its high watermark with a fresh
group-less consumer and proves that every acknowledged message is there exactly once, at the offset it
was acknowledged with, in the order produced per partition; that no value is stored twice at all (the
producers are idempotent); and that values the test knows were never acknowledged by a correct cluster
(`absent`, e.g. a write sent to a leader cut off from its followers) are nowhere. Then it reads each
replica's own log segments from its data directory (the on-disk layout is Kafka's, on both peers) and
waits until every replica holds exactly the records the consumer read: a former leader that did not
truncate its divergent suffix, or a follower that never caught up, fails here.

With `E2E_FAULT_REPORT=FILE` (scripts/soak replication) each check appends one JSON line to FILE with the
case, the trial and the counts, before it asserts.

Not reused from e2e/broker: `acked_producer.py` is a separate process that reports through a file and knows
one fixed configuration; `clients.read_partitions` gives up at the first consumer error, which a failover
may well produce. Both served as the model.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import kwire
from clients import unique
from cluster_harness import Cluster, PartitionInfo, admin, metadata, wait_until
from harness import Broker

# The broker configuration of every replication test: replication factor 3 by default and for the offsets
# topic (few partitions: Kafka creates it on first use, and 50 partitions times three replicas is slow on
# two cores), min.insync.replicas=2, no unclean election, and a follower that is behind for 10 s leaves the ISR.
REPLICATED_CONFIG: dict[str, object] = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 3,
    "unclean.leader.election.enable": "false",
    "replica.lag.time.max.ms": 10000,
}

# What every replication test passes to cluster_factory: that configuration, and a whole-cluster stop at the
# end that tolerates Kafka's last node waiting for a controlled shutdown the departed quorum cannot grant
# (Cluster.stop_all; the rolling restart test stops nodes one by one with SIGTERM and fails on any that hangs).
REPLICATED_CLUSTER: dict[str, object] = {"extra_config": REPLICATED_CONFIG, "lenient_stop": True}

# The load's pace: enough to keep every partition busy, little enough that three JVMs on two cores keep
# up and the checker reads it all back in seconds.
LOAD_RATE_PER_S = 1000

# How long librdkafka keeps trying a message: long enough to ride out a failover, a restart, or the
# refusal of a too-small ISR, all bounded far below this by the tests' own waits.
MESSAGE_TIMEOUT_MS = 120_000


def encode_value(stream: str, partition: int, seq: int) -> bytes:
    return f"{stream}/{partition}/{seq:09d}".encode()


_VALUE_RE = re.compile(rb"^([A-Za-z0-9_-]+)/(\d+)/(\d+)$")


def decode_value(value: bytes | None) -> tuple[str, int, int] | None:
    m = _VALUE_RE.match(value or b"")
    return (m.group(1).decode(), int(m.group(2)), int(m.group(3))) if m else None


# -- what the producers were told --------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    stream: str
    partition: int
    seq: int
    offset: int  # as the delivery report gave it; -1 when the report had none
    value: bytes


@dataclass
class AckLedger:
    """Every message a producer was told is written (`acked`) or failed (`failed`), from every stream of a test."""

    acked: list[Ack] = field(default_factory=list)
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, value: bytes, partition: int, offset: int | None) -> None:
        stream, _, seq = decode_value(value) or ("?", partition, -1)
        # librdkafka can report a message delivered without its offset (confluent-kafka gives None; seen once
        # in CI under heavy load): it still must be stored exactly once, only its position is not checked.
        with self.lock:
            self.acked.append(Ack(stream, partition, seq, -1 if offset is None else offset, value))

    def fail(self, value: bytes, error: str) -> None:
        with self.lock:
            self.failed.append((value, error))

    def count(self, stream: str | None = None, partition: int | None = None) -> int:
        with self.lock:
            return sum(1 for a in self.acked
                       if (stream is None or a.stream == stream) and (partition is None or a.partition == partition))


class LoadProducer:
    """An idempotent acks=all producer in a thread, `rate` messages a second round-robin over `partitions`.

    Use as a context manager, or `start()` / `stop()`. `stop()` flushes what is in flight (bounded) and
    returns how many messages were still undelivered then (0 expected)."""

    def __init__(self, bootstrap: str, topic: str, partitions: list[int], ledger: AckLedger | None = None,
                 stream: str = "load", rate: int = LOAD_RATE_PER_S, conf: dict[str, object] | None = None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = list(partitions)
        self.ledger = ledger or AckLedger()
        self.stream = stream
        self.rate = rate
        self.conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "none",  # the checker reads replicas' segments, which it does not decompress
            "linger.ms": 5,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            # Ask a broker that does not answer again soon, and find a moved leader soon.
            "request.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 5000,
            **(conf or {}),
        }
        self.sent: dict[int, int] = {p: 0 for p in self.partitions}
        self.fatal: list[str] = []
        self.unflushed: int | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{stream}-{topic}", daemon=True)

    # -- control ---------------------------------------------------------------------------------------

    def start(self) -> "LoadProducer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 90.0) -> int:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"load producer did not flush and stop within {timeout}s")
        if self.error is not None:
            raise RuntimeError(f"load producer thread failed: {self.error!r}") from self.error
        return self.unflushed if self.unflushed is not None else -1

    def __enter__(self) -> "LoadProducer":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive() or not self._stop.is_set():
            try:
                self.stop()
            except Exception:  # noqa: BLE001 - the test's own exception, if any, is the one to see
                if exc[0] is None:
                    raise

    # -- progress --------------------------------------------------------------------------------------

    def acked(self, partition: int | None = None) -> int:
        return self.ledger.count(self.stream, partition)

    def wait_progress(self, more: int, timeout: float, what: str) -> float:
        """Wait until every partition has `more` acknowledgements beyond what it has now; returns the seconds
        it took. Fails early if the producer hit a fatal error or its thread died."""
        start = {p: self.acked(p) for p in self.partitions}
        began = time.monotonic()

        def progressed():
            self._raise_if_broken()
            return all(self.acked(p) >= start[p] + more for p in self.partitions)

        try:
            wait_until(progressed, timeout, f"{more} more acks on every partition {what}")
        except TimeoutError as e:
            now = {p: self.acked(p) - start[p] for p in self.partitions}
            raise TimeoutError(f"{e}; acks gained per partition: {now}; failures so far: {self.ledger.failed[:3]}") from None
        return time.monotonic() - began

    def _raise_if_broken(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"load producer thread failed: {self.error!r}")
        if self.fatal:
            raise RuntimeError(f"load producer hit a fatal error: {self.fatal}")

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as e:  # noqa: BLE001 - reported through stop() / wait_progress()
            self.error = e

    def _produce(self) -> None:
        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self.fatal.append(str(err))

        def on_delivery(err, msg) -> None:
            if err is None:
                self.ledger.ack(msg.value(), msg.partition(), msg.offset())
            else:
                self.ledger.fail(msg.value(), str(err))

        p = Producer({**self.conf, "error_cb": on_error})
        # Learn the partitions before the first message: librdkafka may reorder messages it queued for a
        # topic whose metadata it had not seen yet (see clients.produce).
        md = p.list_topics(self.topic, timeout=20)
        if md.topics[self.topic].error is not None:
            raise RuntimeError(f"load producer: {md.topics[self.topic].error}")
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            if n >= self.rate * (time.monotonic() - started):
                p.poll(0.005)
                continue
            part = self.partitions[n % len(self.partitions)]
            value = encode_value(self.stream, part, self.sent[part])
            try:
                p.produce(self.topic, value=value, partition=part, on_delivery=on_delivery)
            except BufferError:
                p.poll(0.1)
                continue
            self.sent[part] += 1
            n += 1
            p.poll(0)
        self.unflushed = p.flush(60)


def produce_once(bootstrap: str, topic: str, partition: int, value: bytes, conf: dict[str, object],
                 timeout: float = 30.0) -> tuple[KafkaError | None, int]:
    """One message through a fresh confluent-kafka producer; returns (delivery error or None, offset)."""
    result: list[tuple[KafkaError | None, int]] = []
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": "none", **conf})
    p.produce(topic, value=value, partition=partition,
              on_delivery=lambda err, msg: result.append((err, msg.offset() if err is None else -1)))
    left = p.flush(timeout)
    if left or not result:
        raise TimeoutError(f"no delivery report for {value!r} within {timeout}s")
    return result[0]


def raw_produce(node: Broker, topic: str, partition: int, value: bytes, acks: int,
                timeout_ms: int = 5000) -> kwire.PartitionProduceResult | None:
    """One record in a plain (non-idempotent) batch, Produce v8 sent to exactly `node`; its answer for the
    partition, or None when `node` gave none within timeout_ms + 5 s (which acknowledges nothing either)."""
    batch = kwire.record_batch([kwire.Record(value=value)])
    try:
        with kwire.connect(node.bootstrap, timeout=timeout_ms / 1000 + 5) as sock:
            return kwire.produce(sock, topic, {partition: batch}, acks=acks, timeout_ms=timeout_ms)[partition]
    except (OSError, kwire.ProtocolError):
        return None


# -- topics and partition state ----------------------------------------------------------------------------


def create_replicated_topic(c: Cluster, partitions: int, min_isr: int = 2, prefix: str = "replicated",
                            timeout: float = 60.0) -> str:
    """A topic with replication factor 3 and `min.insync.replicas=min_isr`, created through a client that knows
    every broker; returns once every live broker lists each partition led, with all three replicas in sync."""
    name = unique(prefix)
    client = admin(c.bootstrap)  # kept referenced: a collected client fails its futures
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=3, config={"min.insync.replicas": str(min_isr)})],
        request_timeout=30, operation_timeout=30)
    futures[name].result(45)
    ids = {n.node_id for n in c.live_brokers()}
    wait_in_sync(c, name, list(range(partitions)), ids, timeout=timeout)
    return name


def partition_states(node: Broker, topic: str) -> dict[int, PartitionInfo]:
    """Each partition's leader, epoch, replicas and ISR, as `node` alone answers Metadata v12."""
    t = metadata(node.bootstrap).topics.get(topic)
    if t is None or t.error_code != 0:
        return {}
    return t.details


def wait_partitions(nodes: list[Broker], topic: str, partitions: list[int], ok, timeout: float,
                    what: str) -> dict[int, PartitionInfo]:
    """Wait until, in the Metadata of every node in `nodes`, `ok(partition, info)` holds for each partition;
    returns the last node's view."""
    seen: dict[int, dict[int, PartitionInfo]] = {}

    def holds():
        for n in nodes:
            states = partition_states(n, topic)
            seen[n.node_id] = states
            if not all(p in states and ok(p, states[p]) for p in partitions):
                return False
        return True

    try:
        wait_until(holds, timeout, what, interval=0.3)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; partitions as listed: {seen}") from None
    return seen[nodes[-1].node_id]


def wait_in_sync(c: Cluster, topic: str, partitions: list[int], node_ids: set[int], timeout: float = 60.0,
                 via: list[Broker] | None = None) -> dict[int, PartitionInfo]:
    """Wait until every live broker (or `via`) lists every partition led, with exactly `node_ids` in its ISR."""
    return wait_partitions(via or c.live_brokers(), topic, partitions,
                           lambda p, s: s.leader >= 0 and s.error_code == 0 and set(s.isr) == node_ids,
                           timeout, f"{topic} partitions {partitions} led with ISR {sorted(node_ids)}")


# -- reading it all back -------------------------------------------------------------------------------------


def read_to_high_watermark(bootstrap: str, topic: str, partitions: list[int], timeout: float = 90.0
                           ) -> tuple[dict[int, list[tuple[int, bytes]]], dict[int, int], dict[int, int]]:
    """Every record of each partition from its log start offset to its high watermark (as they are when
    called), with a fresh assigned consumer; returns ({partition: [(offset, value)]}, low, high). Errors a
    failover may bring (a leader moving, a broker down) are retried until `timeout`."""
    deadline = time.monotonic() + timeout
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("checker"),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    })
    try:
        low, high = {}, {}
        for p in partitions:
            def marks(p=p):
                return c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
            low[p], high[p] = wait_until(marks, max(1.0, deadline - time.monotonic()), f"watermarks of {topic}-{p}")
        out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in partitions}
        pending = {p for p in partitions if high[p] > low[p]}
        if not pending:
            return out, low, high
        c.assign([TopicPartition(topic, p, low[p]) for p in partitions])
        errors: list[str] = []
        while pending:
            if time.monotonic() > deadline:
                got = {p: len(out[p]) for p in partitions}
                raise TimeoutError(f"checker: {topic} partitions {sorted(pending)} not read to {high} within "
                                   f"{timeout}s (read {got}; errors {errors[-3:]})")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= high[msg.partition()]:
                        pending.discard(msg.partition())
                    continue
                if msg.error().fatal():
                    raise RuntimeError(f"checker consumer: {msg.error()}")
                errors.append(str(msg.error()))
                continue
            p, o = msg.partition(), msg.offset()
            if o < high[p]:
                out[p].append((o, msg.value()))
            if o + 1 >= high[p]:
                pending.discard(p)
        return out, low, high
    finally:
        c.close()


def high_watermarks(bootstrap: str, topic: str, partitions: list[int], timeout: float = 30.0) -> dict[int, int]:
    """Each partition's high watermark, asked of its leader now."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("marks")})
    try:
        return {p: wait_until(lambda p=p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False),
                              timeout, f"watermarks of {topic}-{p}")[1] for p in partitions}
    finally:
        c.close()


def segment_records(partition_dir: Path) -> dict[int, bytes]:
    """offset -> value of every data record in a partition directory's `.log` segments (record batch v2,
    uncompressed; control batches skipped). A batch cut short at the end of a file (being written) ends it."""
    out: dict[int, bytes] = {}
    for seg in sorted(partition_dir.glob("*.log")):
        if not re.fullmatch(r"\d{20}\.log", seg.name):
            continue
        data = seg.read_bytes()
        pos = 0
        while pos + kwire.BATCH_HEADER_SIZE <= len(data):
            base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
            if length <= 0 or pos + 12 + length > len(data):
                break  # preallocated zeroes, or a batch still being written
            attributes = int.from_bytes(data[pos + 21:pos + 23], "big")
            count = int.from_bytes(data[pos + 57:pos + 61], "big", signed=True)
            if attributes & 0x20:  # control batch
                pos += 12 + length
                continue
            if attributes & 0x07:
                raise AssertionError(f"{seg}: compressed batch at byte {pos}; the checker reads uncompressed ones only")
            r = kwire.Reader(data[pos + kwire.BATCH_HEADER_SIZE:pos + 12 + length])
            for _ in range(count):
                _varint(r)  # record length
                r.int8()  # attributes
                _varint(r)  # timestamp delta
                offset_delta = _varint(r)
                key_len = _varint(r)
                if key_len > 0:
                    r.take(key_len)
                value_len = _varint(r)
                value = r.take(value_len) if value_len >= 0 else b""
                for _ in range(_varint(r)):  # headers
                    n = _varint(r)
                    r.take(max(n, 0))
                    n = _varint(r)
                    r.take(max(n, 0))
                out[base + offset_delta] = value
            pos += 12 + length
    return out


def _varint(r: kwire.Reader) -> int:
    u = r.uvarint()
    return (u >> 1) ^ -(u & 1)


# -- the checker ---------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    case: str
    trial: int
    acked: int
    records: int
    lost: int
    duplicated: int
    misplaced: int
    reordered: int
    stored_twice: int
    forbidden: int
    replicas_disagree: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _current_test() -> tuple[str, int]:
    """(test function name, trial number) of the running test, from pytest's PYTEST_CURRENT_TEST."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    name = re.search(r"::(\w+)", current)
    trial = re.search(r"\[trial(\d+)\]", current)
    return (name.group(1) if name else "?"), (int(trial.group(1)) if trial else 1)


def check(c: Cluster, topic: str, partitions: list[int], ledger: AckLedger, *, absent: list[bytes] = (),
          replicas: bool = True, timeout: float = 90.0) -> CheckResult:
    """Prove that every message in `ledger.acked` is in `topic` exactly once, at its acknowledged offset, in
    produced order per partition and stream; that no value is stored twice; that no value in `absent` is
    stored; and (with `replicas`) that each replica's log holds exactly those records. Writes the
    E2E_FAULT_REPORT line (named after the running test and its trial), then asserts. Call it with the load
    stopped and every replica back in the ISR."""
    case, trial = _current_test()
    deadline = time.monotonic() + timeout
    bootstrap = ",".join(n.bootstrap for n in c.live_brokers())
    view, low, high = read_to_high_watermark(bootstrap, topic, partitions, timeout=max(10.0, deadline - time.monotonic()))
    problems: list[str] = []

    where: dict[tuple[int, bytes], list[int]] = defaultdict(list)  # (partition, value) -> offsets
    for p, records in view.items():
        offsets = [o for o, _ in records]
        if offsets != list(range(low[p], high[p])):
            problems.append(f"partition {p}: offsets read are not {low[p]}..{high[p] - 1} "
                            f"(got {len(offsets)}: {offsets[:3]}..{offsets[-3:]})")
        for o, v in records:
            where[(p, v)].append(o)
    with ledger.lock:
        acked = list(ledger.acked)

    lost = [a for a in acked if not where.get((a.partition, a.value))]
    duplicated = [a for a in acked if len(where.get((a.partition, a.value), [])) > 1]
    misplaced = [(a, where[(a.partition, a.value)][0]) for a in acked
                 if len(where.get((a.partition, a.value), [])) == 1 and a.offset >= 0
                 and where[(a.partition, a.value)][0] != a.offset]
    reordered = []
    by_stream: dict[tuple[str, int], list[Ack]] = defaultdict(list)
    for a in acked:
        if len(where.get((a.partition, a.value), [])) == 1:
            by_stream[(a.stream, a.partition)].append(a)
    for (stream, p), acks in by_stream.items():
        acks.sort(key=lambda a: a.seq)
        stored_at = [where[(p, a.value)][0] for a in acks]
        for i in range(1, len(acks)):
            if stored_at[i] <= stored_at[i - 1]:
                reordered.append((acks[i - 1], acks[i]))
    stored_twice = [(p, v, o) for (p, v), o in where.items() if len(o) > 1]
    absent_values = set(absent)
    forbidden = [(p, v, o) for (p, v), o in where.items() if v in absent_values]

    if lost:
        problems.append(f"{len(lost)} of {len(acked)} acknowledged messages lost, e.g. {lost[:3]}")
    if duplicated:
        problems.append(f"{len(duplicated)} acknowledged messages stored more than once, e.g. "
                        f"{[(a, where[(a.partition, a.value)]) for a in duplicated[:3]]}")
    if misplaced:
        problems.append(f"{len(misplaced)} acknowledged messages at another offset than acknowledged, e.g. {misplaced[:3]}")
    if reordered:
        problems.append(f"{len(reordered)} pairs of acknowledged messages stored out of produce order, e.g. {reordered[:2]}")
    if stored_twice:
        problems.append(f"{len(stored_twice)} values stored more than once (idempotence), e.g. {stored_twice[:3]}")
    if forbidden:
        problems.append(f"values that were never acknowledged and must be gone are stored: {forbidden[:3]}")

    disagree: list[str] = []
    if replicas:
        disagree = _wait_replicas_agree(c, topic, partitions, view, set(absent), deadline)
        problems += disagree

    result = CheckResult(case, trial, len(acked), sum(len(r) for r in view.values()), len(lost), len(duplicated),
                         len(misplaced), len(reordered), len(stored_twice), len(forbidden), len(disagree), problems)
    report = os.environ.get("E2E_FAULT_REPORT")
    if report:
        line = {k: v for k, v in result.__dict__.items() if k != "problems"}
        line["problems"] = problems[:5]
        with open(report, "a") as f:
            f.write(json.dumps(line) + "\n")
    print(f"checker [{case} trial {trial}]: {len(acked)} acknowledged, {result.records} records in "
          f"{len(partitions)} partitions up to high watermarks {high}; "
          + ("every acknowledged message there once, in order; replicas agree" if result.ok else f"{len(problems)} problems"))
    assert result.ok, "checker: " + "\n".join(problems)
    return result


def _wait_replicas_agree(c: Cluster, topic: str, partitions: list[int], view: dict[int, list[tuple[int, bytes]]],
                         absent: set[bytes], deadline: float) -> list[str]:
    """Wait (until `deadline`, at least 20 s) until every replica's segments hold exactly `view`; returns what
    still differs then (empty: they agree)."""
    states = partition_states(c.live_brokers()[0], topic)
    want = {p: dict(view[p]) for p in partitions}
    differences: list[str] = []
    deadline = max(deadline, time.monotonic() + 20)
    while True:
        differences = []
        for p in partitions:
            for r in states[p].replicas:
                node = c.node(r)
                stored = segment_records(node.partition_dir(topic, p))
                if stored == want[p]:
                    continue
                extra = sorted(set(stored) - set(want[p]))
                missing = sorted(set(want[p]) - set(stored))
                changed = sorted(o for o in set(stored) & set(want[p]) if stored[o] != want[p][o])
                bad = [o for o, v in stored.items() if v in absent]
                differences.append(
                    f"replica on node {r} of partition {p}: {len(extra)} records beyond what the cluster serves "
                    f"(from offset {extra[:1]}), {len(missing)} missing (from {missing[:1]}), {len(changed)} "
                    f"different (first at {changed[:1]}); never-acknowledged values still stored at {bad[:3]}")
        if not differences or time.monotonic() >= deadline:
            return differences
        time.sleep(1)

