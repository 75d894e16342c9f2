"""Produce-side record checks, as Kafka 4's LogValidator makes them (issue 18, KIP-467).

A compacted topic refuses records without a key (INVALID_RECORD); a CreateTime topic refuses
timestamps outside [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]
(INVALID_TIMESTAMP). Produce v8+ names the refused records' indexes in `record_errors`, and
nothing of the partition's records is appended (the high watermark does not move)."""

import struct
import time

from confluent_kafka import KafkaError, Producer

import kafka_wire as kw
from conftest import consume_all, create_topic, high_watermarks, producer_conf

ERR_NONE = 0
ERR_INVALID_TIMESTAMP = 32
ERR_INVALID_RECORD = 87
HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


def batch(records, base_offset: int = 0) -> bytes:
    """An uncompressed RecordBatch v2 of (key, value, timestamp) records, each with its own
    timestamp, the header's base and max timestamps set as a producer sets them."""
    base_ts = records[0][2]
    max_ts = max(r[2] for r in records)
    recs = b"".join(kw.encode_record(i, ts - base_ts, k, v) for i, (k, v, ts) in enumerate(records))
    covered = struct.pack(">hiqqqhii", 0, len(records) - 1, base_ts, max_ts, -1, -1, -1, len(records)) + recs
    after_length = struct.pack(">ibI", -1, 2, kw.crc32c(covered)) + covered
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


class Raw:
    """One raw connection sending Produce v8, which carries KIP-467's record_errors."""

    def __init__(self, broker):
        self.sock = kw.connect(broker.port)
        self.corr = 0

    def produce(self, topic_data, version: int = 8):
        self.corr += 1
        payload = kw.frame(kw.API_PRODUCE, version, self.corr, kw.produce_body(topic_data, acks=-1))
        got, parts = kw.parse_produce_response(version, kw.roundtrip(self.sock, payload, timeout=30))
        assert got == self.corr
        return parts

    def close(self):
        self.sock.close()


def produce_with_client(broker, topic: str, key, timestamp=None):
    """One record through librdkafka: the delivery error (or None) and the offset."""
    out = []
    p = Producer(producer_conf(broker, **{"linger.ms": 0, "compression.type": "none", "retries": 0}))
    kwargs = {"partition": 0, "on_delivery": lambda err, msg: out.append((err, msg.offset()))}
    if timestamp is not None:
        kwargs["timestamp"] = timestamp
    p.produce(topic, b"value", key=key, **kwargs)
    assert p.flush(30) == 0, "no delivery report within 30 s"
    assert len(out) == 1, out
    return out[0]


def test_keyless_records_on_a_compacted_topic_are_refused_by_index(broker):
    topic, plain = "compacted", "plain"
    create_topic(broker, topic, 2, config={"cleanup.policy": "compact"})
    create_topic(broker, plain, 1)
    raw = Raw(broker)
    try:
        now = now_ms()
        bad = batch([(b"k0", b"v", now), (None, b"v", now), (b"k2", b"v", now), (None, b"v", now)])
        good = batch([(b"a", b"v", now), (b"b", b"v", now)])
        # Partition 0: a good batch then a bad one in the same request: neither is appended.
        # Partition 1 of the same request is judged on its own and succeeds.
        parts = raw.produce([(topic, [(0, good + bad), (1, good)])])
        p0, p1 = parts[(topic, 0)], parts[(topic, 1)]
        assert p0["error_code"] == ERR_INVALID_RECORD, p0
        assert [i for i, _ in p0["record_errors"]] == [1, 3], p0
        for _, msg in p0["record_errors"]:
            assert msg == f"Compacted topic cannot accept message without key in topic partition {topic}-0", msg
        assert p0["error_message"].startswith("One or more records have been rejected due to 2 record errors in total"), p0
        assert "RecordError(batchIndex=1, message='Compacted topic" in p0["error_message"], p0
        assert p1["error_code"] == ERR_NONE and p1["base_offset"] == 0 and p1["record_errors"] == [], p1
        assert high_watermarks(broker, topic, [0, 1]) == {0: 0, 1: 2}

        # Keyed records (an empty key is a key) are appended, at offset 0: nothing was before.
        parts = raw.produce([(topic, [(0, batch([(b"", b"v", now), (b"k", None, now)]))])])
        assert parts[(topic, 0)]["error_code"] == ERR_NONE and parts[(topic, 0)]["base_offset"] == 0, parts
        # A topic that is not compacted takes keyless records.
        parts = raw.produce([(plain, [(0, bad)])])
        assert parts[(plain, 0)]["error_code"] == ERR_NONE, parts
    finally:
        raw.close()

    # librdkafka sees the refusal as its delivery error; still nothing appended.
    err, _ = produce_with_client(broker, topic, key=None)
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    err, off = produce_with_client(broker, topic, key=b"key")
    assert err is None and off == 2, (err, off)
    assert high_watermarks(broker, topic, [0]) == {0: 3}
    assert [key for _, key, _ in consume_all(broker, topic, [0])[0]] == [b"", b"k", b"key"]


def test_timestamps_outside_the_window_are_refused(broker):
    topic, bounded, log_append = "ts-default", "ts-bounded", "ts-log-append"
    create_topic(broker, topic, 1)
    create_topic(broker, bounded, 1, config={"message.timestamp.before.max.ms": str(HOUR_MS),
                                             "message.timestamp.after.max.ms": str(HOUR_MS)})
    create_topic(broker, log_append, 1, config={"message.timestamp.type": "LogAppendTime"})
    raw = Raw(broker)
    try:
        now = now_ms()
        future = batch([(b"k", b"v", now), (b"k", b"v", now + 2 * HOUR_MS), (b"k", b"v", now)])
        parts = raw.produce([(topic, [(0, future)])])
        p = parts[(topic, 0)]
        assert p["error_code"] == ERR_INVALID_TIMESTAMP, p
        assert [i for i, _ in p["record_errors"]] == [1], p
        assert p["record_errors"][0][1].startswith(f"Timestamp {now + 2 * HOUR_MS} of message with offset 1 is out of range"), p
        assert p["error_message"] == "One or more records have been rejected due to invalid timestamp", p
        # Kafka 4's default before.max.ms is unbounded: old timestamps are fine.
        parts = raw.produce([(topic, [(0, batch([(b"k", b"v", 1000), (b"k", b"v", now)]))])])
        assert parts[(topic, 0)]["error_code"] == ERR_NONE and parts[(topic, 0)]["base_offset"] == 0, parts

        # A bounded topic refuses the old records, by index, and appends nothing.
        old = batch([(b"k", b"v", now), (b"k", b"v", now - 2 * HOUR_MS), (b"k", b"v", now - 3 * HOUR_MS)])
        parts = raw.produce([(bounded, [(0, old)])])
        p = parts[(bounded, 0)]
        assert p["error_code"] == ERR_INVALID_TIMESTAMP and [i for i, _ in p["record_errors"]] == [1, 2], p
        # LogAppendTime topics restamp, so any producer timestamp is accepted.
        parts = raw.produce([(log_append, [(0, future)])])
        assert parts[(log_append, 0)]["error_code"] == ERR_NONE, parts
    finally:
        raw.close()
    assert high_watermarks(broker, topic, [0]) == {0: 2}
    assert high_watermarks(broker, bounded, [0]) == {0: 0}

    # The same through librdkafka with explicit timestamps.
    err, _ = produce_with_client(broker, bounded, key=b"k", timestamp=now_ms() - 2 * HOUR_MS)
    assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err
    err, _ = produce_with_client(broker, topic, key=b"k", timestamp=now_ms() + 2 * HOUR_MS)
    assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err
    err, off = produce_with_client(broker, bounded, key=b"k", timestamp=now_ms() - 60_000)
    assert err is None and off == 0, (err, off)
    assert high_watermarks(broker, bounded, [0]) == {0: 1}
