"""Helpers around the real clients (confluent-kafka, kafka-python, the Java client, kcat).

Every wait here is bounded; a helper that runs out of time raises with what it saw so far.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import CACHE_DIR, run_kafka_tool

JAVA_CLIENT_JAR = Path(CACHE_DIR / "java-client" / "e2e-java-client.jar")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- confluent-kafka ------------------------------------------------------------------------------


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
    """Create a topic and wait until every partition has a leader in the metadata."""
    a = admin(bootstrap)
    futures = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(timeout=30)

    def ready():
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        return (
            t is not None
            and t.error is None
            and len(t.partitions) == partitions
            and all(p.leader >= 0 for p in t.partitions.values())
        )

    wait_until(ready, 30, f"topic {name} to have {partitions} led partitions")


@dataclass
class Delivered:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple],
    conf: dict | None = None,
    timeout: float = 60,
) -> list[Delivered]:
    """Produce (key, value[, partition[, timestamp_ms]]) tuples; returns the delivery reports in
    the order the messages were given. Raises if any message failed."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **(conf or {})})
    # librdkafka parks messages for a topic whose metadata it has not seen yet in an "unassigned"
    # queue and may interleave them out of order with later ones once metadata arrives: learn the
    # partitions first so per-key order is the broker's doing alone.
    md = p.list_topics(topic, timeout=10)
    assert md.topics[topic].error is None, md.topics[topic].error
    reports: list[Delivered | None] = [None] * len(messages)
    errors: list[str] = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append(f"message {i}: {err}")
            else:
                reports[i] = Delivered(msg.partition(), msg.offset(), msg.key(), msg.value())

        return cb

    for i, m in enumerate(messages):
        kwargs = {"key": m[0], "value": m[1], "on_delivery": on_delivery(i)}
        if len(m) > 2 and m[2] is not None:
            kwargs["partition"] = m[2]
        if len(m) > 3 and m[3] is not None:
            kwargs["timestamp"] = m[3]
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    assert not errors, f"delivery failures: {errors[:5]} (total {len(errors)})"
    assert all(r is not None for r in reports)
    return reports  # type: ignore[return-value]


@dataclass
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def read_partitions(
    bootstrap: str,
    topic: str,
    partitions: list[int],
    start_offsets: dict[int, int] | None = None,
    timeout: float = 60,
    conf: dict | None = None,
) -> list[Consumed]:
    """Read the given partitions from their start (or `start_offsets`) to their high watermark as it
    is when called, with an assigned (group-less) confluent-kafka consumer."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            **(conf or {}),
        }
    )
    try:
        ends = {}
        for p in partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        starts = {p: (start_offsets or {}).get(p, 0) for p in partitions}
        pending = {p for p in partitions if ends[p] > starts[p]}
        if not pending:
            return []
        c.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read_partitions: partitions {sorted(pending)} not read to {ends} in {timeout}s")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends[msg.partition()]:
                        pending.discard(msg.partition())
                    continue
                raise KafkaException(msg.error())
            ts = msg.timestamp()[1]
            out.append(Consumed(msg.partition(), msg.offset(), msg.key(), msg.value(), ts))
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
        return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


# -- the Java client ------------------------------------------------------------------------------


def java(*args: str, stdin: str | None = None, timeout: float = 100) -> tuple[int, list[dict], str]:
    """Run the e2e Java client; returns (exit status, JSON lines from stdout, stderr)."""
    if not JAVA_CLIENT_JAR.is_file():
        raise FileNotFoundError(f"{JAVA_CLIENT_JAR} missing (run scripts/install-e2e)")
    proc = subprocess.run(
        ["java", "-Xmx512m", "-jar", str(JAVA_CLIENT_JAR), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines, proc.stderr[-4000:]


# -- Apache Kafka's command-line tools ------------------------------------------------------------


def kafka_configs(bootstrap: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`kafka-configs --bootstrap-server BOOTSTRAP ARGS`, Kafka's own tool from the jars the harness resolves
    (for either peer); the finished process whatever its exit status, stdout and stderr as text."""
    return run_kafka_tool("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", bootstrap, *args,
                          timeout=timeout)


# -- on-disk record batches -----------------------------------------------------------------------

COMPRESSION_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass
class StoredBatch:
    base: int
    count: int
    codec: int
    producer_id: int
    epoch: int
    base_sequence: int


def stored_batches(path: Path) -> list[StoredBatch]:
    """The header of each record batch in a .log segment file.

    The segment holds record batches exactly as on the wire (v2 format): baseOffset i64,
    batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32, attributes i16, ..., producerId
    i64 at byte 43, producerEpoch i16 at 51, baseSequence i32 at 53 and the record count i32 at 57.
    """
    data = path.read_bytes()
    out = []
    pos = 0

    def field(at: int, size: int) -> int:
        return int.from_bytes(data[pos + at : pos + at + size], "big", signed=True)

    while pos + 61 <= len(data):
        length = field(8, 4)
        if length <= 0:
            break  # preallocated zeroes at the end of an active segment
        magic = data[pos + 16]
        assert magic == 2, f"{path}: batch at byte {pos} has magic {magic}"
        out.append(
            StoredBatch(
                base=field(0, 8),
                count=field(57, 4),
                codec=field(21, 2) & 0x7,
                producer_id=field(43, 8),
                epoch=field(51, 2),
                base_sequence=field(53, 4),
            )
        )
        pos += 12 + length
    return out


def batches_in_log(path: Path) -> list[tuple[int, int, int]]:
    """(base offset, record count, compression codec) of each record batch in a .log segment file."""
    return [(b.base, b.count, b.codec) for b in stored_batches(path)]


# -- kafka-python ---------------------------------------------------------------------------------


def kp_read(bootstrap: str, topic: str, partition: int, count: int, timeout: float = 60, **config) -> list[Consumed]:
    """Read `count` records from the start of one partition with kafka-python (assigned, no group)."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KPTopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                      **config)
    try:
        tp = KPTopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka-python read {len(out)} of {count} records from {topic}-{partition}")
            for records in c.poll(timeout_ms=500).values():
                out.extend(Consumed(r.partition, r.offset, r.key, r.value, r.timestamp) for r in records)
        return out
    finally:
        c.close()


def kp_produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], **config) -> list[tuple[int, int]]:
    """Produce (key, value) pairs with kafka-python; returns (partition, offset) per message."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, **config)
    try:
        futures = [p.send(topic, key=k, value=v) for k, v in messages]
        p.flush(timeout=60)
        return [(md.partition, md.offset) for md in (f.get(timeout=30) for f in futures)]
    finally:
        p.close(timeout=10)
