"""Just enough of the Kafka wire protocol to talk to a broker over a raw socket.

The harness uses it for its readiness probe (a real Metadata request, not just an open port) and
the bad-input tests use it to send requests no well-behaved client would send. Real clients are
used for everything else.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

API_METADATA = 3
API_API_VERSIONS = 18

ERROR_NONE = 0
ERROR_UNSUPPORTED_VERSION = 35


class ProtocolError(Exception):
    pass


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(s: str) -> bytes:
    raw = s.encode()
    return _uvarint(len(raw) + 1) + raw


def request_header(api_key: int, api_version: int, correlation_id: int, client_id: str | None, flexible: bool) -> bytes:
    """Request header v1, or v2 (v1 plus an empty tagged-field section) for flexible versions."""
    header = struct.pack(">hhi", api_key, api_version, correlation_id) + _string(client_id)
    if flexible:
        header += _uvarint(0)
    return header


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"response truncated: need {n} bytes at {self.pos}, have {len(self.data)}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode()

    def uvarint(self) -> int:
        shift = 0
        value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if size < 0 or size > 64 * 1024 * 1024:
        raise ProtocolError(f"implausible response size {size}")
    return recv_exact(sock, size)


def connect(bootstrap: str, timeout: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return sock


@dataclass
class BrokerInfo:
    node_id: int
    host: str
    port: int


def metadata(sock: socket.socket, correlation_id: int = 1) -> tuple[list[BrokerInfo], list[str]]:
    """Metadata v1 for all topics: returns (brokers, topic names)."""
    body = struct.pack(">i", -1)  # null topic array = all topics
    sock.sendall(frame(request_header(API_METADATA, 1, correlation_id, "sluice-e2e-probe", False) + body))
    r = Reader(recv_frame(sock))
    if r.int32() != correlation_id:
        raise ProtocolError("correlation id mismatch")
    brokers = []
    for _ in range(r.int32()):
        node_id = r.int32()
        host = r.string() or ""
        port = r.int32()
        r.string()  # rack
        brokers.append(BrokerInfo(node_id, host, port))
    r.int32()  # controller id
    topics = []
    for _ in range(r.int32()):
        r.int16()  # error code
        name = r.string()
        r.int8()  # is_internal
        for _ in range(r.int32()):
            r.int16()
            r.int32()
            r.int32()
            for _ in range(r.int32()):
                r.int32()
            for _ in range(r.int32()):
                r.int32()
        if name is not None:
            topics.append(name)
    return brokers, topics


@dataclass
class ApiVersionsResult:
    error_code: int
    api_keys: dict[int, tuple[int, int]]  # api key -> (min version, max version)


def api_versions(sock: socket.socket, version: int, correlation_id: int = 7) -> ApiVersionsResult:
    """Send ApiVersions at any version (even one the broker does not support) and parse the answer.

    Versions >= 3 are flexible (header v2, compact client software name/version in the body), and
    that is how a newer client than the broker sends them. The response header is always v0 for
    ApiVersions; an error response is always encoded as v0 (KIP-511) so the client can read it.
    """
    flexible = version >= 3
    if flexible:
        body = _compact_string("sluice-e2e") + _compact_string("1.0") + _uvarint(0)
    else:
        body = b""
    header = request_header(API_API_VERSIONS, version, correlation_id, "sluice-e2e", flexible)
    sock.sendall(frame(header + body))
    r = Reader(recv_frame(sock))
    if r.int32() != correlation_id:
        raise ProtocolError("correlation id mismatch")
    error = r.int16()
    keys: dict[int, tuple[int, int]] = {}
    if flexible and error == ERROR_NONE:
        for _ in range(r.uvarint() - 1):
            key, lo, hi = r.int16(), r.int16(), r.int16()
            r.skip_tagged_fields()
            keys[key] = (lo, hi)
    else:
        for _ in range(r.int32()):
            key, lo, hi = r.int16(), r.int16(), r.int16()
            keys[key] = (lo, hi)
    return ApiVersionsResult(error, keys)


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closes (EOF or reset) within `timeout` without sending anything first."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return data == b""
