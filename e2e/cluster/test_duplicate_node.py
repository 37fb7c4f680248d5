"""A second process started with the node id of a live broker is refused: it never replaces the live one in
Metadata, and it gives up after `initial.broker.registration.timeout.ms` (Kafka's DUPLICATE_BROKER_REGISTRATION,
answered to every registration while the first broker's session is valid)."""

from __future__ import annotations

import re
import subprocess
import time

import harness
from cluster_harness import metadata, wait_until

REGISTRATION_TIMEOUT_MS = 6000


def test_a_second_process_with_a_live_node_id_is_refused(cluster_factory):
    c = cluster_factory(size=3, brokers=1)
    live = c.node(4)
    want = {4: ("127.0.0.1", live.port)}
    assert metadata(live.bootstrap).brokers == want

    impostor = harness.make_broker("node-4-impostor", c.log_dir)
    impostor.node_id, impostor.roles, impostor.cluster_id = 4, "broker", c.cluster_id
    impostor.extra_config = {**live.extra_config,
                             "initial.broker.registration.timeout.ms": str(REGISTRATION_TIMEOUT_MS)}
    try:
        started = time.monotonic()
        impostor.start(wait=False)
        # It stays out while it tries: the cluster goes on listing the live broker at its own port.
        while impostor.is_alive() and time.monotonic() - started < 60:
            assert metadata(live.bootstrap).brokers == want
            time.sleep(0.5)
        assert impostor.proc is not None
        try:
            rc = impostor.proc.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the second node 4 still runs 60 s after it started\n{impostor.log_tail(40)}")
        gave_up = time.monotonic() - started
        print(f"the second node 4 exited with status {rc} after {gave_up:.1f}s")
        assert rc != 0, impostor.log_tail(40)
        assert gave_up >= REGISTRATION_TIMEOUT_MS / 1000 * 0.9, f"gave up after {gave_up:.1f}s"
        # It says why, naming the id (Kafka: "Unable to register broker 4 because the controller returned error
        # DUPLICATE_BROKER_REGISTRATION").
        log = impostor.log_path.read_text(errors="replace")
        assert re.search(r"\b4\b.*DUPLICATE_BROKER_REGISTRATION", log), impostor.log_tail(40)
        wait_until(lambda: metadata(live.bootstrap).brokers == want, 10, "the live broker still listed")
    finally:
        impostor.cleanup()
