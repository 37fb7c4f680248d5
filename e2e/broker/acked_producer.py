"""A producer process for the kill -9 test: confluent-kafka with acks=all and idempotence, sending
numbered values round-robin to explicit partitions and appending every acknowledged message to a
file as "partition offset value" (flushed at once, so the file survives whatever happens to us).

Runs until SIGTERM, then flushes what is in flight and exits.

usage: acked_producer.py BOOTSTRAP TOPIC PARTITIONS ACK_FILE
"""

import signal
import sys
import time

from confluent_kafka import Producer

# Paced so the backlog built up while the broker is down stays small enough to read back quickly.
RATE_PER_S = 2000


def main() -> int:
    bootstrap, topic, partitions, ack_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    acks = open(ack_path, "a", buffering=1)
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # Long enough to ride out the broker being down and restarted.
            "message.timeout.ms": 120000,
            "reconnect.backoff.max.ms": 500,
        }
    )

    def on_delivery(err, msg):
        if err is None:
            acks.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        else:
            acks.write(f"ERR {msg.value().decode()} {err}\n")

    seq = [0] * partitions
    n = 0
    started = time.monotonic()
    while not stop:
        if n >= RATE_PER_S * (time.monotonic() - started):
            p.poll(0.01)
            continue
        part = n % partitions
        value = f"p{part}-{seq[part]}"
        try:
            p.produce(topic, value=value.encode(), partition=part, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.1)
            continue
        seq[part] += 1
        n += 1
        p.poll(0)
    left = p.flush(60)
    acks.write(f"END {left} unflushed\n")
    acks.close()
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
