"""Hand-built Kafka wire protocol for raw-socket tests: framing, request header v1, ApiVersions v0,
Produce v3..v8 (non-flexible), Fetch v4 and RecordBatch v2 with a pure-Python CRC32C."""

from __future__ import annotations

import socket
import struct
import time
from typing import Iterable, List, Optional, Sequence, Tuple

API_PRODUCE = 0
API_FETCH = 1
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
    return uvarint(n * 2 if n >= 0 else -n * 2 - 1)


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


def fetch_v4_body(topic: str, offsets: "dict[int, int]", partition_max_bytes: int, max_bytes: int = 64 << 20,
                  max_wait_ms: int = 500, min_bytes: int = 1) -> bytes:
    """Fetch v4 request body for one topic: {partition: fetch offset}."""
    parts = [struct.pack(">iqi", p, o, partition_max_bytes) for p, o in sorted(offsets.items())]
    return (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
            + struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(parts)) + b"".join(parts))


def parse_fetch_v4(frame, offsets: "dict[int, int]", collect: "dict[int, bytearray] | None" = None):
    """Walks a Fetch v4 response frame (correlation id first) and advances `offsets` past each
    whole batch. Returns ({partition: (error, high watermark, records size, [batch base offsets])},
    whole-batch bytes). A partial batch at the end of a partition's records is skipped. With
    `collect`, each whole batch's bytes are appended to `collect[partition]`."""
    at = 4 + 4  # correlation id, throttle time
    (topics,) = struct.unpack_from(">i", frame, at)
    at += 4
    out = {}
    total = 0
    for _ in range(topics):
        (name_len,) = struct.unpack_from(">h", frame, at)
        at += 2 + name_len
        (parts,) = struct.unpack_from(">i", frame, at)
        at += 4
        for _ in range(parts):
            partition, error, hw, _lso = struct.unpack_from(">ihqq", frame, at)
            at += 4 + 2 + 8 + 8
            (aborted,) = struct.unpack_from(">i", frame, at)
            at += 4 + max(aborted, 0) * 16
            (size,) = struct.unpack_from(">i", frame, at)
            at += 4
            end = at + max(size, 0)
            bases = []
            while at + 61 <= end:
                base, length = struct.unpack_from(">qi", frame, at)
                if at + 12 + length > end:
                    break
                (delta,) = struct.unpack_from(">i", frame, at + 23)
                offsets[partition] = base + delta + 1
                bases.append(base)
                if collect is not None:
                    collect.setdefault(partition, bytearray()).extend(frame[at : at + 12 + length])
                total += 12 + length
                at += 12 + length
            out[partition] = (error, hw, max(size, 0), bases)
            at = end
    return out, total


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

    def _text(self, n: int, what: str) -> str:
        if self.pos + n > len(self.data):
            raise AssertionError(f"response truncated inside a {what}")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def nullable_string(self) -> Optional[str]:
        n = self.i16()
        return None if n < 0 else self._text(n, "string")

    def string(self) -> str:
        s = self.nullable_string()
        assert s is not None, "null where a string was expected"
        return s

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def bytes(self) -> Optional[bytes]:
        n = self.i32()
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise AssertionError("response truncated inside a bytes field")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uvarint(self) -> int:
        shift = 0
        n = 0
        while True:
            b = self._take(">B")
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 35:
                raise AssertionError("unsigned varint too long")

    def compact_nullable_string(self) -> Optional[str]:
        n = self.uvarint()
        return None if n == 0 else self._text(n - 1, "compact string")

    def compact_string(self) -> str:
        s = self.compact_nullable_string()
        assert s is not None, "null where a compact string was expected"
        return s

    def compact_array_len(self) -> int:
        n = self.uvarint()
        assert n > 0, "null compact array where an array was expected"
        return n - 1

    def skip_tags(self) -> None:
        """Tagged fields (flexible versions): skipped."""
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.pos += self.uvarint()


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


# ---------------------------------------------------------------------------------------------
# Consumer-group APIs (classic protocol). Non-flexible versions use request header v1 (frame());
# flexible ones (flexible_frame()) use request header v2 and compact encodings.
# ---------------------------------------------------------------------------------------------

API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16
API_DELETE_GROUPS = 42
API_OFFSET_DELETE = 47

ERR_ILLEGAL_GENERATION = 22
ERR_INVALID_GROUP_ID = 24
ERR_UNKNOWN_MEMBER_ID = 25
ERR_INVALID_SESSION_TIMEOUT = 26
ERR_REBALANCE_IN_PROGRESS = 27
ERR_NON_EMPTY_GROUP = 68
ERR_GROUP_ID_NOT_FOUND = 69
ERR_MEMBER_ID_REQUIRED = 79
ERR_FENCED_INSTANCE_ID = 82


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def array(items: Sequence[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def bytes_field(b: bytes) -> bytes:
    return i32(len(b)) + b


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_nullable_string(s: Optional[str]) -> bytes:
    return uvarint(0) if s is None else compact_string(s)


def compact_array(items: Sequence[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


def compact_nullable_array(items: Optional[Sequence[bytes]]) -> bytes:
    return uvarint(0) if items is None else compact_array(items)


NO_TAGS = b"\x00"


def flexible_frame(api_key: int, api_version: int, correlation_id: int, body: bytes = b"",
                   client_id: Optional[str] = "ringlog-e2e-raw") -> bytes:
    """Size-prefixed request with request header v2 (header v1 + an empty tagged-field section)."""
    msg = struct.pack(">hhi", api_key, api_version, correlation_id) + nullable_string(client_id) + NO_TAGS + body
    return struct.pack(">i", len(msg)) + msg


def _done(r: "Reader", what: str) -> None:
    assert r.remaining() == 0, f"{r.remaining()} unexpected trailing bytes in {what} response"


# --- ConsumerProtocol payloads (opaque to the broker; what real consumers put in them) ---------

def consumer_subscription(topics: Sequence[str], user_data: Optional[bytes] = None) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, user_data."""
    return i16(0) + array([string(t) for t in topics]) + nullable_bytes(user_data)


def consumer_assignment(assigned: Sequence[Tuple[str, Sequence[int]]], user_data: Optional[bytes] = None) -> bytes:
    """ConsumerProtocolAssignment v0: version, [(topic, [partition])], user_data."""
    return i16(0) + array([string(t) + array([i32(p) for p in parts]) for t, parts in assigned]) + nullable_bytes(user_data)


# --- FindCoordinator ---------------------------------------------------------------------------

def find_coordinator_v2_body(key: str, key_type: int = 0) -> bytes:
    return string(key) + i8(key_type)


def parse_find_coordinator_v2(data: bytes):
    r = Reader(data)
    corr = r.i32()
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "error_message": r.nullable_string(),
           "node_id": r.i32(), "host": r.string(), "port": r.i32()}
    _done(r, "FindCoordinator v2")
    return corr, out


def find_coordinator_v4_body(keys: Sequence[str], key_type: int = 0) -> bytes:
    return i8(key_type) + compact_array([compact_string(k) for k in keys]) + NO_TAGS


def parse_find_coordinator_v4(data: bytes):
    """(correlation_id, [ {key, node_id, host, port, error_code, error_message} ]) (response header v1)."""
    r = Reader(data)
    corr = r.i32()
    r.skip_tags()
    r.i32()  # throttle_time_ms
    coords = []
    for _ in range(r.compact_array_len()):
        c = {"key": r.compact_string(), "node_id": r.i32(), "host": r.compact_string(), "port": r.i32(),
             "error_code": r.i16(), "error_message": r.compact_nullable_string()}
        r.skip_tags()
        coords.append(c)
    r.skip_tags()
    _done(r, "FindCoordinator v4")
    return corr, coords


# --- JoinGroup v5 / SyncGroup v3 / Heartbeat v3 / LeaveGroup v3 --------------------------------

def join_group_v5_body(group_id: str, member_id: str = "", session_timeout_ms: int = 10000,
                       rebalance_timeout_ms: int = 10000, group_instance_id: Optional[str] = None,
                       protocol_type: str = "consumer",
                       protocols: Sequence[Tuple[str, bytes]] = ()) -> bytes:
    return (string(group_id) + i32(session_timeout_ms) + i32(rebalance_timeout_ms) + string(member_id)
            + nullable_string(group_instance_id) + string(protocol_type)
            + array([string(name) + bytes_field(meta) for name, meta in protocols]))


def parse_join_group_v5(data: bytes):
    r = Reader(data)
    corr = r.i32()
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "generation_id": r.i32()}
    name = r.nullable_string()
    assert name is not None, (f"JoinGroup v5 response (error_code {out['error_code']}): protocol_name is null, but it "
                              f"is a non-nullable STRING before v7 (an error response carries \"\")")
    out.update(protocol_name=name, leader=r.string(), member_id=r.string())
    out["members"] = [{"member_id": r.string(), "group_instance_id": r.nullable_string(), "metadata": r.bytes()}
                      for _ in range(r.i32())]
    _done(r, "JoinGroup v5")
    return corr, out


def sync_group_v3_body(group_id: str, generation_id: int, member_id: str,
                       assignments: Sequence[Tuple[str, bytes]] = (),
                       group_instance_id: Optional[str] = None) -> bytes:
    return (string(group_id) + i32(generation_id) + string(member_id) + nullable_string(group_instance_id)
            + array([string(m) + bytes_field(a) for m, a in assignments]))


def parse_sync_group_v3(data: bytes):
    r = Reader(data)
    corr = r.i32()
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "assignment": r.bytes()}
    _done(r, "SyncGroup v3")
    return corr, out


def heartbeat_v3_body(group_id: str, generation_id: int, member_id: str,
                      group_instance_id: Optional[str] = None) -> bytes:
    return string(group_id) + i32(generation_id) + string(member_id) + nullable_string(group_instance_id)


def parse_heartbeat_v3(data: bytes):
    r = Reader(data)
    corr = r.i32()
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16()}
    _done(r, "Heartbeat v3")
    return corr, out


def leave_group_v3_body(group_id: str, members: Sequence[Tuple[str, Optional[str]]]) -> bytes:
    return string(group_id) + array([string(m) + nullable_string(inst) for m, inst in members])


def parse_leave_group_v3(data: bytes):
    r = Reader(data)
    corr = r.i32()
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16()}
    out["members"] = [{"member_id": r.string(), "group_instance_id": r.nullable_string(), "error_code": r.i16()}
                      for _ in range(r.i32())]
    _done(r, "LeaveGroup v3")
    return corr, out


# --- OffsetCommit v7 / OffsetFetch v5 and v8 / OffsetDelete v0 -----------------------------------

def offset_commit_v7_body(group_id: str, topics: Sequence[Tuple[str, Sequence[Tuple[int, int, Optional[str]]]]],
                          generation_id: int = -1, member_id: str = "",
                          group_instance_id: Optional[str] = None) -> bytes:
    """topics: [(name, [(partition, offset, metadata)])]; committed_leader_epoch is sent as -1."""
    return (string(group_id) + i32(generation_id) + string(member_id) + nullable_string(group_instance_id)
            + array([string(t) + array([i32(p) + i64(o) + i32(-1) + nullable_string(md) for p, o, md in parts])
                     for t, parts in topics]))


def parse_offset_commit_v7(data: bytes):
    """(correlation_id, {(topic, partition): error_code})."""
    r = Reader(data)
    corr = r.i32()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(t, p)] = r.i16()
    _done(r, "OffsetCommit v7")
    return corr, out


def offset_fetch_v5_body(group_id: str, topics: Optional[Sequence[Tuple[str, Sequence[int]]]]) -> bytes:
    """topics=None asks for every committed offset of the group."""
    if topics is None:
        return string(group_id) + i32(-1)
    return string(group_id) + array([string(t) + array([i32(p) for p in parts]) for t, parts in topics])


def parse_offset_fetch_v5(data: bytes):
    """(correlation_id, top-level error_code, {(topic, partition): {offset, leader_epoch, metadata, error_code}})."""
    r = Reader(data)
    corr = r.i32()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(t, p)] = {"offset": r.i64(), "leader_epoch": r.i32(), "metadata": r.nullable_string(),
                           "error_code": r.i16()}
    err = r.i16()
    _done(r, "OffsetFetch v5")
    return corr, err, out


def offset_fetch_v8_body(groups: Sequence[Tuple[str, Optional[Sequence[Tuple[str, Sequence[int]]]]]],
                         require_stable: bool = False) -> bytes:
    """Flexible, multi-group. groups: [(group_id, topics or None for all)]."""
    enc = []
    for gid, topics in groups:
        t_enc = None if topics is None else [
            compact_string(t) + compact_array([i32(p) for p in parts]) + NO_TAGS for t, parts in topics]
        enc.append(compact_string(gid) + compact_nullable_array(t_enc) + NO_TAGS)
    return compact_array(enc) + i8(1 if require_stable else 0) + NO_TAGS


def parse_offset_fetch_v8(data: bytes):
    """(correlation_id, {group_id: (error_code, {(topic, partition): {offset, leader_epoch, metadata, error_code}})})."""
    r = Reader(data)
    corr = r.i32()
    r.skip_tags()
    r.i32()  # throttle_time_ms
    groups = {}
    for _ in range(r.compact_array_len()):
        gid = r.compact_string()
        parts = {}
        for _ in range(r.compact_array_len()):
            t = r.compact_string()
            for _ in range(r.compact_array_len()):
                p = r.i32()
                parts[(t, p)] = {"offset": r.i64(), "leader_epoch": r.i32(),
                                 "metadata": r.compact_nullable_string(), "error_code": r.i16()}
                r.skip_tags()
            r.skip_tags()
        err = r.i16()
        r.skip_tags()
        groups[gid] = (err, parts)
    r.skip_tags()
    _done(r, "OffsetFetch v8")
    return corr, groups


def offset_delete_v0_body(group_id: str, topics: Sequence[Tuple[str, Sequence[int]]]) -> bytes:
    return string(group_id) + array([string(t) + array([i32(p) for p in parts]) for t, parts in topics])


def parse_offset_delete_v0(data: bytes):
    """(correlation_id, top-level error_code, {(topic, partition): error_code})."""
    r = Reader(data)
    corr = r.i32()
    err = r.i16()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(t, p)] = r.i16()
    _done(r, "OffsetDelete v0")
    return corr, err, out


# --- DescribeGroups v4 / ListGroups v2 / DeleteGroups v1 ------------------------------------------

def describe_groups_v4_body(groups: Sequence[str], include_authorized_operations: bool = False) -> bytes:
    return array([string(g) for g in groups]) + i8(1 if include_authorized_operations else 0)


def parse_describe_groups_v4(data: bytes):
    """(correlation_id, {group_id: {error_code, state, protocol_type, protocol, members: [...]}})."""
    r = Reader(data)
    corr = r.i32()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        g = {"error_code": r.i16(), "group_id": r.string(), "state": r.string(), "protocol_type": r.string(),
             "protocol": r.string()}
        g["members"] = [{"member_id": r.string(), "group_instance_id": r.nullable_string(), "client_id": r.string(),
                         "client_host": r.string(), "metadata": r.bytes(), "assignment": r.bytes()}
                        for _ in range(r.i32())]
        g["authorized_operations"] = r.i32()
        out[g["group_id"]] = g
    _done(r, "DescribeGroups v4")
    return corr, out


def parse_list_groups_v2(data: bytes):
    """(correlation_id, error_code, {group_id: protocol_type})."""
    r = Reader(data)
    corr = r.i32()
    r.i32()  # throttle_time_ms
    err = r.i16()
    groups = {}
    for _ in range(r.i32()):
        gid = r.string()
        groups[gid] = r.string()
    _done(r, "ListGroups v2")
    return corr, err, groups


def delete_groups_v1_body(groups: Sequence[str]) -> bytes:
    return array([string(g) for g in groups])


def parse_delete_groups_v1(data: bytes):
    """(correlation_id, {group_id: error_code})."""
    r = Reader(data)
    corr = r.i32()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        gid = r.string()
        out[gid] = r.i16()
    _done(r, "DeleteGroups v1")
    return corr, out


# ---------------------------------------------------------------------------------------------
# Reading a partition's segment files directly (a replica's log, compared across brokers)
# ---------------------------------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def segment_records(data: bytes) -> List[Tuple[int, int, Optional[bytes], Optional[bytes]]]:
    """(offset, leader epoch, key, value) of every record in a segment file's uncompressed v2
    batches, stopping at the zero padding or torn tail a direct-I/O log may end with."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length <= 0 or pos + 12 + length > len(data):
            break
        batch = data[pos + 12: pos + 12 + length]
        epoch, magic = struct.unpack_from(">ib", batch, 0)
        attributes = struct.unpack_from(">h", batch, 9)[0]
        assert magic == 2 and attributes & 0x07 == 0, "segment_records reads uncompressed v2 batches only"
        count = struct.unpack_from(">i", batch, 45)[0]
        rpos = 49
        for _ in range(count):
            _, rpos = _read_varint(batch, rpos)  # record length
            rpos += 1  # attributes
            _, rpos = _read_varint(batch, rpos)  # timestamp delta
            delta, rpos = _read_varint(batch, rpos)
            klen, rpos = _read_varint(batch, rpos)
            key = None if klen < 0 else bytes(batch[rpos:rpos + klen])
            rpos += max(klen, 0)
            vlen, rpos = _read_varint(batch, rpos)
            value = None if vlen < 0 else bytes(batch[rpos:rpos + vlen])
            rpos += max(vlen, 0)
            headers, rpos = _read_varint(batch, rpos)
            for _ in range(headers):
                hk, rpos = _read_varint(batch, rpos)
                rpos += hk
                hv, rpos = _read_varint(batch, rpos)
                rpos += max(hv, 0)
            out.append((base_offset + delta, epoch, key, value))
        pos += 12 + length
    return out


def partition_log_records(partition_dir) -> List[Tuple[int, int, Optional[bytes], Optional[bytes]]]:
    """Every record of a partition directory's segments, in offset order."""
    from pathlib import Path

    records = []
    for seg in sorted(Path(partition_dir).glob("*.log")):
        records.extend(segment_records(seg.read_bytes()))
    return records
