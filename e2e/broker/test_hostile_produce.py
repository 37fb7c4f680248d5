"""Hostile Produce requests on raw sockets: record batches that lie about themselves (counts, offset
deltas, lengths, CRC, magic, codec, attributes, timestamps, size). Each case warms up a fresh
partition with one good record, sends the bad batch (Produce v8, acks=1 and acks=-1), then checks:

- the answer for the partition is the error code Apache Kafka 4.4.0 gives (and the record_errors
  batch indexes it gives); the message texts are recorded, not asserted;
- the partition's end offset did not move (or moved by exactly what Kafka appended, for the few
  batches Kafka accepts);
- ListOffsets (latest, earliest, by timestamp 0) still answers, and a good batch produced afterwards
  lands at the end: the broker keeps serving the partition.

Every observation is appended to <log dir>/hostile-produce.jsonl (case, acks, error code and name,
error_message, record_errors, end offsets before and after), the table Sluice is implemented against.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from dataclasses import dataclass
from typing import Callable

import pytest

import kwire
from kwire import Record, record_batch
from clients import create_topic, unique

UNKNOWN_SERVER_ERROR = -1
NONE = 0
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
NOT_LEADER_OR_FOLLOWER = 6
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_TOPIC_EXCEPTION = 17
UNKNOWN_TOPIC_OR_PARTITION = 3

HOUR_MS = 3_600_000
YEAR_MS = 365 * 24 * HOUR_MS
MESSAGE_MAX_BYTES = 1_048_588  # Kafka's default message.max.bytes
ANSWER_TIMEOUT = 30


def recs(n: int, prefix: str = "r") -> list[Record]:
    return [Record(f"{prefix}{i}".encode()) for i in range(n)]


def good_batch(n: int = 1) -> bytes:
    return record_batch(recs(n, "good"))


def gzip_of(records: list[Record], trailing: bytes = b"") -> bytes:
    return kwire.compress(kwire.CODEC_GZIP, kwire.encode_records(records) + trailing)


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]  # the partition's records field, sent as is
    code: int  # Kafka's error code for the partition
    why: str
    record_errors: tuple[int, ...] = ()  # batch indexes Kafka names in record_errors
    appended: int = 0  # records the partition gains per send when Kafka accepts the batch
    duplicate: bool = False  # idempotent batch: the 2nd send is answered with the 1st's offset, not appended
    transactional_id: str | None = None
    # Where Sluice deliberately answers otherwise, its (code, record_errors, appended, duplicate) and why:
    # only for a Kafka bug, or a Kafka leniency Sluice does not share yet. Everything else must match.
    sluice: tuple[int, tuple[int, ...], int, bool] | None = None
    sluice_why: str = ""

    def expected(self, peer: str) -> "Case":
        if peer != "sluice" or self.sluice is None:
            return self
        code, record_errors, appended, duplicate = self.sluice
        return dataclasses.replace(self, code=code, record_errors=record_errors, appended=appended,
                                   duplicate=duplicate, sluice=None)


CASES: dict[str, Case] = {
    # 1. The attack: the header claims 2^31-1 records, the batch holds one.
    "count-int32-max-one-record": Case(
        lambda: record_batch(recs(1), record_count=2**31 - 1, last_offset_delta=2**31 - 2),
        INVALID_RECORD, "records are read up to the declared count: the 2nd is missing"),
    # 2. Declared count vs records present.
    "count-one-more-than-present": Case(
        lambda: record_batch(recs(2), record_count=3, last_offset_delta=2),
        INVALID_RECORD, "the 3rd record is missing"),
    "count-one-less-than-present": Case(
        lambda: record_batch(recs(2), record_count=1, last_offset_delta=0),
        INVALID_RECORD, "bytes remain after the declared records"),
    # 3. Records that lie about their own fields (the bad one is the 2nd of two).
    "record-length-overruns-batch": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", length=1000)]),
        INVALID_RECORD, "the record's length runs past the batch"),
    "record-length-shorter-than-fields": Case(
        lambda: record_batch([Record(b"a"), Record(b"bbbbbbbb", length=4)]),
        INVALID_RECORD, "the fields run past the record's length"),
    "key-length-minus-2": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", key=b"", key_length=-2)]),
        NONE, "accepted: Kafka reads any negative key length as a null key", appended=2),
    "key-length-overruns-record": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", key=b"k", key_length=2**31 - 1)]),
        INVALID_RECORD, "key length beyond the record"),
    "header-count-1e6": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", headers=[("h", b"v")], header_count=1_000_000)]),
        INVALID_RECORD, "a million headers do not fit in a small record"),
    "header-count-int32-max": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", header_count=2**31 - 1)]),
        INVALID_RECORD, "2^31-1 headers: must not be allocated up front"),
    "header-count-negative": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", header_count=-1)]),
        INVALID_RECORD, "negative header count"),
    "header-key-length-negative": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", headers=[(None, b"v")])]),
        INVALID_RECORD, "header key length -1 (header keys are not nullable)"),
    # 4. last_offset_delta and the count.
    "last-offset-delta-too-big": Case(
        lambda: record_batch(recs(2), last_offset_delta=5),
        INVALID_RECORD, "offset range (6) != count (2)"),
    "last-offset-delta-too-small": Case(
        lambda: record_batch(recs(2), last_offset_delta=0),
        INVALID_RECORD, "offset range (1) != count (2)"),
    "count-zero-lod-minus-1": Case(
        lambda: record_batch([], record_count=0, last_offset_delta=-1),
        INVALID_RECORD, "an empty batch from a client"),
    "count-zero-lod-0": Case(
        lambda: record_batch([], record_count=0, last_offset_delta=0),
        INVALID_RECORD, "count 0 but offset range 1"),
    "count-negative": Case(
        lambda: record_batch(recs(1), record_count=-1, last_offset_delta=0),
        INVALID_RECORD, "negative count"),
    "offset-deltas-0-2-uncompressed": Case(
        lambda: record_batch([Record(b"a", offset_delta=0), Record(b"b", offset_delta=2)], last_offset_delta=1),
        NONE, "accepted and stored as sent: uncompressed inner offset deltas are not checked", appended=2),
    # 5. The batch header itself.
    "bad-crc": Case(
        lambda: record_batch(recs(2), crc=kwire.crc32c(b"not it")),
        CORRUPT_MESSAGE, "CRC-32C does not match"),
    "magic-0": Case(lambda: record_batch(recs(1), magic=0), INVALID_RECORD, "Produce v3+ needs magic 2"),
    "magic-1": Case(lambda: record_batch(recs(1), magic=1), INVALID_RECORD, "Produce v3+ needs magic 2"),
    "magic-3": Case(lambda: record_batch(recs(1), magic=3), CORRUPT_MESSAGE, "unknown magic"),
    "batch-length-beyond-bytes": Case(
        lambda: (lambda b: b[:8] + (len(b) - 12 + 100).to_bytes(4, "big") + b[12:])(good_batch(2)),
        INVALID_RECORD, "truncated batch (length claims 100 more bytes): read as zero batches"),
    "batch-length-48": Case(
        lambda: record_batch(recs(1), batch_length=48),
        CORRUPT_MESSAGE, "below the v2 header size (49)"),
    "batch-length-0": Case(
        lambda: record_batch(recs(1), batch_length=0),
        CORRUPT_MESSAGE, "below any record overhead"),
    "base-offset-5": Case(
        lambda: record_batch(recs(2), base_offset=5),
        INVALID_RECORD, "a client's batch must have base offset 0"),
    "trailing-5-bytes": Case(
        lambda: good_batch(1) + b"\x00\x01\x02\x03\x04",
        NONE, "fewer bytes than a batch's length prefix after the batch", appended=1),
    "empty-records": Case(lambda: b"", INVALID_RECORD, "no batch at all"),
    # 6. More than one batch.
    "two-batches": Case(lambda: good_batch(1) + good_batch(1), INVALID_RECORD, "v3+: exactly one batch per partition"),
    # 7. Attributes and producer state a plain client may not use.
    "control-bit": Case(lambda: record_batch(recs(1), control=True), INVALID_RECORD, "clients may not write control batches"),
    "pid-without-sequence": Case(
        lambda: record_batch(recs(1), producer_id=1000, producer_epoch=0, base_sequence=-1),
        INVALID_RECORD, "a producer id needs a base sequence"),
    "pid-never-initialised-seq-0": Case(
        lambda: record_batch(recs(1), producer_id=4242, producer_epoch=0, base_sequence=0),
        NONE, "a producer id the broker never handed out is taken as new", appended=1, duplicate=True),
    "pid-never-initialised-seq-5": Case(
        lambda: record_batch(recs(1), producer_id=4243, producer_epoch=0, base_sequence=5),
        NONE, "a new producer may start at any sequence", appended=1, duplicate=True,
        sluice=(OUT_OF_ORDER_SEQUENCE_NUMBER, (), 0, False),
        sluice_why="Sluice still demands sequence 0 from a producer id it has no state for (stricter; "
                   "Kafka accepts any, since it cannot tell a new producer from an expired one)"),
    "transactional-bit-no-txn-id": Case(
        lambda: record_batch(recs(1), transactional=True, producer_id=1001, producer_epoch=0, base_sequence=0),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional batch without a transactional id"),
    "transactional-bit-no-pid": Case(
        lambda: record_batch(recs(1), transactional=True),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional batch without producer id or transactional id"),
    # 8. Compression.
    "codec-5": Case(lambda: record_batch(recs(1), attributes=5), UNKNOWN_SERVER_ERROR,
                    "IllegalArgumentException: Unknown compression type id (escapes as -1)"),
    "codec-6": Case(lambda: record_batch(recs(1), attributes=6), UNKNOWN_SERVER_ERROR,
                    "IllegalArgumentException: Unknown compression type id (escapes as -1)"),
    "codec-7": Case(lambda: record_batch(recs(1), attributes=7), UNKNOWN_SERVER_ERROR,
                    "IllegalArgumentException: Unknown compression type id (escapes as -1)"),
    "gzip-garbage": Case(
        lambda: record_batch(recs(1), codec=kwire.CODEC_GZIP, payload=b"\x1f\x8b\x08\x00garbage-garbage"),
        UNKNOWN_SERVER_ERROR, "KafkaException: Failed to decompress record stream (escapes as -1)"),
    "snappy-garbage": Case(
        lambda: record_batch(recs(1), codec=kwire.CODEC_SNAPPY, payload=b"\xff" * 32),
        UNKNOWN_SERVER_ERROR, "not snappy: KafkaException (escapes as -1)"),
    "lz4-garbage": Case(
        lambda: record_batch(recs(1), codec=kwire.CODEC_LZ4, payload=b"\xff" * 32),
        UNKNOWN_SERVER_ERROR, "not an lz4 frame: KafkaException (escapes as -1)"),
    "zstd-garbage": Case(
        lambda: record_batch(recs(1), codec=kwire.CODEC_ZSTD, payload=b"\xff" * 32),
        UNKNOWN_SERVER_ERROR, "not a zstd frame: KafkaException (escapes as -1)"),
    "gzip-count-one-more": Case(
        lambda: record_batch(recs(2), codec=kwire.CODEC_GZIP, record_count=3, last_offset_delta=2),
        INVALID_RECORD, "the compressed stream ends after 2 of 3 records"),
    "gzip-count-one-less": Case(
        lambda: record_batch(recs(2), codec=kwire.CODEC_GZIP, record_count=1, last_offset_delta=0),
        INVALID_RECORD, "a record remains in the stream after the declared count"),
    "gzip-offset-deltas-0-2": Case(
        lambda: record_batch([Record(b"a", offset_delta=0), Record(b"b", offset_delta=2)],
                             codec=kwire.CODEC_GZIP, last_offset_delta=1),
        UNKNOWN_SERVER_ERROR,
        "Kafka bug: rebuilding the batch hits 'key is skipped in PartialDefaultRecord' (UnsupportedOperationException)",
        sluice=(INVALID_RECORD, (1,), 0, False),
        sluice_why="what Kafka's validator means to say (RecordValidationException naming record 1), without its bug"),
    "gzip-bomb-64MiB-record": Case(
        lambda: record_batch([Record(bytes(64 << 20))], codec=kwire.CODEC_GZIP),
        NONE, "one 64 MiB record, ~65 KB compressed", appended=1),
    "gzip-bomb-64MiB-trailing": Case(
        lambda: record_batch(recs(1), codec=kwire.CODEC_GZIP, payload=gzip_of(recs(1), trailing=bytes(64 << 20))),
        INVALID_RECORD, "one record, then 64 MiB of zeros in the stream"),
    "snappy-ok": Case(lambda: record_batch(recs(2), codec=kwire.CODEC_SNAPPY), NONE, "control: valid", appended=2),
    "lz4-ok": Case(lambda: record_batch(recs(2), codec=kwire.CODEC_LZ4), NONE, "control: valid", appended=2),
    "zstd-ok": Case(lambda: record_batch(recs(2), codec=kwire.CODEC_ZSTD), NONE, "control: valid", appended=2),
    # 9. Timestamps (CreateTime; defaults log.message.timestamp.after.max.ms=3600000,
    #    before.max.ms=Long.MAX_VALUE).
    "timestamp-2h-future": Case(
        lambda: record_batch([Record(b"a"), Record(b"b", timestamp_delta=2 * HOUR_MS), Record(b"c")]),
        INVALID_TIMESTAMP, "after.max.ms is 1 h", record_errors=(1,)),
    "timestamp-100y-past": Case(
        lambda: record_batch(recs(2), base_timestamp=kwire.now_ms() - 100 * YEAR_MS),
        NONE, "before.max.ms is unlimited", appended=2),
    "timestamp-minus-2": Case(
        lambda: record_batch(recs(2), base_timestamp=-2),
        NONE, "negative timestamp other than -1", appended=2),
    "max-timestamp-lies": Case(
        lambda: record_batch(recs(2), max_timestamp=0),
        NONE, "max_timestamp below the records' timestamps", appended=2),
    # 10. Size.
    "over-message-max-bytes": Case(
        lambda: record_batch([Record(bytes(MESSAGE_MAX_BYTES))]),
        MESSAGE_TOO_LARGE, "batch above message.max.bytes"),
}


@dataclass
class Answer:
    closed: str | None  # why no answer came (connection closed / timed out), else None
    result: kwire.PartitionProduceResult | None


def send(bootstrap: str, topic: str, records: bytes, acks: int, transactional_id: str | None = None) -> Answer:
    """One Produce on a fresh connection, so a broker that hangs up affects only this request."""
    with kwire.connect(bootstrap, timeout=ANSWER_TIMEOUT) as sock:
        try:
            answer = kwire.produce(sock, topic, {0: records}, acks=acks, transactional_id=transactional_id)
        except (ConnectionError, socket.timeout, kwire.ProtocolError) as e:
            return Answer(repr(e), None)
    return Answer(None, answer[0])


def offsets(bootstrap: str, topic: str) -> dict[str, int]:
    with kwire.connect(bootstrap) as sock:
        out = {}
        for what, ts in (("latest", kwire.LATEST_TIMESTAMP), ("earliest", kwire.EARLIEST_TIMESTAMP), ("ts0", 0)):
            r = kwire.list_offsets(sock, topic, 0, ts)
            assert r.error_code == NONE, f"ListOffsets {what}: error {kwire.error_name(r.error_code)}"
            out[what] = r.offset
        return out


def produce_good(bootstrap: str, topic: str, n: int = 1) -> int:
    """A good batch, retried while the new partition's leader settles; returns its base offset."""
    deadline = time.monotonic() + 30
    while True:
        a = send(bootstrap, topic, good_batch(n), acks=-1)
        assert a.closed is None, f"good batch: no answer ({a.closed})"
        if a.result.error_code == NONE:
            return a.result.base_offset
        assert a.result.error_code == NOT_LEADER_OR_FOLLOWER and time.monotonic() < deadline, a.result
        time.sleep(0.2)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_produce(broker, log_dir, peer, name):
    case = CASES[name].expected(peer)
    topic = unique("hostile")
    create_topic(broker.bootstrap, topic, partitions=1)
    assert produce_good(broker.bootstrap, topic) == 0
    end = 1
    bad = case.build()
    for acks in (1, -1):
        a = send(broker.bootstrap, topic, bad, acks, case.transactional_id)
        after = offsets(broker.bootstrap, topic)
        row = {"case": name, "acks": acks, "batch_bytes": len(bad), "closed": a.closed, "end_before": end,
               "end_after": after["latest"], "earliest": after["earliest"], "ts0": after["ts0"]}
        if a.result is not None:
            row.update(error_code=a.result.error_code, error=kwire.error_name(a.result.error_code),
                       base_offset=a.result.base_offset, error_message=a.result.error_message,
                       record_errors=a.result.record_errors)
        with open(log_dir / "hostile-produce.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        assert a.closed is None, f"{name} acks={acks}: no answer: {a.closed}"
        got = a.result
        assert (got.error_code, kwire.error_name(got.error_code)) == (case.code, kwire.error_name(case.code)), row
        assert tuple(i for i, _ in got.record_errors) == case.record_errors, row
        if case.code != NONE:
            want_base, moved = -1, 0
        elif case.duplicate and acks == -1:
            want_base, moved = end - case.appended, 0  # the same batch again: the first send's offset
        else:
            want_base, moved = end, case.appended
        assert got.base_offset == want_base, row
        assert after["latest"] == end + moved, f"{name} acks={acks}: end offset moved: {row}"
        assert after["earliest"] == 0 and after["ts0"] == 0, row
        end += moved
    # The partition keeps serving: a good batch lands at the end.
    assert produce_good(broker.bootstrap, topic, 2) == end
    assert offsets(broker.bootstrap, topic)["latest"] == end + 2


def test_hostile_count_overflow_then_list_offsets_by_time(broker):
    """The attack of case 1, then ListOffsets by timestamp at both edges of the partition, and a
    second client's good batch: a broker that believed the 2^31-1 count would get these wrong."""
    topic = unique("hostile-overflow")
    create_topic(broker.bootstrap, topic, partitions=1)
    t0 = kwire.now_ms()
    assert produce_good(broker.bootstrap, topic) == 0
    attack = record_batch(recs(1), record_count=2**31 - 1, last_offset_delta=2**31 - 2)
    for acks in (1, -1):
        a = send(broker.bootstrap, topic, attack, acks)
        assert a.closed is None and a.result.error_code == INVALID_RECORD, a
    with kwire.connect(broker.bootstrap) as sock:
        assert kwire.list_offsets(sock, topic, 0, 0).offset == 0
        assert kwire.list_offsets(sock, topic, 0, t0 - 1000).offset == 0
        assert kwire.list_offsets(sock, topic, 0, kwire.now_ms() + HOUR_MS).offset == -1
        assert kwire.list_offsets(sock, topic, 0, kwire.LATEST_TIMESTAMP).offset == 1
    assert produce_good(broker.bootstrap, topic) == 1


def test_hostile_produce_to_internal_topic(broker):
    """A client's records in __consumer_offsets would be replayed as group state at the next start, so a
    malformed key there could keep the broker from starting: Kafka refuses appends to internal topics."""
    from confluent_kafka import Consumer

    # A group lookup makes the broker create __consumer_offsets (Kafka creates it on demand).
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("hostile-internal"),
                         "enable.auto.commit": False})
    try:
        consumer.subscribe([unique("hostile-internal-topic")])
        deadline = time.monotonic() + 60
        while True:
            consumer.poll(0.5)
            a = send(broker.bootstrap, "__consumer_offsets", good_batch(1), acks=1)
            assert a.closed is None, a
            if a.result.error_code not in (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER):
                break
            assert time.monotonic() < deadline, "__consumer_offsets never appeared"
    finally:
        consumer.close()
    assert a.result.error_code == INVALID_TOPIC_EXCEPTION, kwire.error_name(a.result.error_code)
    assert a.result.base_offset == -1
