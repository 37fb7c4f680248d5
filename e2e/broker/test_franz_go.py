"""franz-go (github.com/twmb/franz-go), the Go client, unmodified: `e2e/franz` wraps its kgo and kadm
packages in a small program (built into .cache/franz/e2e-franz by scripts/install-e2e). franz-go
negotiates the newest API versions the broker advertises and, by default, produces idempotently
with acks=all and up to 5 requests in flight per broker.

Other clients appear here only to set up or to check what franz-go did."""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from clients import COMPRESSION_CODECS, batches_in_log, create_topic, unique, wait_until
from harness import CACHE_DIR

FRANZ = CACHE_DIR / "franz" / "e2e-franz"
CODECS = ["gzip", "snappy", "lz4", "zstd"]


def franz(*args: str, stdin: str | None = None, timeout: float = 60) -> list[dict]:
    """Run e2e-franz to completion; returns its JSON lines. Fails the test if it fails."""
    if not FRANZ.is_file():
        raise FileNotFoundError(f"{FRANZ} missing (run scripts/install-e2e)")
    proc = subprocess.run([str(FRANZ), *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"e2e-franz {' '.join(args)} exited {proc.returncode}: {proc.stderr[-4000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


class Running:
    """e2e-franz in the background; its JSON lines are collected as they come."""

    def __init__(self, *args: str):
        self.args = args
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([str(FRANZ), *args], stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def assignment(self) -> set[int]:
        """The partitions it owns now, replaying its assigned/revoked/lost lines."""
        owned: set[int] = set()
        for line in list(self.lines):
            owned |= set(line.get("assigned", []))
            owned -= set(line.get("revoked", []) + line.get("lost", []))
        return owned

    def records(self) -> list[dict]:
        return [line for line in list(self.lines) if "o" in line]

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (the consumer commits, leaves its group and exits 0); fails the test otherwise."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"e2e-franz {' '.join(self.args)} ignored SIGTERM for {timeout}s: {self.stderr()}")
        self._reader.join(10)
        assert rc == 0, f"e2e-franz {' '.join(self.args)} exited {rc}: {self.stderr()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def generated_value(i: int, size: int) -> bytes:
    """e2e-franz produce's generated value: "<i>|" then a compressible filler, `size` bytes in all."""
    s = f"{i}|"
    return (s + "".join(chr(ord("a") + n % 26) for n in range(len(s), size))).encode()


def acked(lines: list[dict], count: int) -> dict[int, tuple[int, int]]:
    """record index -> (partition, offset) from e2e-franz produce's output, checked complete."""
    *reports, summary = lines
    assert summary["produced"] == count, summary
    got = {r["i"]: (r["p"], r["o"]) for r in reports}
    assert len(reports) == count and sorted(got) == list(range(count)), "a record was acknowledged twice or not at all"
    return got


def end_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    [listed] = franz("admin", "list-offsets", "-brokers", bootstrap, "-topic", topic)
    return {p["p"]: (p["start"], p["end"]) for p in listed["partitions"]}


# -- idempotent produce ---------------------------------------------------------------------------


def test_franz_idempotent_keyed_produce_reads_back_in_order(broker):
    count, keys, partitions, size = 3000, 40, 4, 200
    topic = unique("franz-idem")
    create_topic(broker.bootstrap, topic, partitions=partitions)
    lines = franz("produce", "-brokers", broker.bootstrap, "-topic", topic, "-count", str(count),
                  "-keys", str(keys), "-value-size", str(size))
    assert lines[-1]["idempotent"] is True and lines[-1]["acks"] == "all"
    where = acked(lines, count)

    # A key always lands on one partition; each partition holds offsets 0..n-1 in send order.
    by_key = defaultdict(set)
    for i, (p, _) in where.items():
        by_key[i % keys].add(p)
    assert all(len(ps) == 1 for ps in by_key.values()), "a key was spread over partitions"
    by_partition = defaultdict(list)
    for i, (p, o) in sorted(where.items()):
        by_partition[p].append(o)
    assert len(by_partition) > 1, "every record went to one partition: keys not hashed"
    for p, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not in send order"

    # Stored exactly once each: the log ends where the acknowledgements say.
    ends = end_offsets(broker.bootstrap, topic)
    assert ends == {p: (0, len(by_partition.get(p, []))) for p in range(partitions)}

    lines = franz("consume", "-brokers", broker.bootstrap, "-topic", topic,
                  "-partitions", ",".join(map(str, range(partitions))), "-count", str(count))
    *records, summary = lines
    assert summary == {"consumed": count}
    at = {(r["p"], r["o"]): r for r in records}
    assert len(at) == count, "a record was read twice"
    for i, (p, o) in where.items():
        r = at[(p, o)]
        assert (unb64(r["k"]), unb64(r["v"])) == (f"k{i % keys}".encode(), generated_value(i, size)), f"record {i}"
    read_order = defaultdict(list)
    for r in records:
        read_order[r["p"]].append(r["o"])
    assert all(offsets == sorted(offsets) for offsets in read_order.values()), "read out of order"


# -- compression, both ways -----------------------------------------------------------------------

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def codec_records(codec: str, count: int = 200) -> list[Record]:
    """Keys, values and headers a codec must carry exactly: binary, compressible, random, empty,
    null, and repeated header names."""
    rnd = random.Random(codec)
    out: list[Record] = []
    for i in range(count):
        key = None if i % 10 == 3 else (bytes([i % 256, 0, 255]) if i % 10 == 7 else f"key-{i}".encode())
        value = [
            rnd.randbytes(1500),
            f"{codec} record {i} ".encode() * 40,
            b"",
            bytes(range(256)) * 3,
        ][i % 4]
        if i % 50 == 9:
            value = None
        headers = [] if i % 5 == 0 else [("seq", str(i).encode()), ("bin", bytes([0, i % 256, 255])), ("seq", b"again")]
        out.append((key, value, headers))
    return out


def assert_stored_compressed(broker, topic: str, codec: str, count: int) -> None:
    """The broker kept the producer's batches as compressed. Both producers send a batch whose
    compressed form would not be smaller (one small record, say) uncompressed, so some batches
    may be; most records must be in `codec` batches."""
    records = Counter()
    for log in sorted(broker.partition_dir(topic, 0).glob("*.log")):
        for _, n, c in batches_in_log(log):
            records[COMPRESSION_CODECS[c]] += n
    assert sum(records.values()) == count
    assert set(records) <= {codec, "none"} and records[codec] >= count // 2, f"records per codec: {records}"


def confluent_read(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Record]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("check"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            assert time.monotonic() < deadline, f"confluent-kafka read {len(out)} of {count} records"
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.key(), msg.value(), list(msg.headers() or [])))
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_franz_produces_compressed_confluent_reads(broker, codec):
    topic = unique(f"franz-{codec}-out")
    create_topic(broker.bootstrap, topic, partitions=1)
    want = codec_records(codec)
    stdin = "".join(
        json.dumps({"k": b64(k), "v": b64(v), "h": [[n, b64(hv)] for n, hv in h]}) + "\n" for k, v, h in want
    )
    lines = franz("produce", "-brokers", broker.bootstrap, "-topic", topic, "-stdin", "-compression", codec,
                  "-linger", "50ms", stdin=stdin)
    where = acked(lines, len(want))
    assert [where[i] for i in range(len(want))] == [(0, i) for i in range(len(want))]
    assert_stored_compressed(broker, topic, codec, len(want))

    assert confluent_read(broker.bootstrap, topic, len(want)) == want


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_produces_compressed_franz_reads(broker, codec):
    topic = unique(f"franz-{codec}-in")
    create_topic(broker.bootstrap, topic, partitions=1)
    want = codec_records(codec)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 50})
    # Metadata first, so no record waits alone for it and goes out in a batch of its own.
    assert p.list_topics(topic, timeout=10).topics[topic].error is None
    errors = []
    for k, v, h in want:
        p.produce(topic, key=k, value=v, headers=h, partition=0,
                  on_delivery=lambda err, _msg: err is not None and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors[:3]
    assert_stored_compressed(broker, topic, codec, len(want))

    *records, summary = franz("consume", "-brokers", broker.bootstrap, "-topic", topic, "-partitions", "0",
                              "-count", str(len(want)))
    assert summary == {"consumed": len(want)}
    assert [r["o"] for r in records] == list(range(len(want)))
    got = [(unb64(r["k"]), unb64(r["v"]), [(n, unb64(hv)) for n, hv in r["h"]]) for r in records]
    assert got == want


# -- consumer group -------------------------------------------------------------------------------


def test_franz_group_consumers_split_partitions_and_resume_from_commits(broker):
    partitions = 4
    topic = unique("franz-group")
    group = unique("franz-g")
    create_topic(broker.bootstrap, topic, partitions=partitions)
    consume = ("consume", "-brokers", broker.bootstrap, "-topic", topic, "-group", group)

    a = Running(*consume, "-timeout", "90s")
    b = None
    try:
        wait_until(lambda: a.assignment() == set(range(partitions)), 30, "the first member to own every partition")
        b = Running(*consume, "-timeout", "90s")

        def split():
            mine, theirs = a.assignment(), b.assignment()
            return mine and theirs and not mine & theirs and mine | theirs == set(range(partitions))

        wait_until(split, 30, "the two members to split the partitions")
        owned = {"a": a.assignment(), "b": b.assignment()}

        first = acked(franz("produce", "-brokers", broker.bootstrap, "-topic", topic, "-count", "400",
                            "-keys", "400"), 400)
        assert {p for p, _ in first.values()} == set(range(partitions))
        wait_until(lambda: len(a.records()) + len(b.records()) >= len(first), 30, "the members to read every record")
        a.stop()
        b.stop()
    finally:
        a.kill()
        if b is not None:
            b.kill()

    for name, member in (("a", a), ("b", b)):
        assert {r["p"] for r in member.records()} <= owned[name], f"{name} read a partition it did not own"
        assert member.lines[-1] == {"consumed": len(member.records())}
    read = Counter((r["p"], r["o"]) for r in a.records() + b.records())
    assert read == Counter(first.values()), "the members did not read each record exactly once"

    # A second run of the group starts where the first committed: only the new records.
    second = acked(franz("produce", "-brokers", broker.bootstrap, "-topic", topic, "-count", "100",
                         "-keys", "100"), 100)
    *lines, summary = franz(*consume, "-count", "100")
    assert summary == {"consumed": 100}
    records = [line for line in lines if "o" in line]
    assert Counter((r["p"], r["o"]) for r in records) == Counter(second.values())

    # Its own commits landed too: the group's offsets are the partitions' ends.
    ends = end_offsets(broker.bootstrap, topic)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        assert {tp.partition: tp.offset for tp in committed} == {p: end for p, (_, end) in ends.items()}
    finally:
        c.close()


# -- kadm topic lifecycle -------------------------------------------------------------------------


def test_franz_kadm_topic_lifecycle(broker):
    topic = unique("franz-kadm")
    admin = ("admin",)
    at = ("-brokers", broker.bootstrap, "-topic", topic)

    [created] = franz(*admin, "create-topic", *at, "-partitions", "2",
                      "-config", "retention.ms=3600000", "-config", "max.message.bytes=2000000")
    assert (created["topic"], created["partitions"], created["replication_factor"]) == (topic, 2, 1)
    assert created["id"] != "AAAAAAAAAAAAAAAAAAAAAA==", "topics need a real (non-zero) id"
    assert created["configs"]["retention.ms"] == "3600000"
    assert created["configs"]["max.message.bytes"] == "2000000"

    def described(n: int):
        [d] = franz(*admin, "describe-topic", *at)
        ok = "error" not in d and len(d["partitions"]) == n and all(p["leader"] >= 0 for p in d["partitions"])
        return d if ok else None

    d = wait_until(lambda: described(2), 30, "2 led partitions in the metadata")
    assert d["id"] == created["id"]
    assert [p["p"] for p in d["partitions"]] == [0, 1]

    def configs():
        [c] = franz(*admin, "describe-configs", *at)
        return c["configs"]

    cfg = configs()
    assert cfg["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG", "sensitive": False}
    assert cfg["max.message.bytes"]["value"] == "2000000"
    assert cfg["segment.bytes"]["source"] != "DYNAMIC_TOPIC_CONFIG"

    [altered] = franz(*admin, "alter-configs", *at, "-set", "retention.ms=7200000", "-delete", "max.message.bytes")
    assert altered["altered"] == ["max.message.bytes", "retention.ms"]

    def altered_seen():
        c = configs()
        return (c["retention.ms"]["value"] == "7200000" and c["max.message.bytes"]["source"] != "DYNAMIC_TOPIC_CONFIG"
                and c)

    cfg = wait_until(altered_seen, 30, "the altered configs")
    assert cfg["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["max.message.bytes"]["value"] == "1048588", "a deleted topic config falls back to the default"

    [added] = franz(*admin, "add-partitions", *at, "-count", "2")
    assert added["added"] == 2
    d = wait_until(lambda: described(4), 30, "4 led partitions in the metadata")
    assert d["id"] == created["id"]

    assert end_offsets(broker.bootstrap, topic) == {p: (0, 0) for p in range(4)}
    where = acked(franz("produce", *at, "-count", "400", "-keys", "400"), 400)
    per_partition = Counter(p for p, _ in where.values())
    assert set(per_partition) == {0, 1, 2, 3}, "the new partitions got no records"
    assert end_offsets(broker.bootstrap, topic) == {p: (0, per_partition[p]) for p in range(4)}

    [deleted] = franz(*admin, "delete-topic", *at)
    assert deleted == {"topic": topic, "deleted": True}

    def gone():
        [d] = franz(*admin, "describe-topic", *at)
        return d.get("error") == "UNKNOWN_TOPIC_OR_PARTITION"

    wait_until(gone, 30, "the topic to be gone from the metadata")
