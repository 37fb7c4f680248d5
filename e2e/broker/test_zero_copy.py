"""Zero-copy fetch: the bytes a consumer fetches leave the broker through sendfile(2), straight from
the page cache to the socket, and are not read into the broker's memory first. Measured with strace
on the live broker process while one consumer reads ~200 MB.

Sluice-only (README promise); against Apache Kafka it is skipped. E2E_ZERO_COPY_ON_KAFKA=1 runs it
against Kafka anyway, which also uses sendfile for plaintext fetches: that is how this test itself
was checked.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from clients import create_topic, produce, read_partitions, unique, wait_until

VALUE_SIZE = 100_000
MESSAGES = 2_000  # ~200 MB
READ_SYSCALLS = ("read", "pread64", "readv", "preadv", "preadv2", "recvfrom", "recvmsg")
TRACED = READ_SYSCALLS + ("sendfile",)

# "1234  name(args) = 42", "[pid 1234] name(...", "1234  <... name resumed> ...) = 42"
SYSCALL_LINE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(?:<\.\.\. (\w+) resumed>|(\w+)\()")
RESULT = re.compile(r"\)\s+=\s+(-?\d+)")


def syscall_bytes(trace: str) -> dict[str, int]:
    """Total of the (non-negative) return values per syscall name: the bytes each moved."""
    totals = {name: 0 for name in TRACED}
    for line in trace.splitlines():
        m = SYSCALL_LINE.match(line)
        if not m or "<unfinished ...>" in line:
            continue
        name = m.group(1) or m.group(2)
        r = RESULT.search(line)
        if name in totals and r and int(r.group(1)) > 0:
            totals[name] += int(r.group(1))
    return totals


def test_syscall_parser_counts_completed_and_resumed_calls():
    trace = "\n".join([
        "101   sendfile(12, 34, [0] => [65536], 65536) = 65536",
        "[pid   102] read(7, \"\\0\\0\", 8192) = 2",
        "103   sendfile(12, 34, [65536], 1048576 <unfinished ...>",
        "103   <... sendfile resumed> => [1114112]) = 1048576",
        "104   recvfrom(9, 0x7f, 4096, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)",
        "105   pread64(20, \"x\", 100, 0) = 100",
    ])
    totals = syscall_bytes(trace)
    assert totals["sendfile"] == 65536 + 1048576
    assert totals["read"] == 2 and totals["pread64"] == 100 and totals["recvfrom"] == 0


@pytest.fixture
def zero_copy_broker(peer, broker_factory):
    if peer != "sluice" and os.environ.get("E2E_ZERO_COPY_ON_KAFKA") != "1":
        pytest.skip("zero-copy is Sluice's own promise (README); skipped against Apache Kafka "
                    "(E2E_ZERO_COPY_ON_KAFKA=1 runs it there too)")
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (scripts/install-e2e installs it)")
    return broker_factory()


@pytest.mark.timeout(240)
def test_fetch_uses_sendfile_not_read(zero_copy_broker, tmp_path):
    b = zero_copy_broker
    topic = unique("zerocopy")
    create_topic(b.bootstrap, topic, partitions=1)
    value = os.urandom(VALUE_SIZE)
    produce(b.bootstrap, topic, [(None, value, 0)] * MESSAGES,
            conf={"compression.type": "none", "linger.ms": 20, "batch.size": 1_000_000}, timeout=120)
    log_bytes = sum(f.stat().st_size for f in b.partition_dir(topic, 0).glob("*.log"))
    assert log_bytes >= VALUE_SIZE * MESSAGES

    trace_path, err_path = tmp_path / "strace.txt", tmp_path / "strace.err"
    with open(err_path, "w") as err:
        strace = subprocess.Popen(
            ["strace", "-f", "-e", "trace=" + ",".join(TRACED), "-e", "signal=none", "-s", "0",
             "-o", str(trace_path), "-p", str(b.pid)],
            stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        wait_until(lambda: "attached" in err_path.read_text() or strace.poll() is not None, 30, "strace to attach")
        assert strace.poll() is None, f"strace could not attach (ptrace allowed?): {err_path.read_text()[-2000:]}"
        time.sleep(0.5)  # let strace finish attaching to every thread
        got = read_partitions(b.bootstrap, topic, [0], timeout=180,
                              conf={"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    finally:
        strace.send_signal(signal.SIGINT)  # detaches, leaving the broker running
        try:
            strace.wait(30)
        except subprocess.TimeoutExpired:
            strace.kill()
            strace.wait(10)
    assert len(got) == MESSAGES and all(m.value == value for m in got)
    assert b.is_alive()

    totals = syscall_bytes(trace_path.read_text(errors="replace"))
    sent = totals["sendfile"]
    read_in = sum(totals[name] for name in READ_SYSCALLS)
    summary = f"log {log_bytes} B, sendfile {sent} B, read-family {read_in} B {totals}"
    assert sent >= 0.9 * log_bytes, f"fetched data did not go out through sendfile: {summary}"
    assert read_in < 0.05 * log_bytes, f"the broker read fetched data into memory: {summary}"
