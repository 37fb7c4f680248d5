"""Cluster-wide log defaults changed while the broker runs (Kafka's dynamic broker configs): `kafka-configs
--entity-type brokers --entity-default --alter`, and confluent-kafka's AdminClient on broker "1".

The cluster default goes through Kafka's own tool because librdkafka cannot name it: it refuses a BROKER
ConfigResource with an empty name ("Invalid ConfigResource") before sending anything. Kafka 4.4 answers a bad
value and a key that is not dynamic alike with INVALID_REQUEST (42), which the tool reports as
InvalidRequestException.
"""

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

from clients import admin, create_topic, kafka_configs, unique, wait_until

LIMIT = 100_000
SMALL = 50_000
BIG = 150_000
MESSAGE_TOO_LARGE = 10
INVALID_REQUEST = 42
DYNAMIC_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
DYNAMIC_BROKER = ConfigSource.DYNAMIC_BROKER_CONFIG.value
DYNAMIC_DEFAULT_BROKER = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value


@pytest.fixture
def dedicated(broker_factory):
    """A broker of its own: cluster-wide defaults would reach the shared broker's other tests."""
    return broker_factory()


def send(bootstrap: str, topic: str, size: int) -> KafkaError | None:
    """Produces one record of `size` value bytes, never retried; the delivery error, or None."""
    # The client's own limit is far above the broker's, so only the broker can refuse.
    p = Producer({"bootstrap.servers": bootstrap, "retries": 0, "compression.type": "none", "linger.ms": 0,
                  "message.max.bytes": 1_000_000})
    reports = []
    p.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1
    return reports[0]


def topic_config(bootstrap: str, topic: str, key: str) -> tuple[str, int]:
    a = admin(bootstrap)  # held until the answer is in: a client collected early fails its requests
    [f] = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    entry = f.result(timeout=30)[key]
    return entry.value, entry.source


def alter_cluster_default(bootstrap: str, *args: str):
    return kafka_configs(bootstrap, "--entity-type", "brokers", "--entity-default", "--alter", *args)


def alter_broker(bootstrap: str, broker_id: int, op: AlterConfigOpType, key: str, value: str = ""):
    """IncrementalAlterConfigs on one broker through the AdminClient; raises KafkaException if refused."""
    res = ConfigResource(ResourceType.BROKER, str(broker_id),
                         incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
    a = admin(bootstrap)
    for f in a.incremental_alter_configs([res]).values():
        f.result(timeout=30)


def refusal(proc) -> str:
    """The broker's refusal as the tool prints it (the line naming the exception, not the echoed arguments)."""
    assert proc.returncode != 0, f"accepted:\n{proc.stdout}"
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "Exception:" in line]
    assert lines, proc.stdout + proc.stderr
    return lines[-1]


def test_message_max_bytes_as_a_cluster_default_applies_to_an_existing_topic_at_once(dedicated):
    b = dedicated
    topic = unique("dyn-size")
    create_topic(b.bootstrap, topic)
    pid = b.pid
    default = topic_config(b.bootstrap, topic, "max.message.bytes")
    assert send(b.bootstrap, topic, BIG) is None

    proc = alter_cluster_default(b.bootstrap, "--add-config", f"message.max.bytes={LIMIT}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Kafka applies broker config changes asynchronously: wait until the topic reports it.
    wait_until(lambda: topic_config(b.bootstrap, topic, "max.message.bytes") == (str(LIMIT), DYNAMIC_DEFAULT_BROKER),
               30, "the topic to report the cluster default")
    err = send(b.bootstrap, topic, BIG)
    assert err is not None, "a record over the new cluster default was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE == MESSAGE_TOO_LARGE
    assert send(b.bootstrap, topic, SMALL) is None

    proc = alter_cluster_default(b.bootstrap, "--delete-config", "message.max.bytes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_until(lambda: topic_config(b.bootstrap, topic, "max.message.bytes") == default, 30,
               "the topic to report the static default again")
    assert send(b.bootstrap, topic, BIG) is None
    assert b.pid == pid, "the broker was restarted"


def test_a_topic_describes_the_dynamic_default_it_runs_with_and_its_source(dedicated):
    b = dedicated
    plain, overridden = unique("dyn-plain"), unique("dyn-override")
    create_topic(b.bootstrap, plain)
    create_topic(b.bootstrap, overridden, config={"retention.ms": "3600000"})
    before = {k: topic_config(b.bootstrap, plain, k) for k in ("retention.ms", "retention.bytes")}

    proc = alter_cluster_default(b.bootstrap, "--add-config", "log.retention.ms=654321")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alter_broker(b.bootstrap, b.node_id, AlterConfigOpType.SET, "log.retention.bytes", "123456789")

    wait_until(lambda: topic_config(b.bootstrap, plain, "retention.ms") == ("654321", DYNAMIC_DEFAULT_BROKER), 30,
               "retention.ms from the cluster default")
    wait_until(lambda: topic_config(b.bootstrap, plain, "retention.bytes") == ("123456789", DYNAMIC_BROKER), 30,
               "retention.bytes from this broker's own dynamic config")
    assert topic_config(b.bootstrap, overridden, "retention.ms") == ("3600000", DYNAMIC_TOPIC)

    a = admin(b.bootstrap)
    [f] = a.describe_configs([ConfigResource(ResourceType.BROKER, str(b.node_id))]).values()
    described = f.result(timeout=30)
    for key, value, source in [("log.retention.ms", "654321", DYNAMIC_DEFAULT_BROKER),
                               ("log.retention.bytes", "123456789", DYNAMIC_BROKER)]:
        e = described[key]
        assert (e.value, e.source, e.is_read_only) == (value, source, False), key

    proc = alter_cluster_default(b.bootstrap, "--delete-config", "log.retention.ms")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alter_broker(b.bootstrap, b.node_id, AlterConfigOpType.DELETE, "log.retention.bytes")
    wait_until(lambda: {k: topic_config(b.bootstrap, plain, k) for k in before} == before, 30,
               "the topic's settings as before")


@pytest.mark.parametrize("setting", ["log.retention.ms=abc", "log.segment.bytes=1000", "min.insync.replicas=0"])
def test_an_invalid_value_is_refused_naming_the_key(dedicated, setting):
    b = dedicated
    key, value = setting.split("=")
    topic = unique("dyn-bad")
    create_topic(b.bootstrap, topic)
    before = topic_config(b.bootstrap, topic, key.removeprefix("log."))

    line = refusal(alter_cluster_default(b.bootstrap, "--add-config", setting))
    assert "InvalidRequestException" in line and key in line, line
    with pytest.raises(KafkaException) as e:
        alter_broker(b.bootstrap, b.node_id, AlterConfigOpType.SET, key, value)
    err = e.value.args[0]
    assert err.code() == KafkaError.INVALID_REQUEST == INVALID_REQUEST
    assert key in err.str()
    assert topic_config(b.bootstrap, topic, key.removeprefix("log.")) == before


@pytest.mark.parametrize("setting", ["log.dirs=/elsewhere", "log.retention.hours=1"])
def test_a_key_that_is_not_dynamic_is_refused(dedicated, setting):
    """`log.retention.hours` too: only a topic config's main broker key (`log.retention.ms`) is dynamic."""
    b = dedicated
    key, value = setting.split("=")
    line = refusal(alter_cluster_default(b.bootstrap, "--add-config", setting))
    assert "InvalidRequestException" in line and key in line, line
    with pytest.raises(KafkaException) as e:
        alter_broker(b.bootstrap, b.node_id, AlterConfigOpType.SET, key, value)
    err = e.value.args[0]
    assert err.code() == INVALID_REQUEST
    assert key in err.str()
