"""KIP-320 leader epochs on the wire: Fetch, ListOffsets and OffsetForLeaderEpoch check the
current leader epoch a client sends (-1: no check; older: FENCED_LEADER_EPOCH; newer:
UNKNOWN_LEADER_EPOCH), and ListOffsets v4+ answers the leader epoch of the offset it finds.
A fresh broker's partitions are at epoch 0, so 5 is an epoch from the future. (Fencing an older
epoch needs a leader change; storage's unit tests cover it with set_leader_epoch.)"""

import kafka_wire as kw
from conftest import create_topic

API_LIST_OFFSETS = 2
API_OFFSET_FOR_LEADER_EPOCH = 23
ERR_UNKNOWN_LEADER_EPOCH = 75


def list_offsets_v4(sock, topic: str, current_epoch: int, timestamp: int, correlation_id: int):
    """ListOffsets v4, one partition: (error, timestamp, offset, leader epoch)."""
    part = kw.i32(0) + kw.i32(current_epoch) + kw.i64(timestamp)
    body = kw.i32(-1) + kw.i8(0) + kw.array([kw.string(topic) + kw.array([part])])
    r = kw.Reader(kw.roundtrip(sock, kw.frame(API_LIST_OFFSETS, 4, correlation_id, body)))
    assert r.i32() == correlation_id
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == 0
    return r.i16(), r.i64(), r.i64(), r.i32()


def offset_for_leader_epoch_v3(sock, topic: str, current_epoch: int, epoch: int, correlation_id: int):
    """OffsetForLeaderEpoch v3, one partition: (error, leader epoch, end offset)."""
    part = kw.i32(0) + kw.i32(current_epoch) + kw.i32(epoch)
    body = kw.i32(-1) + kw.array([kw.string(topic) + kw.array([part])])
    r = kw.Reader(kw.roundtrip(sock, kw.frame(API_OFFSET_FOR_LEADER_EPOCH, 3, correlation_id, body)))
    assert r.i32() == correlation_id
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    error = r.i16()
    assert r.i32() == 0
    return error, r.i32(), r.i64()


def fetch_v9_error(sock, topic: str, current_epoch: int, correlation_id: int) -> int:
    """Fetch v9 from offset 0 of partition 0: that partition's error code."""
    part = kw.i32(0) + kw.i32(current_epoch) + kw.i64(0) + kw.i64(-1) + kw.i32(1 << 20)
    body = (kw.i32(-1) + kw.i32(0) + kw.i32(1) + kw.i32(1 << 20) + kw.i8(0) + kw.i32(0) + kw.i32(-1)
            + kw.array([kw.string(topic) + kw.array([part])]) + kw.array([]))
    r = kw.Reader(kw.roundtrip(sock, kw.frame(kw.API_FETCH, 9, correlation_id, body)))
    assert r.i32() == correlation_id
    r.i32()  # throttle
    r.i16()  # top-level error
    r.i32()  # session id
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == 0
    return r.i16()


def test_requests_check_the_clients_leader_epoch(broker):
    topic = "epochs"
    create_topic(broker, topic, 1)
    sock = kw.connect(broker.port)
    batch = kw.record_batch([(b"k", b"v%d" % i) for i in range(3)])
    produce = kw.frame(kw.API_PRODUCE, 8, 1, kw.produce_body([(topic, [(0, batch)])], acks=-1))
    _, parts = kw.parse_produce_response(8, kw.roundtrip(sock, produce))
    assert parts[(topic, 0)]["error_code"] == 0

    # ListOffsets: latest is 3, in epoch 0; earliest 0, in epoch 0; a future epoch is unknown.
    assert list_offsets_v4(sock, topic, -1, -1, 2) == (0, -1, 3, 0)
    assert list_offsets_v4(sock, topic, 0, -2, 3) == (0, -1, 0, 0)
    assert list_offsets_v4(sock, topic, 5, -1, 4)[0] == ERR_UNKNOWN_LEADER_EPOCH

    # OffsetForLeaderEpoch: epoch 0 ends at the high watermark; the same check on the current epoch.
    assert offset_for_leader_epoch_v3(sock, topic, 0, 0, 5) == (0, 0, 3)
    assert offset_for_leader_epoch_v3(sock, topic, 5, 0, 6)[0] == ERR_UNKNOWN_LEADER_EPOCH

    # Fetch: the current epoch and no check are served; a future epoch is refused.
    assert fetch_v9_error(sock, topic, 0, 7) == 0
    assert fetch_v9_error(sock, topic, -1, 8) == 0
    assert fetch_v9_error(sock, topic, 5, 9) == ERR_UNKNOWN_LEADER_EPOCH
    sock.close()
