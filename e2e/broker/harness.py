"""Starts and stops the broker under test: Sluice (`sluice-broker`) or Apache Kafka, the peer whose
behaviour Sluice must match. The tests only see the `Broker` interface, so every test runs unchanged
against both; `SLUICE_PEER` (sluice | kafka) picks the implementation.
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import kwire

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"

START_TIMEOUT_S = float(os.environ.get("E2E_BROKER_START_TIMEOUT", "90"))
STOP_TIMEOUT_S = 45.0

PEERS = ("sluice", "kafka")


def peer_name() -> str:
    peer = os.environ.get("SLUICE_PEER", "sluice")
    if peer not in PEERS:
        raise ValueError(f"SLUICE_PEER must be one of {PEERS}, not {peer!r}")
    return peer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerError(Exception):
    pass


class Broker:
    """A broker process on free loopback ports with its own temporary data directory.

    `restart()` keeps ports and data dir, so clients and on-disk state survive it. All output of the
    process (across restarts) goes to `log_path`.
    """

    kind = "abstract"
    # A node of a multi-node cluster (e2e/cluster) sets these on the instance; a lone broker is node 1
    # and Kafka formats its storage with a fresh cluster id.
    node_id = 1
    cluster_id: str | None = None
    # `process.roles`: e2e/cluster also runs controller-only and broker-only nodes. A controller-only node
    # has no client listener (`bootstrap` names nothing that answers Metadata).
    roles = "broker,controller"
    # Kafka's format flags for a controller of a dynamic quorum (`--standalone`, `--no-initial-controllers`):
    # Kafka's StorageTool takes them before the first start, Sluice's binary on every start.
    format_flags: tuple[str, ...] = ()
    # The address every listener binds and advertises. e2e/cluster's `Cluster(netns=True)` gives each node its
    # own network namespace (`netns`, which the process is started in through `ip netns exec`) and address there.
    host = "127.0.0.1"
    netns: str | None = None

    def __init__(self, name: str, log_dir: Path, extra_config: dict[str, object] | None = None,
                 secure: str | None = None):
        self.name = name
        self.extra_config = {k: str(v) for k, v in (extra_config or {}).items()}
        self.port = free_port()
        # With `secure` (SSL, SASL_PLAINTEXT or SASL_SSL), a second client listener of that name and security
        # protocol beside PLAINTEXT, which stays first: the harness's readiness probe and inter-broker traffic
        # use it.
        self.secure = secure
        self.secure_port = free_port() if secure else None
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"sluice-e2e-{name}-"))
        self.data_dir = self.work_dir / "data"
        self.props_path = self.work_dir / "server.properties"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.log_path.write_text("")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- the interface the tests use -------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        assert self.secure_port is not None, "the broker has no second listener"
        return f"localhost:{self.secure_port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BrokerError("broker is not running")
        return self.proc.pid

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S, wait: bool = True) -> None:
        """Start the process; with `wait` (the default) return once it is ready. A cluster node cannot be
        ready before a majority of the quorum runs, so e2e/cluster starts nodes with wait=False."""
        if self.is_alive():
            raise BrokerError("broker already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.props_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        self._note(f"starting {self.kind} broker (start #{self.starts + 1}) on {self.bootstrap}")
        self._prepare()
        with open(self.log_path, "ab") as log:
            # `ip netns exec` enters the namespace and execs the command (no fork): the pid is the broker's.
            netns = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.proc = subprocess.Popen(
                [*netns, *self.command()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=self.env(),
                start_new_session=True,
            )
        self.starts += 1
        if wait:
            self._wait_ready(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM and wait for a clean exit; a broker that ignores SIGTERM is killed and reported."""
        if not self.is_alive():
            self.proc = None
            return
        assert self.proc is not None
        self._note("stopping with SIGTERM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            raise BrokerError(f"broker did not exit within {timeout}s of SIGTERM (killed)\n{self.log_tail()}")
        self._note(f"exited with status {rc}")
        self.proc = None

    def kill9(self) -> None:
        if not self.is_alive():
            raise BrokerError("kill9: broker is not running")
        assert self.proc is not None
        self._note("killing with SIGKILL")
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        try:
            if self.is_alive():
                self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def log_tail(self, lines: int = 120) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    # -- what differs between implementations ----------------------------------------------------

    def properties(self) -> dict[str, str]:
        listeners = []
        if "broker" in self.roles:
            listeners.append(f"PLAINTEXT://{self.host}:{self.port}")
        if "controller" in self.roles:
            listeners.append(f"CONTROLLER://{self.host}:{self.controller_port}")
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        advertised = f"PLAINTEXT://{self.host}:{self.port}"
        if self.secure_port is not None and "broker" in self.roles:
            listeners.insert(1, f"{self.secure}://{self.host}:{self.secure_port}")
            advertised += f",{self.secure}://localhost:{self.secure_port}"
            protocols += f",{self.secure}:{self.secure}"
        props = {
            "node.id": str(self.node_id),
            "process.roles": self.roles,
            "listeners": ",".join(listeners),
            "listener.security.protocol.map": protocols,
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
            "offsets.topic.replication.factor": "1",
            **({"advertised.listeners": advertised} if "broker" in self.roles else {}),
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        # A dynamic quorum (KIP-853) names its controllers by bootstrap servers instead of voters, and each
        # controller advertises its controller listener, which is how the others reach it.
        if "controller.quorum.bootstrap.servers" in self.extra_config:
            if "controller" in self.roles:
                props["advertised.listeners"] = ",".join(
                    [*([f"PLAINTEXT://{self.host}:{self.port}"] if "broker" in self.roles else []),
                     f"CONTROLLER://{self.host}:{self.controller_port}"])
        else:
            props["controller.quorum.voters"] = f"1@{self.host}:{self.controller_port}"
        props.update(self.extra_config)
        return props

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def _prepare(self) -> None:
        """Anything needed before the first start (Kafka formats its storage; Sluice does it itself)."""

    # -- internals -------------------------------------------------------------------------------

    def _note(self, msg: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"=== e2e harness {time.strftime('%H:%M:%S')}: {msg} ===\n")

    def _wait_ready(self, timeout: float) -> None:
        """Ready means a Metadata request is answered and lists this broker, not just an open port."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise BrokerError(f"{self.kind} broker exited with status {rc} during start-up\n{self.log_tail()}")
            try:
                with kwire.connect(self.bootstrap, timeout=2.0) as sock:
                    brokers, _ = kwire.metadata(sock)
                if any(b.node_id == self.node_id and b.port == self.port for b in brokers):
                    self._note("ready")
                    return
                last_error = BrokerError(f"metadata lists brokers {brokers}, not node {self.node_id}")
            except (OSError, kwire.ProtocolError) as e:
                last_error = e
            time.sleep(0.2)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        raise BrokerError(
            f"{self.kind} broker not ready within {timeout}s (last probe error: {last_error!r})\n{self.log_tail()}"
        )


class SluiceBroker(Broker):
    kind = "sluice"

    def binary(self) -> Path:
        path = Path(os.environ.get("SLUICE_BROKER_BIN", REPO_ROOT / "target" / "release" / "sluice-broker"))
        if not path.is_file():
            raise BrokerError(f"sluice broker binary not found at {path} (build it: cargo build --release -p sluice-server)")
        return path

    def command(self) -> list[str]:
        return [str(self.binary()), str(self.props_path), *self.format_flags]


class KafkaBroker(Broker):
    kind = "kafka"
    heap = "1g"  # -Xmx of the broker JVM (e2e/cluster runs three at once and uses less)

    def properties(self) -> dict[str, str]:
        props = super().properties()
        props.setdefault("transaction.state.log.replication.factor", "1")
        props.setdefault("transaction.state.log.min.isr", "1")
        # Kafka waits 30 s after start-up before its first retention/flush checks (a testing-only
        # knob); the suite expects log.retention.check.interval.ms to be the only delay.
        props.setdefault("log.initial.task.delay.ms", "0")
        return props

    @staticmethod
    def classpath() -> str:
        override = os.environ.get("KAFKA_LIBS")
        libs = [Path(override)] if override else sorted(Path(p) for p in glob.glob(str(CACHE_DIR / "kafka-*" / "libs")))
        if not libs or not any(libs[-1].glob("kafka_2.13-*.jar")):
            raise BrokerError("Apache Kafka jars not found under .cache/kafka-*/libs (run scripts/install-e2e --peer kafka)")
        return str(libs[-1] / "*")

    def _java(self, main_class: str, *args: str, heap: str = "1g") -> list[str]:
        log4j = self.work_dir / "log4j2.properties"
        return [
            "java",
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self.classpath(),
            main_class,
            *args,
        ]

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.props_path), heap=self.heap)

    def thread_dump(self) -> None:
        """Append the JVM's thread dump (jstack) to the node's log: what a node that does not stop waits on."""
        if not self.is_alive():
            return
        self._note("thread dump (jstack)")
        with open(self.log_path, "ab") as log:
            try:
                subprocess.run(["jstack", str(self.pid)], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, timeout=20)
            except (OSError, subprocess.TimeoutExpired) as e:
                log.write(f"jstack failed: {e!r}\n".encode())

    def _prepare(self) -> None:
        (self.work_dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.console.type = Console\n"
            "appender.console.name = STDOUT\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        )
        if (self.data_dir / "meta.properties").exists():
            return
        # `kafka-storage.sh format -t ID -c server.properties`, with the format flags of a dynamic quorum's
        # controller; a static quorum (controller.quorum.voters) takes none.
        cluster_id = self.cluster_id or random_cluster_id()
        cmd = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.props_path),
                         *self.format_flags, heap="256m")
        with open(self.log_path, "ab") as log:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=120).returncode
        if rc != 0:
            raise BrokerError(f"kafka storage format failed with status {rc}\n{self.log_tail()}")


def run_kafka_tool(main_class: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """One of Kafka's own command-line tools (`main_class`, from the jars the harness resolves, against either
    peer), quiet and in a small JVM; the finished process whatever its exit status, stdout and stderr as text."""
    log4j = CACHE_DIR / "tool-log4j2.properties"
    if not log4j.exists():
        log4j.write_text("status = error\nrootLogger.level = ERROR\n")
    cmd = ["java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={log4j}",
           "-cp", KafkaBroker.classpath(), main_class, *args]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # A hung tool says nothing on its own: keep what it printed and where each of its threads waits.
            dump = subprocess.run(["jstack", str(proc.pid)], capture_output=True, text=True, timeout=30).stdout
            proc.kill()
            out, err = proc.communicate()
            raise ToolTimeout(f"{main_class.rsplit('.', 1)[-1]} {' '.join(args)} still running after {timeout}s; "
                              f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}\nthreads:\n{_admin_threads(dump)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class ToolTimeout(Exception):
    """One of Kafka's tools did not finish in time; the message holds its output and a thread dump."""


def _admin_threads(dump: str) -> str:
    """The stacks of a thread dump that show what a Kafka tool waits on: main and the admin client's."""
    keep = [t for t in dump.split("\n\n") if t.startswith('"main"') or "kafka-admin-client" in t]
    return "\n\n".join(keep)[-6000:] or dump[-6000:]


def random_cluster_id() -> str:
    """Kafka's Uuid.randomUuid().toString(): URL-safe base64 of 16 bytes, never starting with '-'."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


def make_broker(name: str, log_dir: Path, extra_config: dict[str, object] | None = None,
                secure: str | None = None) -> Broker:
    cls = KafkaBroker if peer_name() == "kafka" else SluiceBroker
    return cls(name, log_dir, extra_config, secure=secure)
