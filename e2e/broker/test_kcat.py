"""kcat (librdkafka, ApiVersions v3): metadata listing, keyed produce, consume to end of partition."""

import json
import subprocess

from clients import create_topic, unique

TIMEOUT = 60


def kcat(*args, stdin=None):
    proc = subprocess.run(["kcat", *args], input=stdin, capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"kcat {args} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode()


def test_kcat_metadata_lists_broker_and_topics(broker):
    topic = unique("kcat-md")
    create_topic(broker.bootstrap, topic, partitions=3)
    md = json.loads(kcat("-b", broker.bootstrap, "-L", "-J"))
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, broker.bootstrap)]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == 1 for p in parts)
    # The plain-text listing is what people read; it must name the broker too.
    text = kcat("-b", broker.bootstrap, "-L", "-t", topic)
    assert f"broker 1 at {broker.bootstrap}" in text
    assert f'topic "{topic}" with 3 partitions' in text


def test_kcat_produce_keyed_then_consume_to_end(broker):
    topic = unique("kcat-pc")
    create_topic(broker.bootstrap, topic, partitions=1)
    lines = [f"key{i}:value-{i}" for i in range(200)]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", "-p", "0", stdin="\n".join(lines).encode() + b"\n")
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o|%k|%s\n")
    got = [line.split("|") for line in out.splitlines()]
    assert got == [[str(i), f"key{i}", f"value-{i}"] for i in range(200)]
    # Consuming from the end: the broker's answer is an empty fetch (empty records, not null), and
    # kcat -e must see end-of-partition and exit rather than wait or fail.
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "end", "-e")
    assert out == ""


def test_kcat_consumes_empty_topic_and_exits(broker):
    topic = unique("kcat-empty")
    create_topic(broker.bootstrap, topic, partitions=2)
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q")
    assert out == ""
