"""Hand-built Kafka wire protocol for raw-socket tests: framing, request header v1, ApiVersions v0,
Produce v3..v8 (non-flexible) and RecordBatch v2 with a pure-Python CRC32C."""

from __future__ import annotations

import socket
import struct
import time
from typing import Iterable, List, Optional, Sequence, Tuple

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18

ERR_NONE = 0
ERR_CORRUPT_MESSAGE = 2
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_UNSUPPORTED_VERSION = 35

# ---------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), reflected polynomial 0x82F63B78, table driven.
# ---------------------------------------------------------------------------------------------


def _crc32c_table() -> List[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # standard check value

# ---------------------------------------------------------------------------------------------
# Primitive encoders
# ---------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """Zig-zag signed varint as used inside Kafka records."""
    z = n * 2 if n >= 0 else -n * 2 - 1
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def nullable_string(s: Optional[str]) -> bytes:
    return struct.pack(">h", -1) if s is None else string(s)


def nullable_bytes(b: Optional[bytes]) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


# ---------------------------------------------------------------------------------------------
# RecordBatch v2 (magic 2)
# ---------------------------------------------------------------------------------------------


def encode_record(offset_delta: int, timestamp_delta: int, key: Optional[bytes], value: Optional[bytes],
                  headers: Sequence[Tuple[str, bytes]] = ()) -> bytes:
    body = bytearray(b"\x00")  # attributes (unused)
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records: Sequence[Tuple[Optional[bytes], Optional[bytes]]], base_timestamp: Optional[int] = None,
                 base_offset: int = 0, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, attributes: int = 0, partition_leader_epoch: int = -1) -> bytes:
    """A valid, uncompressed RecordBatch v2 holding (key, value) records, with a correct CRC32C."""
    assert records
    ts = int(time.time() * 1000) if base_timestamp is None else base_timestamp
    recs = b"".join(encode_record(i, 0, k, v) for i, (k, v) in enumerate(records))
    covered = struct.pack(
        ">hiqqqhii", attributes, len(records) - 1, ts, ts, producer_id, producer_epoch, base_sequence, len(records)
    ) + recs
    after_length = struct.pack(">ibI", partition_leader_epoch, 2, crc32c(covered)) + covered
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


BATCH_CRC_OFFSET = 8 + 4 + 4 + 1  # baseOffset, batchLength, partitionLeaderEpoch, magic


# ---------------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------------


def frame(api_key: int, api_version: int, correlation_id: int, body: bytes = b"",
          client_id: Optional[str] = "ringlog-e2e-raw") -> bytes:
    """Size-prefixed request with request header v1 (api_key, api_version, correlation_id, client_id)."""
    msg = struct.pack(">hhi", api_key, api_version, correlation_id) + nullable_string(client_id) + body
    return struct.pack(">i", len(msg)) + msg


def produce_body(topic_data: Iterable[Tuple[str, Iterable[Tuple[int, Optional[bytes]]]]], acks: int = -1,
                 timeout_ms: int = 15000, transactional_id: Optional[str] = None) -> bytes:
    """Produce request body, versions 3..8 (all share this layout)."""
    topic_data = [(t, list(parts)) for t, parts in topic_data]
    b = nullable_string(transactional_id) + struct.pack(">hi", acks, timeout_ms)
    b += struct.pack(">i", len(topic_data))
    for topic, parts in topic_data:
        b += string(topic) + struct.pack(">i", len(parts))
        for partition, records in parts:
            b += struct.pack(">i", partition) + nullable_bytes(records)
    return b


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise AssertionError(f"response truncated: need {size} bytes at {self.pos}, have {len(self.data)}")
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def i64(self):
        return self._take(">q")

    def nullable_string(self) -> Optional[str]:
        n = self.i16()
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise AssertionError("response truncated inside a string")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def string(self) -> str:
        s = self.nullable_string()
        assert s is not None, "null where a string was expected"
        return s

    def remaining(self) -> int:
        return len(self.data) - self.pos


def parse_api_versions_v0(data: bytes):
    """(correlation_id, error_code, [(api_key, min, max)]) from response header v0 + ApiVersions v0 body.
    Trailing bytes (e.g. a throttle_time of a later version) are tolerated."""
    r = Reader(data)
    corr = r.i32()
    err = r.i16()
    n = r.i32()
    assert 0 <= n <= 1000, f"bad api_keys array length {n}"
    keys = [(r.i16(), r.i16(), r.i16()) for _ in range(n)]
    return corr, err, keys


def parse_produce_response(version: int, data: bytes):
    """(correlation_id, {(topic, partition): error_code/base_offset dict}) for Produce v3..v8."""
    assert 3 <= version <= 8
    r = Reader(data)
    corr = r.i32()
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part = {"partition": r.i32(), "error_code": r.i16(), "base_offset": r.i64(), "log_append_time_ms": r.i64()}
            if version >= 5:
                part["log_start_offset"] = r.i64()
            if version >= 8:
                part["record_errors"] = [(r.i32(), r.nullable_string()) for _ in range(r.i32())]
                part["error_message"] = r.nullable_string()
            out[(topic, part["partition"])] = part
    r.i32()  # throttle_time_ms
    assert r.remaining() == 0, f"{r.remaining()} unexpected trailing bytes in Produce v{version} response"
    return corr, out


# ---------------------------------------------------------------------------------------------
# Socket helpers
# ---------------------------------------------------------------------------------------------


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Closed(Exception):
    pass


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e)) from None
        if not chunk:
            raise Closed(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """One size-prefixed response (returned without the size, starting with the correlation id)."""
    sock.settimeout(timeout)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 4 <= size <= 64 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(sock, size)


def response_or_close(sock: socket.socket, timeout: float = 15.0):
    """('closed', None) if the broker closes/resets the connection, ('response', bytes) if it answers.
    Fails the test if neither happens within `timeout`."""
    try:
        return "response", read_response(sock, timeout)
    except Closed:
        return "closed", None
    except socket.timeout:
        raise AssertionError(f"broker neither answered nor closed the connection within {timeout}s") from None


def roundtrip(sock: socket.socket, payload: bytes, timeout: float = 15.0) -> bytes:
    sock.sendall(payload)
    return read_response(sock, timeout)
