"""A Sluice broker inside scripts/ktls-vm's virtual machine: Debian's kernel, which has kernel TLS (the
machines this runs on boot one without CONFIG_TLS). The host's clients reach it at the guest's address on
a tap device. Its data lives on the guest's tmpfs, so sendfile and mmap work on a local file system; the
host sees it only through the broker.

What happens inside the guest is read through a control directory the guest shares with the host
(e2e/broker/ktls_guest.sh): the guest kernel's /proc/net/tls_stat, and an strace of the broker on request.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from harness import REPO_ROOT, SluiceBroker

GUEST_IP = "10.79.0.2"


def guest_ip(net: int) -> str:
    """The address of the guest `scripts/ktls-vm run --ip NET` starts."""
    return f"10.79.{net}.2"
# Booting under software emulation and starting the broker there takes ~20 s; a loaded CI machine more.
VM_START_TIMEOUT_S = 240.0


class VmSluiceBroker(SluiceBroker):
    """`net`: the machine's network (`--ip`), so several run at once (a cluster: one machine per node, which
    reach each other through the host). `data_on_share`: the data dir stays in the host's work dir (9p),
    so it outlives a restart of the machine and the host can read the segments; otherwise it is the guest's
    tmpfs."""

    kind = "sluice-in-vm"

    def __init__(self, *args, trace_syscalls: tuple[str, ...] = ("sendfile",), net: int = 0,
                 data_on_share: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.ctl = self.work_dir / "ctl"
        self.ctl.mkdir()
        self.trace_syscalls = trace_syscalls
        self.net = net
        self.host = guest_ip(net)
        self.data_on_share = data_on_share

    @property
    def secure_bootstrap(self) -> str:
        assert self.secure_port is not None, "the broker has no second listener"
        return f"{self.host}:{self.secure_port}"

    def properties(self) -> dict[str, str]:
        props = super().properties()
        props["advertised.listeners"] = props["advertised.listeners"].replace("localhost", self.host)
        if not self.data_on_share:
            props["log.dirs"] = "/run/ktls-vm/data"
        return props

    def command(self) -> list[str]:
        return [str(REPO_ROOT / "scripts" / "ktls-vm"), "run", "--ip", str(self.net), "--share", str(self.work_dir), "--",
                "sh", str(REPO_ROOT / "e2e" / "broker" / "ktls_guest.sh"), str(self.ctl),
                ",".join(self.trace_syscalls), *super().command()]

    def start(self, timeout: float = VM_START_TIMEOUT_S, wait: bool = True) -> None:
        super().start(max(timeout, VM_START_TIMEOUT_S), wait)

    def tls_stat(self) -> dict[str, int]:
        """The guest kernel's kTLS counters (TlsTxSw: sessions whose sending the kernel took, and so on)."""
        stat = self.ctl / "tls_stat"
        deadline = time.monotonic() + 10
        while not stat.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # the guest refreshes it every ~0.3 s
        counters = {}
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if value.strip().isdigit():
                counters[name.strip()] = int(value.strip())
        return counters

    def trace(self, timeout: float = 60) -> "_Trace":
        """`with broker.trace() as t: ...` straces the broker in the guest (the syscalls named at
        construction) for the block; `t.text` is the trace afterwards."""
        return _Trace(self, timeout)


class _Trace:
    def __init__(self, broker: VmSluiceBroker, timeout: float):
        self.broker, self.timeout, self.text = broker, timeout, ""

    def _wait(self, name: str) -> None:
        path = self.broker.ctl / name
        deadline = time.monotonic() + self.timeout
        while not path.exists():
            if time.monotonic() > deadline:
                err = self.broker.ctl / "trace.err"
                detail = err.read_text(errors="replace")[-2000:] if err.exists() else "(no strace output)"
                raise TimeoutError(f"the guest did not report {name}: {detail}")
            time.sleep(0.1)

    def __enter__(self) -> "_Trace":
        (self.broker.ctl / "trace-start").touch()
        self._wait("trace-started")
        return self

    def __exit__(self, *exc) -> None:
        (self.broker.ctl / "trace-stop").touch()
        self._wait("trace-done")
        self.text = (self.broker.ctl / "trace").read_text(errors="replace")


def make_vm_broker(name: str, log_dir: Path, extra_config: dict[str, object] | None = None,
                   secure: str | None = None, trace_syscalls: tuple[str, ...] = ("sendfile",)) -> VmSluiceBroker:
    return VmSluiceBroker(name, log_dir, extra_config, secure=secure, trace_syscalls=trace_syscalls)


class ServerRecords:
    """`with ServerRecords(iface, port) as wire: ...` captures what is sent from TCP `port` on network
    device `iface` (an AF_PACKET socket, root), and `wire.records()` splits each connection's stream into
    TLS records: (content type, payload) per record, in order. For the machine's broker, `iface` is its
    tap device (`ktls<net>`); for a broker on the host, `lo`."""

    def __init__(self, iface: str, port: int):
        self.iface, self.port = iface, port
        self.frames: list[bytes] = []
        self._stop = threading.Event()

    def __enter__(self) -> "ServerRecords":
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self._sock.bind((self.iface, 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.frames.append(self._sock.recv(65536))
            except socket.timeout:
                continue

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def streams(self) -> dict[tuple[bytes, int], bytes]:
        """Each connection's bytes from the port, by (client address, client port), reassembled by TCP
        sequence number (a frame seen twice, or retransmitted, counts once)."""
        segments: dict[tuple[bytes, int], dict] = {}
        for frame in self.frames:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            total = int.from_bytes(ip[2:4], "big")
            tcp = ip[ihl:total]
            if int.from_bytes(tcp[0:2], "big") != self.port:
                continue
            seq = int.from_bytes(tcp[4:8], "big")
            data = tcp[(tcp[12] >> 4) * 4:]
            if data:
                # The first segment captured is the connection's first (the capture starts before it).
                segments.setdefault((ip[16:20], int.from_bytes(tcp[2:4], "big")), {"start": seq})[seq] = data
        streams = {}
        for conn, by_seq in segments.items():
            start = by_seq.pop("start")
            out = bytearray()
            # Offsets from the first segment, modulo 2^32: the sequence numbers may wrap.
            for offset, data in sorted(((seq - start) % 2**32, data) for seq, data in by_seq.items()):
                if offset > len(out):
                    break  # a segment the capture missed: the stream ends at the gap
                out[offset:offset + len(data)] = data
            streams[conn] = bytes(out)
        return streams

    def records(self) -> dict[tuple[bytes, int], list[tuple[int, bytes]]]:
        out = {}
        for conn, stream in self.streams().items():
            records, at = [], 0
            while at + 5 <= len(stream):
                length = int.from_bytes(stream[at + 3:at + 5], "big")
                records.append((stream[at], stream[at + 5:at + 5 + length]))
                at += 5 + length
            out[conn] = records
        return out
