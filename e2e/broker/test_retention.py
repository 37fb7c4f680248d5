"""Segments and retention: the log rolls into segment files named by their 20-digit base offset
(.log with .index and .timeindex), and size-based retention deletes the oldest segments, moving the
partition's low watermark (log start offset) up to the first remaining segment."""

import re

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from clients import admin, create_topic, produce, read_partitions, unique, wait_until, watermarks

# Apache Kafka 4.x refuses log.segment.bytes below 1 MiB (it fails to start), so that is the floor.
SEGMENT_BYTES = 1048576
RETENTION_BYTES = 2 * SEGMENT_BYTES
MESSAGES = 6000
VALUE = 1000
SEGMENT_NAME = re.compile(r"^(\d{20})\.(log|index|timeindex)$")


def segments(b, topic):
    """base offset -> set of segment file suffixes present."""
    out: dict[int, set[str]] = {}
    for f in b.partition_dir(topic, 0).iterdir():
        m = SEGMENT_NAME.match(f.name)
        if m:
            out.setdefault(int(m.group(1)), set()).add(m.group(2))
    return out


def test_segments_roll_and_retention_deletes_oldest(broker_factory):
    b = broker_factory({
        "log.segment.bytes": SEGMENT_BYTES,
        "log.retention.check.interval.ms": 1000,
        # Delete files at once rather than renaming them *.deleted for a minute first.
        "log.segment.delete.delay.ms": 0,
    })
    topic = unique("retention")
    # Keep everything while writing, so the rolled segments can be looked at first.
    create_topic(b.bootstrap, topic, partitions=1)
    value = bytes(i % 251 for i in range(VALUE))
    for start in range(0, MESSAGES, 1000):
        produce(b.bootstrap, topic, [(None, value, 0)] * 1000, conf={"compression.type": "none", "linger.ms": 20})
    assert watermarks(b.bootstrap, topic, 0) == (0, MESSAGES)

    segs = segments(b, topic)
    bases = sorted(segs)
    assert len(bases) >= 5, f"expected the ~6 MB log to roll into >= 5 segments of 1 MiB, got {bases}"
    assert bases[0] == 0
    for base in bases[:-1]:  # every rolled segment has its indexes
        assert segs[base] == {"log", "index", "timeindex"}, f"segment {base:020d}: {segs[base]}"
        size = (b.partition_dir(topic, 0) / f"{base:020d}.log").stat().st_size
        assert 0 < size <= SEGMENT_BYTES
    assert "log" in segs[bases[-1]]

    # Now cap the partition at 2 segments' worth; the retention check deletes the oldest ones.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", str(RETENTION_BYTES), incremental_operation=AlterConfigOpType.SET)])
    a = admin(b.bootstrap)  # must outlive its futures
    for f in a.incremental_alter_configs([res]).values():
        f.result(timeout=30)

    def low_watermark_moved():
        low, high = watermarks(b.bootstrap, topic, 0)
        return low > 0 and low

    low = wait_until(low_watermark_moved, 60, "retention to move the low watermark")

    def old_files_gone():
        remaining = segments(b, topic)
        return min(remaining) == low and all(base not in remaining for base in bases if base < low) and remaining

    remaining = wait_until(old_files_gone, 30, "the deleted segments' files to disappear")
    assert low in bases, f"the low watermark {low} is not a segment base offset {bases}"
    assert bases[-1] in remaining, "the active segment must never be deleted"
    total = sum((b.partition_dir(topic, 0) / f"{base:020d}.log").stat().st_size for base in remaining)
    assert total <= RETENTION_BYTES + SEGMENT_BYTES, f"{total} bytes kept, over retention.bytes + one segment"
    assert watermarks(b.bootstrap, topic, 0) == (low, MESSAGES)

    # Reading from the start now starts at the new low watermark.
    got = read_partitions(b.bootstrap, topic, [0])
    assert got[0].offset == low and got[-1].offset == MESSAGES - 1 and len(got) == MESSAGES - low
