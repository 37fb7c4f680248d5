"""Fixtures for the multi-node suite.

- `cluster_factory(size=3, start=True, node_ids=None, **kw)`: a dedicated `cluster_harness.Cluster`
  for this test, started (all nodes, or just `node_ids`) and ready; stopped and deleted afterwards (with
  its network namespaces, for `netns=True`).
- `trial`: a test that takes it runs `E2E_FAULT_TRIALS` times (default 1), as `test[trial1]`,
  `test[trial2]`, ... (scripts/soak replication). With `E2E_FAULT_REPORT=FILE` each such run's outcome is
  appended to FILE as a JSON line, beside the checker's counts (replicated_load.check).

Node logs: `$E2E_LOG_DIR/cluster/<test>/node-<i>.log` (default E2E_LOG_DIR: .cache/e2e-logs/<peer>).
Only the `cluster/` part is cleared at the start, so the e2e/broker logs of the same run stay. A failing
test shows the tail of each node's log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

import cluster_harness
import harness

_all_clusters: list[cluster_harness.Cluster] = []


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


def pytest_configure(config):
    # A SIGTERM (e.g. from `timeout` in scripts/test) becomes KeyboardInterrupt, so fixtures tear
    # down and no node is left running.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


def pytest_unconfigure(config):
    for c in _all_clusters:
        for n in c.nodes:
            if n.is_alive() and n.proc is not None:
                n.proc.kill()
        if c.network is not None:
            c.network.teardown()


def pytest_generate_tests(metafunc):
    if "trial" in metafunc.fixturenames:
        trials = int(os.environ.get("E2E_FAULT_TRIALS", "1"))
        metafunc.parametrize("trial", range(1, trials + 1), ids=lambda t: f"trial{t}")


def pytest_report_header(config):
    peer = harness.peer_name()
    try:
        tools = harness.KafkaBroker.classpath()
    except harness.BrokerError as e:
        tools = str(e)
    where = tools if peer == "kafka" else os.environ.get("SLUICE_BROKER_BIN", str(harness.REPO_ROOT / "target/release/sluice-broker"))
    return [f"cluster under test (SLUICE_PEER): {peer} [{where}]", f"kafka-metadata-quorum from: {tools}"]


@pytest.fixture(scope="session")
def peer() -> str:
    return harness.peer_name()


@pytest.fixture(scope="session")
def log_dir() -> Path:
    base = Path(os.environ.get("E2E_LOG_DIR", harness.CACHE_DIR / "e2e-logs" / harness.peer_name()))
    path = base / "cluster"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def cluster_factory(request, log_dir):
    made: list[cluster_harness.Cluster] = []

    def make(size: int = 3, start: bool = True, node_ids: list[int] | None = None, **kw) -> cluster_harness.Cluster:
        name = _safe(request.node.name) + (f"-{len(made)}" if made else "")
        c = cluster_harness.Cluster(name, log_dir / name, size=size, **kw)
        made.append(c)
        _all_clusters.append(c)
        request.node._e2e_clusters = getattr(request.node, "_e2e_clusters", []) + [c]
        if start:
            c.start(node_ids)
        return c

    yield make
    errors = []
    for c in made:
        errors += c.cleanup()
    assert not errors, "\n".join(errors)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    trial = getattr(item, "callspec", None) and item.callspec.params.get("trial")
    path = os.environ.get("E2E_FAULT_REPORT")
    if path and trial and (report.when == "call" or report.failed):
        with open(path, "a") as f:
            f.write(json.dumps({"case": item.originalname, "trial": trial, "when": report.when,
                                "outcome": report.outcome, "seconds": round(report.duration, 1)}) + "\n")
    if report.failed:
        for c in getattr(item, "_e2e_clusters", []):
            for n in c.nodes:
                report.sections.append((f"node log: {n.log_path}", n.log_tail(40)))
    return report
