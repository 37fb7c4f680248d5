"""aiokafka (the asyncio client), unmodified: idempotent keyed producing, every codec it supports,
a two-member consumer group handing partitions over at committed offsets, offset look-ups and seek,
its admin client, and a produce over `message.max.bytes`.

Each test is a plain sync test that runs one coroutine with `asyncio.run`, bounded by `TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from clients import COMPRESSION_CODECS, create_topic, stored_batches, unique

TIMEOUT_S = 60


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(bounded())


async def eventually(predicate, timeout: float, what: str):
    """Await until `predicate()` (sync or async) is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def read_to_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], timeout: float = 30) -> list:
    """getmany() until the consumer's position on every partition in `ends` has reached its end."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        positions = {tp: await consumer.position(tp) for tp in ends}
        if all(positions[tp] >= end for tp, end in ends.items()):
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"read {len(got)} records; positions {[(tp.partition, o) for tp, o in positions.items()]},"
                f" ends {[(tp.partition, e) for tp, e in ends.items()]}"
            )
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got.extend(records)


async def read_all(bootstrap: str, topic: str, partitions: int) -> list:
    """Every record of the topic as it is now, with an assigned (group-less) consumer."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        return await read_to_end(c, await c.end_offsets(tps))
    finally:
        await c.stop()


def log_batches(broker, topic: str, partition: int) -> list[dict]:
    """The record batch headers of one partition's segments as stored by the broker."""
    return [
        {
            "base": b.base,
            "count": b.count,
            "codec": COMPRESSION_CODECS[b.codec],
            "producer_id": b.producer_id,
            "epoch": b.epoch,
            "base_sequence": b.base_sequence,
        }
        for log in sorted(broker.partition_dir(topic, partition).glob("*.log"))
        for b in stored_batches(log)
    ]


# -- idempotent producer --------------------------------------------------------------------------

IDEM_PARTITIONS = 3
IDEM_KEYS = 12
IDEM_COUNT = 900


def test_aiokafka_idempotent_producer_keyed_order_no_duplicates(broker):
    topic = unique("aio-idem")
    create_topic(broker.bootstrap, topic, partitions=IDEM_PARTITIONS)

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all", linger_ms=20)
        await p.start()
        try:
            futures = [await p.send(topic, key=f"key-{i % IDEM_KEYS}".encode(), value=f"{i}".encode())
                       for i in range(IDEM_COUNT)]
            metas = await asyncio.gather(*futures)
        finally:
            await p.stop()
        return metas, await read_all(broker.bootstrap, topic, IDEM_PARTITIONS)

    metas, got = run(main())

    # Acked offsets are dense and unique per partition; the keys spread over every partition.
    by_partition: dict[int, list[int]] = {}
    for m in metas:
        by_partition.setdefault(m.partition, []).append(m.offset)
    assert set(by_partition) == set(range(IDEM_PARTITIONS)), f"keys landed only on {sorted(by_partition)}"
    for part, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {part}: acked offsets not 0..n-1"

    # Read back: everything exactly once, each key on one partition in send order, at the acked offset.
    assert len(got) == IDEM_COUNT
    assert sorted(int(r.value) for r in got) == list(range(IDEM_COUNT)), "lost or duplicated records"
    acked = {i: (m.partition, m.offset) for i, m in enumerate(metas)}
    for r in got:
        i = int(r.value)
        assert r.key == f"key-{i % IDEM_KEYS}".encode()
        assert (r.partition, r.offset) == acked[i], f"record {i} read at {(r.partition, r.offset)}, acked at {acked[i]}"
    by_key: dict[bytes, list[tuple[int, int, int]]] = {}
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append((r.partition, r.offset, int(r.value)))
    for key, seq in by_key.items():
        assert len({part for part, _, _ in seq}) == 1, f"{key} spread over partitions"
        assert [n for _, _, n in seq] == sorted(n for _, _, n in seq), f"{key} out of order"

    # The batches on disk are the idempotent producer's: one producer id, consecutive sequences.
    for part in range(IDEM_PARTITIONS):
        batches = log_batches(broker, topic, part)
        assert {b["producer_id"] for b in batches} != {-1} and len({b["producer_id"] for b in batches}) == 1, batches
        expected_seq = 0
        for b in batches:
            assert b["base_sequence"] == expected_seq, f"partition {part}: sequence gap or repeat in {batches}"
            expected_seq += b["count"]
        assert expected_seq == len(by_partition[part])


# -- compression ----------------------------------------------------------------------------------

COMP_COUNT = 200


def comp_value(i: int) -> bytes:
    # Every byte value, then a compressible tail, so both framing and payload are exercised.
    return bytes((i + n) % 256 for n in range(256)) + f"record-{i}-".encode() * 20


def comp_headers(i: int) -> list[tuple[str, bytes]]:
    return [("seq", str(i).encode()), ("bin", bytes([i % 256, 0, 255])), ("empty", b""), ("seq", b"again")]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_aiokafka_compression_round_trip(broker, codec):
    topic = unique(f"aio-{codec}")
    create_topic(broker.bootstrap, topic, partitions=1)
    expected = [(None if i % 50 == 7 else f"k{i}".encode(), comp_value(i), comp_headers(i)) for i in range(COMP_COUNT)]

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all", linger_ms=50)
        await p.start()
        try:
            futures = [await p.send(topic, key=k, value=v, headers=h, partition=0) for k, v, h in expected]
            await asyncio.gather(*futures)
        finally:
            await p.stop()
        return await read_all(broker.bootstrap, topic, 1)

    got = run(main())
    batches = log_batches(broker, topic, 0)
    assert sum(b["count"] for b in batches) == COMP_COUNT
    assert {b["codec"] for b in batches} == {codec}, f"stored codecs {[b['codec'] for b in batches]}"
    assert len(batches) < COMP_COUNT, "every record in its own batch: compression was not exercised"
    assert [(r.offset, r.key, r.value, list(r.headers)) for r in got] == [
        (i, k, v, h) for i, (k, v, h) in enumerate(expected)
    ]


# -- consumer group -------------------------------------------------------------------------------

GROUP_PARTITIONS = 4
FIRST = 100  # records per partition before the hand-over
SECOND = 50  # records per partition after it
PARTIAL = 60  # what the leaving member commits on its partitions, having read FIRST


def test_aiokafka_group_splits_then_survivor_resumes_from_committed_offsets(broker):
    topic = unique("aio-group")
    group = unique("aio-group-g")
    create_topic(broker.bootstrap, topic, partitions=GROUP_PARTITIONS)
    all_tps = {TopicPartition(topic, p) for p in range(GROUP_PARTITIONS)}

    def member(name):
        return AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, client_id=name,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=6000, heartbeat_interval_ms=300)

    async def produce_round(producer, tag, count):
        futures = [await producer.send(topic, value=f"{tag}-{p}-{i}".encode(), partition=p)
                   for p in range(GROUP_PARTITIONS) for i in range(count)]
        await asyncio.gather(*futures)

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=10)
        a, b = member("aio-a"), member("aio-b")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await p.start()
        await admin.start()
        await a.start()
        b_stopped = False
        try:
            await eventually(lambda: a.assignment() == all_tps, 30, "the first member to own every partition")
            await b.start()

            def split():
                sa, sb = a.assignment(), b.assignment()
                return sa and sb and not (sa & sb) and (sa | sb) == all_tps and len(sa) == len(sb)

            await eventually(split, 30, "the two members to split the partitions")
            a_tps, b_tps = set(a.assignment()), set(b.assignment())

            await produce_round(p, "first", FIRST)
            a_first = await read_to_end(a, {tp: FIRST for tp in a_tps})
            b_first = await read_to_end(b, {tp: FIRST for tp in b_tps})
            assert sorted((r.partition, r.offset) for r in a_first) == sorted((tp.partition, o) for tp in a_tps for o in range(FIRST))
            assert sorted((r.partition, r.offset) for r in b_first) == sorted((tp.partition, o) for tp in b_tps for o in range(FIRST))

            await a.commit({tp: OffsetAndMetadata(FIRST, f"a:{tp.partition}") for tp in a_tps})
            # b has read FIRST records per partition but commits only PARTIAL: the rest must come again.
            await b.commit({tp: OffsetAndMetadata(PARTIAL, f"b:{tp.partition}") for tp in b_tps})
            for tp in a_tps:
                assert await a.committed(tp) == FIRST
                assert await b.committed(tp) == FIRST  # any member sees the group's commits
            for tp in b_tps:
                assert await b.committed(tp) == PARTIAL
            offsets = await admin.list_consumer_group_offsets(group)
            assert {tp: (om.offset, om.metadata) for tp, om in offsets.items()} == {
                **{tp: (FIRST, f"a:{tp.partition}") for tp in a_tps},
                **{tp: (PARTIAL, f"b:{tp.partition}") for tp in b_tps},
            }

            await b.stop()  # leaves the group (no auto-commit: its position past PARTIAL is lost)
            b_stopped = True
            await eventually(lambda: a.assignment() == all_tps, 30, "the survivor to own every partition")

            await produce_round(p, "second", SECOND)
            rest = await read_to_end(a, {tp: FIRST + SECOND for tp in all_tps})
            want = sorted([(tp.partition, o) for tp in a_tps for o in range(FIRST, FIRST + SECOND)]
                          + [(tp.partition, o) for tp in b_tps for o in range(PARTIAL, FIRST + SECOND)])
            assert sorted((r.partition, r.offset) for r in rest) == want, "survivor did not resume at the committed offsets"
            for r in rest:
                want_value = f"first-{r.partition}-{r.offset}" if r.offset < FIRST else f"second-{r.partition}-{r.offset - FIRST}"
                assert r.value == want_value.encode(), (r.partition, r.offset, r.value)

            await a.commit()
            for tp in all_tps:
                assert await a.committed(tp) == FIRST + SECOND
        finally:
            if not b_stopped:
                await b.stop()
            await a.stop()
            await admin.close()
            await p.stop()

    run(main())


# -- offsets: by time, seek, beginning/end --------------------------------------------------------

TIMES_COUNT = 40
STEP_MS = 1000


def test_aiokafka_offsets_for_times_seek_and_watermarks(broker):
    topic = unique("aio-offsets")
    create_topic(broker.bootstrap, topic, partitions=1)
    tp = TopicPartition(topic, 0)
    # Recent enough for the broker's timestamp-skew limits.
    t0 = int(time.time() * 1000) - 10 * 60 * 1000
    ts = [t0 + i * STEP_MS for i in range(TIMES_COUNT)]

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=50)
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await p.start()
        await c.start()
        await admin.start()
        try:
            assert await c.beginning_offsets([tp]) == {tp: 0}
            assert await c.end_offsets([tp]) == {tp: 0}
            futures = [await p.send(topic, value=f"t-{i}".encode(), partition=0, timestamp_ms=ts[i])
                       for i in range(TIMES_COUNT)]
            metas = await asyncio.gather(*futures)
            assert [m.offset for m in metas] == list(range(TIMES_COUNT))
            assert len(log_batches(broker, topic, 0)) < TIMES_COUNT, "records were not batched"

            assert await c.beginning_offsets([tp]) == {tp: 0}
            assert await c.end_offsets([tp]) == {tp: TIMES_COUNT}

            queries = {
                t0 - 5_000: 0,  # before everything: the first record
                ts[0]: 0,
                ts[7]: 7,  # exact timestamp inside a batch
                ts[7] + 1: 8,  # between two records: the next one
                ts[23] - 1: 23,
                ts[TIMES_COUNT - 1]: TIMES_COUNT - 1,
            }
            for target, want in queries.items():
                answer = (await c.offsets_for_times({tp: target}))[tp]
                assert answer is not None, f"no offset for timestamp {target}"
                assert (answer.offset, answer.timestamp) == (want, ts[want]), f"timestamp {target - t0:+} ms from t0"
            # After every record: no such offset.
            assert await c.offsets_for_times({tp: ts[-1] + 1}) == {tp: None}

            c.assign([tp])
            c.seek(tp, 17)  # mid-batch: the records before 17 in its batch must not be returned
            [first, *_] = await read_to_end(c, {tp: 18})
            assert (first.offset, first.value, first.timestamp) == (17, b"t-17", ts[17])
            await c.seek_to_beginning(tp)
            assert await c.position(tp) == 0
            await c.seek_to_end(tp)
            assert await c.position(tp) == TIMES_COUNT

            # The log start moves with DeleteRecords; beginning_offsets and by-time look-ups follow it.
            low = await admin.delete_records({tp: RecordsToDelete(before_offset=10)})
            assert low == {tp: 10}
            assert await c.beginning_offsets([tp]) == {tp: 10}
            assert (await c.offsets_for_times({tp: t0}))[tp].offset == 10
            c.seek(tp, 0)  # out of range now: auto_offset_reset=earliest takes it to the new start
            rest = await read_to_end(c, {tp: TIMES_COUNT})
            assert [r.offset for r in rest] == list(range(10, TIMES_COUNT))
        finally:
            await admin.close()
            await c.stop()
            await p.stop()

    run(main())


# -- admin client ---------------------------------------------------------------------------------


def config_entries(responses) -> dict[str, dict[str, str]]:
    """{resource name: {config name: value}} from DescribeConfigs responses; fails on any error."""
    out = {}
    for response in responses:
        for error_code, error_message, _type, name, entries, *_ in response.resources:
            assert error_code == 0, f"describe_configs {name}: error {error_code} {error_message}"
            out[name] = {e[0]: e[1] for e in entries}
    return out


def test_aiokafka_admin_topics_configs_partitions(broker):
    topic = unique("aio-admin")
    other = unique("aio-admin-other")

    async def main():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            resp = await admin.create_topics([
                NewTopic(topic, num_partitions=2, replication_factor=1, topic_configs={"retention.ms": "3600000", "segment.ms": "100000"}),
                NewTopic(other, num_partitions=1, replication_factor=1),
            ])
            assert sorted((t[0], t[1]) for t in resp.topic_errors) == sorted([(topic, 0), (other, 0)])
            resp = await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
            assert [(t[0], t[1]) for t in resp.topic_errors] == [(topic, TopicAlreadyExistsError.errno)]
            await eventually(lambda: _has_topics(admin, {topic, other}), 30, "both topics listed")

            async def partition_count(name):
                [t] = await admin.describe_topics([name])
                assert t["error_code"] == 0, t
                return len(t["partitions"])

            assert await partition_count(topic) == 2

            keys = {"retention.ms": None, "segment.ms": None, "cleanup.policy": None}
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, keys)

            async def described():
                return config_entries(await admin.describe_configs([resource]))[topic]

            assert await described() == {"retention.ms": "3600000", "segment.ms": "100000", "cleanup.policy": "delete"}

            # AlterConfigs replaces the topic's whole dynamic config with what it is given: segment.ms,
            # not named, goes back to the default (7 days).
            [altered] = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "7200000"})])
            assert [(r[0], r[3]) for r in altered.resources] == [(0, topic)], altered.resources

            want = {"retention.ms": "7200000", "segment.ms": "604800000", "cleanup.policy": "delete"}
            await eventually(lambda: _equals(described(), want), 30, f"configs {want}")

            await admin.create_partitions({topic: NewPartitions(total_count=5)})
            await eventually(lambda: _equals(partition_count(topic), 5), 30, "5 partitions")

            # The new partitions take records: aiokafka's producer sees them too.
            p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            await p.start()
            try:
                meta = await p.send_and_wait(topic, value=b"to the new partition", partition=4)
                assert (meta.partition, meta.offset) == (4, 0)
            finally:
                await p.stop()

            resp = await admin.delete_topics([topic])
            assert [(t[0], t[1]) for t in resp.topic_error_codes] == [(topic, 0)]
            await eventually(lambda: _lacks_topic(admin, topic, other), 30, "the deleted topic gone, the other kept")
        finally:
            await admin.close()

    run(main())


async def _has_topics(admin, names) -> bool:
    return names <= set(await admin.list_topics())


async def _lacks_topic(admin, gone, kept) -> bool:
    listed = set(await admin.list_topics())
    return gone not in listed and kept in listed


async def _equals(coro, want) -> bool:
    return await coro == want


# -- message.max.bytes ----------------------------------------------------------------------------

BROKER_MAX = 200_000
JUST_UNDER = 199_000
OVER = 201_000


def test_aiokafka_over_message_max_bytes_rejected_by_broker(broker_factory):
    b = broker_factory({"message.max.bytes": BROKER_MAX})
    topic = unique("aio-size")
    create_topic(b.bootstrap, topic, partitions=1)

    async def main():
        # The client's own limit is far above the broker's, so only the broker can refuse.
        p = AIOKafkaProducer(bootstrap_servers=b.bootstrap, acks="all", max_request_size=1_000_000, linger_ms=0)
        await p.start()
        try:
            under = await p.send_and_wait(topic, value=b"u" * JUST_UNDER, partition=0)
            assert under.offset == 0
            with pytest.raises(MessageSizeTooLargeError) as e:
                await p.send_and_wait(topic, value=b"o" * OVER, partition=0)
            assert e.value.errno == 10
            # The rejection broke neither the producer nor the partition.
            after = await p.send_and_wait(topic, key=b"after", value=b"small", partition=0)
            assert after.offset == 1
        finally:
            await p.stop()
        return await read_all(b.bootstrap, topic, 1)

    got = run(main())
    assert [(r.offset, r.key, len(r.value)) for r in got] == [(0, None, JUST_UNDER), (1, b"after", 5)]
