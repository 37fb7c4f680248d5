"""Admin operations with the confluent-kafka AdminClient and the Java AdminClient: topics
(create, validate-only, describe, add partitions, configs, delete), error codes, cluster, records,
and consumer groups."""

import json

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from clients import admin, create_topic, java, produce, unique, wait_until, watermarks

TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37

CONFIGS = {"retention.ms": "3600000", "segment.bytes": "2097152", "cleanup.policy": "delete"}


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(timeout=30)
    return e.value.args[0]


def topic_names(bootstrap):
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def partition_count(a, topic):
    [desc] = a.describe_topics(TopicCollection([topic])).values()
    d = desc.result(timeout=30)
    assert all(p.leader is not None and p.leader.id == 1 for p in d.partitions)
    return len(d.partitions)


def test_confluent_admin_topic_lifecycle(broker):
    a = admin(broker.bootstrap)
    topic = unique("admin")

    # validate_only checks the request and creates nothing.
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True)
    fs[topic].result(timeout=30)
    assert topic not in topic_names(broker.bootstrap)

    create_topic(broker.bootstrap, topic, partitions=2)
    assert partition_count(a, topic) == 2

    err = error_of(a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic])
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS == TOPIC_ALREADY_EXISTS

    bad = unique("admin-bad")
    err = error_of(a.create_topics([NewTopic(bad, num_partitions=0, replication_factor=1)])[bad])
    assert err.code() == KafkaError.INVALID_PARTITIONS == INVALID_PARTITIONS
    assert bad not in topic_names(broker.bootstrap)

    a.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=30)
    wait_until(lambda: partition_count(a, topic) == 5, 30, "5 partitions")
    # Fewer partitions than the topic has is refused.
    err = error_of(a.create_partitions([NewPartitions(topic, 3)])[topic])
    assert err.code() == INVALID_PARTITIONS

    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in CONFIGS.items()],
    )
    for f in a.incremental_alter_configs([res]).values():
        f.result(timeout=30)

    def described_configs():
        [f] = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
        d = f.result(timeout=30)
        return d if all(d[k].value == v for k, v in CONFIGS.items()) else None

    # Apache Kafka applies config changes asynchronously: poll until DescribeConfigs shows them.
    described = wait_until(described_configs, 30, "altered configs to be described back")
    for k, v in CONFIGS.items():
        assert described[k].value == v, f"{k}: {described[k].value} != {v}"
        assert described[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    a.delete_topics([topic])[topic].result(timeout=30)
    wait_until(lambda: topic not in topic_names(broker.bootstrap), 30, f"{topic} to disappear")


def test_confluent_admin_cluster_records_and_groups(broker):
    a = admin(broker.bootstrap)
    cluster = a.describe_cluster().result(timeout=30)
    assert cluster.cluster_id
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]

    topic = unique("admin-rec")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [(None, f"r-{i}".encode(), 0) for i in range(10)])
    assert watermarks(broker.bootstrap, topic, 0) == (0, 10)
    [f] = a.delete_records([TopicPartition(topic, 0, 6)]).values()
    assert f.result(timeout=30).low_watermark == 6
    assert watermarks(broker.bootstrap, topic, 0) == (6, 10)

    group = unique("admin-g")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    msg = wait_until(lambda: c.poll(0.5), 30, "a message for the group consumer")
    assert msg.error() is None and msg.offset() == 6, "reading after DeleteRecords starts at the low watermark"
    c.commit(message=msg, asynchronous=False)
    c.close()

    def listed():
        result = a.list_consumer_groups().result(timeout=30)
        return {g.group_id for g in result.valid}

    wait_until(lambda: group in listed(), 30, f"{group} in list_consumer_groups")
    [f] = a.describe_consumer_groups([group]).values()
    desc = f.result(timeout=30)
    assert desc.group_id == group and desc.members == [] and desc.state.name == "EMPTY"

    [f] = a.delete_consumer_groups([group]).values()
    f.result(timeout=30)
    assert group not in listed()


def test_java_admin_client(broker):
    topic = unique("jadmin")
    bad = unique("jadmin-bad")
    commands = [
        f"create-topic {topic} 3 validate-only",
        "list-topics",
        f"create-topic {topic} 3",
        f"create-topic {topic} 3",
        f"create-topic {bad} 0",
        f"describe-topic {topic}",
        f"create-partitions {topic} 6",
        f"create-partitions {topic} 2",
        "alter-config " + topic + " " + " ".join(f"{k}={v}" for k, v in CONFIGS.items()),
        "await-config " + topic + " " + " ".join(f"{k}={v}" for k, v in CONFIGS.items()),
        "describe-cluster",
        f"delete-topic {topic}",
    ]
    rc, results, err = java("admin", "--bootstrap", broker.bootstrap, stdin="\n".join(commands) + "\n")
    assert rc == 0 and len(results) == len(commands), f"java admin: rc={rc} {results} {err}"
    r = dict(zip(range(len(commands)), results))
    pretty = json.dumps(results, indent=1)

    assert r[0]["ok"], pretty
    assert topic not in r[1]["topics"], "validate-only created the topic"
    assert r[2]["ok"], pretty
    assert (r[3]["ok"], r[3]["error"], r[3]["code"]) == (False, "TopicExistsException", TOPIC_ALREADY_EXISTS)
    assert (r[4]["ok"], r[4]["error"], r[4]["code"]) == (False, "InvalidPartitionsException", INVALID_PARTITIONS)
    assert [p["partition"] for p in r[5]["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == 1 and p["isr"] == 1 for p in r[5]["partitions"])
    assert r[6]["ok"], pretty
    assert (r[7]["ok"], r[7]["code"]) == (False, INVALID_PARTITIONS)
    assert r[8]["ok"], pretty
    assert r[9]["ok"] and r[9]["configs"] == CONFIGS, pretty
    assert r[10]["nodes"] == [{"id": 1, "host": "127.0.0.1", "port": broker.port}]
    assert r[10]["cluster_id"]
    assert r[11]["ok"], pretty
    wait_until(lambda: topic not in topic_names(broker.bootstrap), 30, f"{topic} to disappear")
    assert bad not in topic_names(broker.bootstrap)


def test_incremental_append_and_subtract(broker):
    """APPEND and SUBTRACT work on list configs only: on any other key Kafka refuses them with
    INVALID_CONFIG, and so does Sluice (whose list handling stays linear in the items a request holds)."""
    a = admin(broker.bootstrap)
    topic = unique("admin-append")
    create_topic(broker.bootstrap, topic, partitions=1)

    def alter(op, key, value):
        res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                             incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
        [f] = a.incremental_alter_configs([res]).values()
        try:
            f.result(timeout=30)
        except KafkaException as e:
            return e.args[0]
        return None

    for op in (AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT):
        err = alter(op, "retention.ms", "1000")
        assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err
        assert err.str() == f"Can't {op.name} to key retention.ms because its type is not LIST."

    # Appending what the list holds already leaves it as it was.
    assert alter(AlterConfigOpType.APPEND, "cleanup.policy", "delete") is None
    [f] = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    assert f.result(timeout=30)["cleanup.policy"].value == "delete"


def test_partition_count_limits_per_request_and_the_metadata_log_name(broker):
    """One request may add at most 10,000 partitions, all its topics together (Kafka's controller refuses
    more with POLICY_VIOLATION), and `__cluster_metadata` is not a topic: it cannot be created, and Metadata
    answers it as unknown without auto-creating it."""
    a = admin(broker.bootstrap)

    def outcome(futures):
        out = []
        for f in futures.values():
            try:
                f.result(timeout=120)
                out.append(None)
            except KafkaException as e:
                out.append((e.args[0].code(), e.args[0].str()))
        return out

    too_many = "Excessively large number of partitions per request."
    assert outcome(a.create_topics([NewTopic(unique("big"), 10001, 1)])) == [(KafkaError.POLICY_VIOLATION, too_many)]
    halves = [NewTopic(unique("half"), 6000, 1), NewTopic(unique("half"), 6000, 1)]
    assert outcome(a.create_topics(halves)) == [(KafkaError.POLICY_VIOLATION, too_many)] * 2
    assert not {t.topic for t in halves} & topic_names(broker.bootstrap)

    grow = unique("grow")
    create_topic(broker.bootstrap, grow, partitions=1)
    assert outcome(a.create_partitions([NewPartitions(grow, 10002)])) == [
        (KafkaError.POLICY_VIOLATION, "Excessively large number of additional partitions per request.")]

    assert outcome(a.create_topics([NewTopic("__cluster_metadata", 1, 1)])) == [
        (KafkaError.INVALID_REQUEST, "Creation of internal topic __cluster_metadata is prohibited.")]
    p = Producer({"bootstrap.servers": broker.bootstrap, "allow.auto.create.topics": True})
    md = p.list_topics(topic="__cluster_metadata", timeout=10).topics["__cluster_metadata"]
    assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert "__cluster_metadata" not in topic_names(broker.bootstrap)


def test_segment_bytes_below_one_mebibyte_is_refused(broker):
    """Kafka 4's floor for segment.bytes is 1 MiB: a smaller segment could not hold a batch of the default
    maximum size, so every produce would fail."""
    a = admin(broker.bootstrap)
    for value in ("14", "1048575"):
        t = unique("segbytes")
        err = error_of(a.create_topics([NewTopic(t, 1, 1, config={"segment.bytes": value})])[t])
        assert err.code() == KafkaError.INVALID_CONFIG, err
        assert "segment.bytes" in err.str() and "1048576" in err.str(), err
    ok = unique("segbytes")
    a.create_topics([NewTopic(ok, 1, 1, config={"segment.bytes": "1048576"})])[ok].result(timeout=60)
