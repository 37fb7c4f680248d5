"""Compression: gzip, snappy, lz4 and zstd record batches from three producers (librdkafka with raw
snappy, kafka-python, the Java client with xerial-framed snappy), each read back identical by the
other clients. The batches on disk must carry the producer's codec (the broker stores them as sent)."""

import base64

import pytest

from clients import (
    COMPRESSION_CODECS,
    batches_in_log,
    create_topic,
    java,
    kp_produce,
    kp_read,
    produce,
    read_partitions,
    unique,
)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
PRODUCERS = ["confluent", "kafka-python", "java"]
COUNT = 300
VALUE_SIZE = 300


def value_for(prefix: str, i: int) -> bytes:
    # Same layout as the Java client's valueFor: "prefix-i:" then a compressible filler.
    s = f"{prefix}-{i}:"
    s += "".join(chr(ord("a") + (n % 26)) for n in range(len(s), VALUE_SIZE))
    return s.encode()


def read_with(client: str, bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes]]:
    """(offset, key, value) of the first COUNT records of partition 0, read with `client`."""
    if client == "confluent":
        return [(m.offset, m.key, m.value) for m in read_partitions(bootstrap, topic, [0])]
    if client == "kafka-python":
        return [(m.offset, m.key, m.value) for m in kp_read(bootstrap, topic, 0, COUNT)]
    rc, lines, err = java(
        "consume", "--bootstrap", bootstrap, "--topic", topic, "--group", unique("java-read"),
        "--count", str(COUNT), "--timeout-ms", "60000", "--print",
    )
    assert rc == 0, f"java consume failed: {lines[-1:]} {err}"
    return [(r["o"], base64.b64decode(r["k"]) if r["k"] else None, base64.b64decode(r["v"])) for r in lines if "o" in r]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_compressed_batches_cross_client(broker, producer, codec):
    topic = unique(f"comp-{producer}-{codec}")
    create_topic(broker.bootstrap, topic, partitions=1)
    prefix = f"{producer}-{codec}"
    expected = [(f"k{i}".encode(), value_for(prefix, i)) for i in range(COUNT)]

    if producer == "confluent":
        produce(broker.bootstrap, topic, [(k, v, 0) for k, v in expected],
                conf={"compression.type": codec, "linger.ms": 50})
    elif producer == "kafka-python":
        kp_produce(broker.bootstrap, topic, expected, compression_type=codec)
    else:
        rc, lines, err = java("produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                              "--count", str(COUNT), "--compression", codec, "--prefix", prefix,
                              "--value-size", str(VALUE_SIZE), "--linger-ms", "50")
        assert rc == 0 and lines and lines[-1]["acked"] == COUNT, f"java produce: {lines} {err}"

    # The broker kept the batches as the producer compressed them.
    logs = sorted(broker.partition_dir(topic, 0).glob("*.log"))
    batches = [b for log in logs for b in batches_in_log(log)]
    assert sum(count for _, count, _ in batches) == COUNT
    assert {COMPRESSION_CODECS[c] for _, _, c in batches} == {codec}
    assert len(batches) < COUNT, "every record in its own batch: compression was not exercised"

    want = [(i, k, v) for i, (k, v) in enumerate(expected)]
    for reader in [c for c in PRODUCERS if c != producer]:
        got = read_with(reader, broker.bootstrap, topic)
        assert got[:COUNT] == want, f"{reader} read back different records"
        assert len(got) == COUNT
