"""Bad input on raw sockets: hand-built Kafka frames. After every bad case the broker must still be
up, an already-open connection must still be served, and a fresh confluent-kafka client on a new
connection must still produce and consume."""

import struct
import time

import pytest
from confluent_kafka import KafkaError, Producer

import kafka_wire as kw
from conftest import admin_for, assert_clients_work, consume_all, create_topic, high_watermarks, parse_log_events, producer_conf, wait_until


class Bystander:
    """A raw connection opened before the bad input; it must keep working afterwards."""

    def __init__(self, broker):
        self.broker = broker
        self.sock = kw.connect(broker.port)
        self.corr = 1000
        self.check()

    def check(self):
        self.corr += 1
        data = kw.roundtrip(self.sock, kw.frame(kw.API_VERSIONS, 0, self.corr), timeout=15)
        corr, err, keys = kw.parse_api_versions_v0(data)
        assert corr == self.corr, f"bystander got correlation id {corr}, expected {self.corr}"
        assert err == kw.ERR_NONE, f"ApiVersions v0 error {err}"
        assert any(k == kw.API_VERSIONS for k, _lo, _hi in keys)

    def close(self):
        self.sock.close()


def still_healthy(broker, bystander):
    time.sleep(0.2)
    broker.assert_alive()
    bystander.check()
    assert_clients_work(broker)


def test_truncated_frame(broker):
    by = Bystander(broker)
    # (a) size says 100, only 10 bytes follow, then close.
    s = kw.connect(broker.port)
    s.sendall(struct.pack(">i", 100) + struct.pack(">hhi", kw.API_VERSIONS, 0, 1) + b"\x00\x05")
    s.close()
    still_healthy(broker, by)
    # A client that stalls mid-frame and keeps the connection open must not block anyone else.
    s = kw.connect(broker.port)
    s.sendall(struct.pack(">i", 100) + b"\x00\x12\x00")
    try:
        still_healthy(broker, by)
    finally:
        s.close()
    # Size prefix itself cut short.
    s = kw.connect(broker.port)
    s.sendall(b"\x00\x00")
    s.close()
    still_healthy(broker, by)
    by.close()


def test_frame_larger_than_socket_request_max_bytes(broker_factory):
    broker = broker_factory(config={"socket.request.max.bytes": 1048576})
    by = Bystander(broker)
    before = len(parse_log_events(broker.log_text(), "closing connection"))

    s = kw.connect(broker.port)
    try:
        s.sendall(struct.pack(">i", 2 * 1024 * 1024) + struct.pack(">hhi", kw.API_PRODUCE, 7, 1) + b"\x00" * 4096)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed already: fine
    kind, _ = kw.response_or_close(s, timeout=15)
    assert kind == "closed", "broker answered a frame larger than socket.request.max.bytes instead of closing"
    s.close()

    def new_close_logged():
        return len(parse_log_events(broker.log_text(), "closing connection")) > before

    wait_until(new_close_logged, 10, what="'closing connection' log line")
    events = parse_log_events(broker.log_text(), "closing connection")[before:]
    assert any("reason" in e for e in events), f"closing connection lines lack a reason= field: {events}"
    still_healthy(broker, by)

    # A negative size prefix is just as invalid.
    s = kw.connect(broker.port)
    try:
        s.sendall(struct.pack(">i", -5) + b"\x00" * 16)
    except (BrokenPipeError, ConnectionResetError):
        pass
    kind, _ = kw.response_or_close(s, timeout=15)
    assert kind == "closed", "broker answered a frame with a negative size"
    s.close()
    still_healthy(broker, by)
    by.close()


def test_unknown_api_key(broker):
    by = Bystander(broker)
    s = kw.connect(broker.port)
    s.sendall(kw.frame(9999, 0, 4242))
    kind, data = kw.response_or_close(s, timeout=15)
    if kind == "response":
        (corr,) = struct.unpack_from(">i", data)
        assert corr == 4242, f"response to unknown API carries correlation id {corr}"
    s.close()
    still_healthy(broker, by)
    by.close()


def test_api_versions_unsupported_version(broker):
    by = Bystander(broker)
    s = kw.connect(broker.port)
    # ApiVersions v99. Header v1 followed by one 0x00 byte: an empty tagged-field section for a broker
    # that reads a flexible (v2) header for ApiVersions >= 3, and an ignored body byte otherwise.
    data = kw.roundtrip(s, kw.frame(kw.API_VERSIONS, 99, 777, body=b"\x00"), timeout=15)
    corr, err, keys = kw.parse_api_versions_v0(data)
    assert corr == 777
    assert err == kw.ERR_UNSUPPORTED_VERSION, f"error_code {err}, expected 35 (UNSUPPORTED_VERSION)"
    assert keys, "UNSUPPORTED_VERSION response must still list the supported api_keys"
    by_key = {k: (lo, hi) for k, lo, hi in keys}
    assert len(by_key) == len(keys), "duplicate api_keys entries"
    for k, (lo, hi) in by_key.items():
        assert 0 <= lo <= hi, f"api_key {k}: bad range {lo}..{hi}"
    for k in (kw.API_PRODUCE, 1, kw.API_METADATA, kw.API_VERSIONS, 35, 75):  # 35 DescribeLogDirs, 75 DescribeTopicPartitions
        assert k in by_key, f"api_key {k} missing from ApiVersions"
    assert by_key[kw.API_VERSIONS][0] == 0 and by_key[kw.API_VERSIONS][1] >= 3, by_key[kw.API_VERSIONS]
    assert by_key[kw.API_PRODUCE][0] <= 3 and by_key[kw.API_PRODUCE][1] >= 8, by_key[kw.API_PRODUCE]
    # Clients (librdkafka, Java) retry a lower ApiVersions on the same connection: it must still work.
    data = kw.roundtrip(s, kw.frame(kw.API_VERSIONS, 0, 778), timeout=15)
    corr, err, keys2 = kw.parse_api_versions_v0(data)
    assert (corr, err) == (778, 0)
    assert sorted(keys2) == sorted(keys)
    s.close()

    # Metadata v99: the connection is closed, or the answer carries UNSUPPORTED_VERSION.
    s = kw.connect(broker.port)
    s.sendall(kw.frame(kw.API_METADATA, 99, 779, body=b"\x00"))
    kind, data = kw.response_or_close(s, timeout=15)
    if kind == "response":
        (corr,) = struct.unpack_from(">i", data)
        assert corr == 779
        assert struct.pack(">h", kw.ERR_UNSUPPORTED_VERSION) in data[4:], f"no UNSUPPORTED_VERSION in {data!r}"
    s.close()
    still_healthy(broker, by)
    by.close()


def raw_produce(sock, version, corr, topic_data, acks=-1):
    data = kw.roundtrip(sock, kw.frame(kw.API_PRODUCE, version, corr, kw.produce_body(topic_data, acks=acks)), timeout=30)
    got_corr, parts = kw.parse_produce_response(version, data)
    assert got_corr == corr
    return parts


@pytest.mark.parametrize("version", [3, 8])
def test_produce_corrupt_crc(broker, version):
    topic = "raw-crc"
    create_topic(broker, topic, 1)
    by = Bystander(broker)
    records = [(b"k0", b"value-0"), (b"k1", b"value-1"), (None, b"value-2")]
    good = kw.record_batch(records)

    s = kw.connect(broker.port)
    parts = raw_produce(s, version, 1, [(topic, [(0, good)])])
    assert parts[(topic, 0)]["error_code"] == kw.ERR_NONE, parts
    assert parts[(topic, 0)]["base_offset"] == 0, parts

    flipped_payload = bytearray(good)
    flipped_payload[-3] ^= 0x01  # inside the last record's value
    flipped_crc = bytearray(good)
    flipped_crc[kw.BATCH_CRC_OFFSET] ^= 0x80
    for n, bad in enumerate((flipped_payload, flipped_crc)):
        parts = raw_produce(s, version, 2 + n, [(topic, [(0, bytes(bad))])])
        assert parts[(topic, 0)]["error_code"] == kw.ERR_CORRUPT_MESSAGE, f"corrupt batch #{n}: {parts}"

    # The connection is still usable, and the rejected batches took no offsets.
    parts = raw_produce(s, version, 10, [(topic, [(0, good)])])
    assert parts[(topic, 0)]["error_code"] == kw.ERR_NONE, parts
    assert parts[(topic, 0)]["base_offset"] == len(records), parts
    s.close()

    assert high_watermarks(broker, topic, [0]) == {0: 2 * len(records)}
    got = consume_all(broker, topic, [0], timeout=60, **{"check.crcs": True})[0]
    assert [(o, k, v) for o, k, v in got] == [(i, k, v) for i, (k, v) in enumerate(records * 2)]
    still_healthy(broker, by)
    by.close()


def test_unknown_topic_and_partition(broker_factory):
    broker = broker_factory(config={"auto.create.topics.enable": False})
    by = Bystander(broker)
    create_topic(broker, "exists", 2)

    # confluent-kafka: producing to a missing topic fails the delivery (broker says the topic is
    # unknown; librdkafka reports UNKNOWN_TOPIC_OR_PART or its local _UNKNOWN_TOPIC).
    errors = []
    p = Producer(producer_conf(broker, **{"topic.metadata.propagation.max.ms": 1000, "message.timeout.ms": 20000}))
    p.produce("no-such-topic", b"x", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(60) == 0
    assert len(errors) == 1 and errors[0] is not None, f"delivery to a missing topic reported {errors}"
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors[0]

    batch = kw.record_batch([(b"k", b"v")])
    s = kw.connect(broker.port)
    parts = raw_produce(s, 7, 1, [("no-such-topic", [(0, batch)])])
    assert parts[("no-such-topic", 0)]["error_code"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, parts
    # One request, one good and one missing partition: each gets its own answer.
    parts = raw_produce(s, 7, 2, [("exists", [(0, batch), (99, batch)])])
    assert parts[("exists", 99)]["error_code"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, parts
    assert parts[("exists", 0)]["error_code"] == kw.ERR_NONE, parts
    assert parts[("exists", 0)]["base_offset"] == 0, parts
    s.close()

    # Auto-creation is off: none of that created the topic.
    md = admin_for(broker).list_topics(timeout=15)
    assert "no-such-topic" not in md.topics, "topic was auto-created although auto.create.topics.enable=false"
    assert high_watermarks(broker, "exists", [0, 1]) == {0: 1, 1: 0}
    still_healthy(broker, by)
    by.close()


def test_huge_array_length_does_not_kill_the_broker(broker):
    """Found by cargo fuzz: DeleteGroups v0 whose array length claims 0x46000000 entries. The codec
    crate reserved that many elements up front (37 GB) and the broker aborted. Now the request is
    refused and the broker stays up."""
    by = Bystander(broker)
    s = kw.connect(broker.port)
    body = bytes.fromhex("002a000000004600000046000000")
    s.sendall(struct.pack(">i", len(body)) + body)
    kind, _ = kw.response_or_close(s, timeout=15)
    assert kind == "closed", "an undecodable request closes its connection"
    s.close()
    wait_until(lambda: "closing connection" in broker.log_text(), timeout=10, what="closing connection log line")
    still_healthy(broker, by)
    by.close()


def test_second_broker_on_the_same_port_refuses_to_start(broker_factory):
    """Shards bind with SO_REUSEPORT; without a check a second broker would silently share the
    port and split the clients between two data directories."""
    first = broker_factory()
    create_topic(first, "port-owner", 1)
    second = broker_factory(start=False)
    second.port = first.port
    with pytest.raises(RuntimeError, match="exited"):
        second.start(timeout=15)
    assert "address already in use" in second.log_text()
    assert second.proc.returncode != 0
    # The first broker still owns the port and serves.
    first.assert_alive()
    assert high_watermarks(first, "port-owner", [0]) == {0: 0}
