"""Requests that name the same thing many times: the answer must not grow with the repetitions beyond what
Kafka itself answers, or a small request could make the broker build a huge response in memory.

Apache Kafka answers each distinct topic of a Metadata request once. For DescribeConfigs and DescribeGroups
it answers every entry as asked, duplicates included; Sluice answers each distinct resource or group once
there too (a client never sends duplicates, and a broker resource expands to hundreds of config entries, so
a 100 MiB request of repeats would otherwise be a response of tens of GiB).
"""

import struct

import kwire
from harness import peer_name
from clients import create_topic, unique

REPEATS = 2000


def call(bootstrap: str, api_key: int, version: int, body: bytes) -> kwire.Reader:
    sock = kwire.connect(bootstrap, timeout=30)
    try:
        sock.sendall(kwire.frame(kwire.request_header(api_key, version, 11, "amplify", False) + body))
        r = kwire.Reader(kwire.recv_frame(sock))
        assert r.int32() == 11
        return r
    finally:
        sock.close()


def string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def test_metadata_answers_a_repeated_topic_once(broker):
    topic = unique("amplify")
    create_topic(broker.bootstrap, topic, partitions=3)
    body = struct.pack(">i", REPEATS) + string(topic) * REPEATS
    r = call(broker.bootstrap, kwire.API_METADATA, 1, body)
    for _ in range(r.int32()):  # brokers
        r.int32(), r.string(), r.int32(), r.string()
    r.int32()  # controller
    names = []
    for _ in range(r.int32()):
        r.int16()
        names.append(r.string())
        r.int8()
        for _ in range(r.int32()):
            r.int16(), r.int32(), r.int32()
            for _ in range(r.int32()):
                r.int32()
            for _ in range(r.int32()):
                r.int32()
    assert names == [topic]


API_DESCRIBE_CONFIGS = 32
API_DESCRIBE_GROUPS = 15
RESOURCE_BROKER = 4


def test_describe_configs_of_a_repeated_broker_resource(broker):
    node = "1"  # both peers run as node 1
    # v1: resources [type int8, name string, config_names null], include_synonyms false.
    body = struct.pack(">i", REPEATS) + (struct.pack(">b", RESOURCE_BROKER) + string(node) + struct.pack(">i", -1)) * REPEATS
    body += struct.pack(">b", 0)
    r = call(broker.bootstrap, API_DESCRIBE_CONFIGS, 1, body)
    r.int32()  # throttle
    results = r.int32()
    expected = REPEATS if peer_name() == "kafka" else 1
    assert results == expected


def test_describe_groups_of_a_repeated_group(broker):
    group = unique("amplify-group")
    body = struct.pack(">i", REPEATS) + string(group) * REPEATS
    r = call(broker.bootstrap, API_DESCRIBE_GROUPS, 0, body)
    groups = r.int32()
    expected = REPEATS if peer_name() == "kafka" else 1
    assert groups == expected
