"""Byte-rate quotas as Kafka's `kafka-configs` sets them on client ids: a producer and a consumer over their
quota are told to back off (throttle_time_ms, which librdkafka reports through its throttle callback) and
slowed to about the quota, while another client id goes unthrottled; the quota can be described and removed.
The brokers measure over two one-second windows (`quota.window.num=2`) so that a few hundred KB exceed it."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from clients import create_topic, kafka_configs, unique

QUOTA = 100 * 1024  # bytes per second
PAYLOAD = b"q" * 10_000
COUNT = 60  # 600 KB: six seconds' worth at the quota


def produce_all(bootstrap: str, topic: str, client_id: str) -> tuple[float, list[float]]:
    throttles: list[float] = []
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 0, "acks": 1,
                  "batch.size": 20_000, "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    started = time.monotonic()
    failed = []
    for _ in range(COUNT):
        p.produce(topic, PAYLOAD, on_delivery=lambda err, msg: err and failed.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed
    return time.monotonic() - started, throttles


def consume_all(bootstrap: str, topic: str, client_id: str) -> tuple[float, list[float]]:
    throttles: list[float] = []
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": unique("q"),
                  "max.partition.fetch.bytes": 50_000,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    c.assign([TopicPartition(topic, 0, 0)])
    started, got = time.monotonic(), 0
    try:
        while got < COUNT and time.monotonic() - started < 60:
            m = c.poll(1)
            if m is not None and not m.error():
                got += 1
    finally:
        c.close()
    assert got == COUNT
    return time.monotonic() - started, throttles


def test_client_id_byte_rate_quotas_throttle_producers_and_consumers(broker_factory):
    b = broker_factory({"quota.window.num": "2", "quota.window.size.seconds": "1"})
    topic = unique("quota")
    create_topic(b.bootstrap, topic)
    done = kafka_configs(b.bootstrap, "--alter", "--add-config",
                         f"producer_byte_rate={QUOTA},consumer_byte_rate={QUOTA}",
                         "--entity-type", "clients", "--entity-name", "throttled")
    assert done.returncode == 0, done.stderr[-2000:]
    described = kafka_configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "throttled")
    assert "producer_byte_rate=102400" in described.stdout and "consumer_byte_rate=102400" in described.stdout, \
        described.stdout + described.stderr

    free_time, free_throttles = produce_all(b.bootstrap, topic, "free")
    assert not free_throttles, f"a client id without a quota was throttled: {free_throttles}"
    elapsed, throttles = produce_all(b.bootstrap, topic, "throttled")
    assert throttles and max(throttles) > 0, "the producer over its quota was never told to back off"
    # Slowed to about the quota (the first window's worth passes at once): well under three times it.
    assert COUNT * len(PAYLOAD) / elapsed < 3 * QUOTA, (elapsed, throttles)

    elapsed, throttles = consume_all(b.bootstrap, topic, "throttled")
    assert throttles and max(throttles) > 0, "the consumer over its quota was never told to back off"

    done = kafka_configs(b.bootstrap, "--alter", "--delete-config", "producer_byte_rate,consumer_byte_rate",
                         "--entity-type", "clients", "--entity-name", "throttled")
    assert done.returncode == 0, done.stderr[-2000:]
    described = kafka_configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "throttled")
    assert "byte_rate" not in described.stdout, described.stdout
