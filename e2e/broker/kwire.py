"""Just enough of the Kafka wire protocol to talk to a broker over a raw socket.

The harness uses it for its readiness probe (a real Metadata request, not just an open port) and
the bad-input tests use it to send requests no well-behaved client would send. Real clients are
used for everything else.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18

ERROR_NONE = 0
ERROR_UNSUPPORTED_VERSION = 35

# The error codes the hostile-input tests meet, for readable reports (org.apache.kafka.common.protocol.Errors).
ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR",
    0: "NONE",
    2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    6: "NOT_LEADER_OR_FOLLOWER",
    7: "REQUEST_TIMED_OUT",
    10: "MESSAGE_TOO_LARGE",
    18: "RECORD_LIST_TOO_LARGE",
    32: "INVALID_TIMESTAMP",
    35: "UNSUPPORTED_VERSION",
    42: "INVALID_REQUEST",
    43: "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    45: "OUT_OF_ORDER_SEQUENCE_NUMBER",
    47: "INVALID_PRODUCER_EPOCH",
    48: "INVALID_TXN_STATE",
    49: "INVALID_PRODUCER_ID_MAPPING",
    53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    59: "UNKNOWN_PRODUCER_ID",
    76: "UNSUPPORTED_COMPRESSION_TYPE",
    87: "INVALID_RECORD",
}


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


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


def zigzag_varint(n: int) -> bytes:
    """A signed varint/varlong as in record batch v2 (zigzag, then unsigned base-128)."""
    return _uvarint((n << 1) if n >= 0 else ((-n) << 1) - 1)


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

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode(errors="replace")

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


# -- record batches (magic v2) ---------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of record batch v2."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
BATCH_HEADER_SIZE = 61  # base offset .. record count; batch length counts from byte 12


def compress(codec: int, data: bytes) -> bytes:
    """The records section compressed as Kafka clients do: gzip stream, raw snappy, lz4 frame, zstd frame."""
    if codec == CODEC_NONE:
        return data
    if codec == CODEC_GZIP:
        return gzip.compress(data)
    if codec == CODEC_SNAPPY:
        import snappy

        return snappy.compress(data)
    if codec == CODEC_LZ4:
        import lz4.frame

        return lz4.frame.compress(data)
    if codec == CODEC_ZSTD:
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"no compressor for codec {codec}")


@dataclass
class Record:
    """One record of a v2 batch. `offset_delta` None means its index in the batch. The override
    fields (None = consistent with the content) let a test write records that lie about themselves."""

    value: bytes | None = b"v"
    key: bytes | None = None
    headers: list[tuple[str | None, bytes | None]] = field(default_factory=list)  # key None -> length -1
    timestamp_delta: int = 0
    offset_delta: int | None = None
    attributes: int = 0
    length: int | None = None  # the record's leading length varint
    key_length: int | None = None
    header_count: int | None = None

    def encode(self, index: int) -> bytes:
        def blob(b: bytes | None, length: int | None = None) -> bytes:
            n = (-1 if b is None else len(b)) if length is None else length
            return zigzag_varint(n) + (b or b"")

        body = struct.pack(">b", self.attributes)
        body += zigzag_varint(self.timestamp_delta)
        body += zigzag_varint(index if self.offset_delta is None else self.offset_delta)
        body += blob(self.key, self.key_length)
        body += blob(self.value)
        body += zigzag_varint(len(self.headers) if self.header_count is None else self.header_count)
        for hk, hv in self.headers:
            body += blob(None if hk is None else hk.encode()) + blob(hv)
        return zigzag_varint(len(body) if self.length is None else self.length) + body


def encode_records(records: list[Record]) -> bytes:
    return b"".join(r.encode(i) for i, r in enumerate(records))


def now_ms() -> int:
    return int(time.time() * 1000)


def record_batch(
    records: list[Record],
    *,
    codec: int = CODEC_NONE,
    transactional: bool = False,
    control: bool = False,
    attributes: int | None = None,
    payload: bytes | None = None,
    base_offset: int = 0,
    batch_length: int | None = None,
    partition_leader_epoch: int = -1,
    magic: int = 2,
    crc: int | None = None,
    last_offset_delta: int | None = None,
    base_timestamp: int | None = None,
    max_timestamp: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    record_count: int | None = None,
) -> bytes:
    """A record batch v2. Every header field is derived from the records unless given: `attributes`
    replaces codec/transactional/control bits, `payload` replaces the (compressed) records section,
    `crc` replaces the CRC-32C computed over attributes..end, `batch_length` the real length."""
    if attributes is None:
        attributes = (codec & 0x7) | (ATTR_TRANSACTIONAL if transactional else 0) | (ATTR_CONTROL if control else 0)
    if payload is None:
        payload = compress(codec, encode_records(records))
    if base_timestamp is None:
        base_timestamp = now_ms()
    if max_timestamp is None:
        max_timestamp = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    if record_count is None:
        record_count = len(records)
    if last_offset_delta is None:
        last_offset_delta = max((i if r.offset_delta is None else r.offset_delta for i, r in enumerate(records)), default=-1)
    after_crc = (
        struct.pack(">hiqqqhii", attributes, last_offset_delta, base_timestamp, max_timestamp,
                    producer_id, producer_epoch, base_sequence, record_count)
        + payload
    )
    if crc is None:
        crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", partition_leader_epoch, magic, crc & 0xFFFFFFFF) + after_crc
    if batch_length is None:
        batch_length = len(after_length)
    return struct.pack(">qi", base_offset, batch_length) + after_length


# -- Produce (v8, the last non-flexible version: per-record errors and an error message) -----------


@dataclass
class PartitionProduceResult:
    partition: int
    error_code: int
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    record_errors: list[tuple[int, str | None]]  # (batch index, message)
    error_message: str | None


def produce(
    sock: socket.socket,
    topic: str,
    partitions: dict[int, bytes | None],
    acks: int = -1,
    timeout_ms: int = 10_000,
    transactional_id: str | None = None,
    correlation_id: int = 11,
    version: int = 8,
) -> dict[int, PartitionProduceResult]:
    """Produce v8 (v3..v8 share the request layout): `partitions` maps partition -> raw records bytes,
    sent as they are. Returns the answer per partition; acks=0 gets no answer, so it is not offered."""
    if acks == 0 or not 3 <= version <= 8:
        raise ValueError("produce: acks must be 1 or -1 and version 3..8")
    body = _string(transactional_id) + struct.pack(">hii", acks, timeout_ms, 1) + _string(topic)
    body += struct.pack(">i", len(partitions))
    for index, records in partitions.items():
        body += struct.pack(">i", index)
        body += struct.pack(">i", -1) if records is None else struct.pack(">i", len(records)) + records
    sock.sendall(frame(request_header(API_PRODUCE, version, correlation_id, "sluice-e2e-hostile", False) + body))
    r = Reader(recv_frame(sock))
    if r.int32() != correlation_id:
        raise ProtocolError("correlation id mismatch")
    out: dict[int, PartitionProduceResult] = {}
    for _ in range(r.int32()):
        r.string()  # topic
        for _ in range(r.int32()):
            index, error_code, base_offset = r.int32(), r.int16(), r.int64()
            append_time = r.int64()
            log_start = r.int64() if version >= 5 else -1
            record_errors = []
            error_message = None
            if version >= 8:
                record_errors = [(r.int32(), r.string()) for _ in range(r.int32())]
                error_message = r.string()
            out[index] = PartitionProduceResult(index, error_code, base_offset, append_time, log_start,
                                                record_errors, error_message)
    r.int32()  # throttle time
    return out


# -- ListOffsets (v4) ------------------------------------------------------------------------------

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


@dataclass
class ListOffsetsResult:
    error_code: int
    timestamp: int
    offset: int


def list_offsets(sock: socket.socket, topic: str, partition: int, timestamp: int = LATEST_TIMESTAMP,
                 correlation_id: int = 13) -> ListOffsetsResult:
    """ListOffsets v4 for one partition: LATEST_TIMESTAMP (-1) gives the end offset, EARLIEST (-2) the
    log start, any other timestamp the first record at or after it (offset -1 if none)."""
    body = struct.pack(">ibi", -1, 0, 1) + _string(topic) + struct.pack(">iiiq", 1, partition, -1, timestamp)
    sock.sendall(frame(request_header(API_LIST_OFFSETS, 4, correlation_id, "sluice-e2e-hostile", False) + body))
    r = Reader(recv_frame(sock))
    if r.int32() != correlation_id:
        raise ProtocolError("correlation id mismatch")
    r.int32()  # throttle time
    result = None
    for _ in range(r.int32()):
        r.string()
        for _ in range(r.int32()):
            index, error_code, ts, offset = r.int32(), r.int16(), r.int64(), r.int64()
            r.int32()  # leader epoch
            if index == partition:
                result = ListOffsetsResult(error_code, ts, offset)
    if result is None:
        raise ProtocolError(f"ListOffsets answer lacks partition {partition}")
    return result
