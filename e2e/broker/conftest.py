"""Fixtures for the real-client suite.

- `broker`: a broker shared by the tests that need nothing special (each test uses its own topics).
- `broker_factory`: a dedicated broker per call, for tests that restart or kill it or that need
  broker-level `extra_config`; it is cleaned up after the test.

Every broker's output is kept under the log dir (`$E2E_LOG_DIR`, default .cache/e2e-logs/<peer>/):
dedicated brokers get a file named after the test, and the slice of the shared broker's log written
during a test is copied to tests/<test>.log. A failing test also gets its brokers' log tails in the
report.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

import harness


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


_all_brokers: list[harness.Broker] = []


def pytest_configure(config):
    # A SIGTERM (e.g. from `timeout` in scripts/test) becomes KeyboardInterrupt, so fixtures tear
    # down and no broker is left running.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


def pytest_unconfigure(config):
    for b in _all_brokers:
        if b.is_alive() and b.proc is not None:
            b.proc.kill()


def pytest_report_header(config):
    peer = harness.peer_name()
    if peer == "kafka":
        try:
            where = harness.KafkaBroker.classpath()
        except harness.BrokerError as e:
            where = str(e)
    else:
        where = os.environ.get("SLUICE_BROKER_BIN", str(harness.REPO_ROOT / "target/release/sluice-broker"))
    return [f"broker under test (SLUICE_PEER): {peer} [{where}]"]


@pytest.fixture(scope="session")
def peer() -> str:
    return harness.peer_name()


@pytest.fixture(scope="session")
def log_dir() -> Path:
    path = Path(os.environ.get("E2E_LOG_DIR", harness.CACHE_DIR / "e2e-logs" / harness.peer_name()))
    shutil.rmtree(path, ignore_errors=True)
    (path / "tests").mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def _shared_broker(log_dir):
    b = harness.make_broker("shared", log_dir)
    _all_brokers.append(b)
    b.start()
    yield b
    b.cleanup()


@pytest.fixture
def broker(_shared_broker, request, log_dir):
    """The shared broker; the test fails if it is no longer running afterwards."""
    b = _shared_broker
    if not b.is_alive():
        # An earlier test took it down (and failed for it); don't let that cascade.
        b.start()
    request.node._e2e_brokers = getattr(request.node, "_e2e_brokers", []) + [b]
    start = b.log_path.stat().st_size
    yield b
    with open(b.log_path, "rb") as f:
        f.seek(start)
        (log_dir / "tests" / f"{_safe(request.node.name)}.log").write_bytes(f.read())
    assert b.is_alive(), f"the shared broker died during this test\n{b.log_tail()}"


@pytest.fixture
def broker_factory(request, log_dir):
    """make(extra_config=None, start=True, secure=None) -> a dedicated, started broker for this test (with
    `secure`, one of SSL, SASL_PLAINTEXT and SASL_SSL, also a listener of that protocol at `secure_bootstrap`)."""
    made: list[harness.Broker] = []

    def make(extra_config: dict[str, object] | None = None, start: bool = True,
             secure: str | None = None) -> harness.Broker:
        name = _safe(request.node.name) + (f"-{len(made)}" if made else "")
        b = harness.make_broker(name, log_dir, extra_config, secure=secure)
        made.append(b)
        _all_brokers.append(b)
        request.node._e2e_brokers = getattr(request.node, "_e2e_brokers", []) + [b]
        if start:
            b.start()
        return b

    yield make
    errors = []
    for b in made:
        try:
            b.cleanup()
        except harness.BrokerError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for b in getattr(item, "_e2e_brokers", []):
            report.sections.append((f"broker log: {b.name}", b.log_tail(60)))
    return report
