"""Kafka 4's admin surface on one node: DescribeLogDirs (API key 35) and DescribeTopicPartitions
(API key 75, KIP-966), driven by kafka-python's KafkaAdminClient (its codecs are generated from
Kafka's JSON schemas) and by raw wire frames where the client cannot send what is tested (a
null topic list, DescribeLogDirs v1). Sizes are checked against what was produced and against
the segment files on disk; partition state against Metadata."""

import os
import uuid

import pytest
from confluent_kafka import Producer
from kafka.admin import KafkaAdminClient

import kafka_wire as kw
from conftest import create_topics, producer_conf

T = 30  # seconds
API_DESCRIBE_LOG_DIRS = 35
API_DESCRIBE_TOPIC_PARTITIONS = 75
ERR_INVALID_TOPIC_EXCEPTION = 17
ERR_INVALID_REQUEST = 42


@pytest.fixture
def kp(broker):
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=T * 1000)
    try:
        yield client
    finally:
        client.close()


def produce(broker, topic: str, partition: int, count: int, value_len: int) -> None:
    p = Producer(producer_conf(broker, **{"linger.ms": 5}))
    errors = []
    for i in range(count):
        p.produce(topic, value=bytes([i % 251]) * value_len, partition=partition,
                  on_delivery=lambda err, _msg: err and errors.append(err))
    assert p.flush(T) == 0, "records left undelivered"
    assert not errors, errors


def log_dir_sizes(kp, topic_partitions) -> dict:
    """{(topic, partition): size} from the broker's one log dir, asserting the dir's own fields."""
    answers = kp.describe_log_dirs(topic_partitions)
    assert len(answers) == 1, answers
    dirs = answers[0]["log_dirs"]
    assert len(dirs) == 1, dirs
    d = dirs[0]
    assert d["error_code"] == kw.ERR_NONE, d
    out = {}
    for t in d["topics"]:
        for p in t["partitions"]:
            assert p["offset_lag"] == 0 and p["is_future_key"] is False, p
            out[(t["name"], p["partition_index"])] = p["partition_size"]
    return d, out


def segment_file_bytes(broker, topic: str, partition: int) -> int:
    return sum(f.stat().st_size for f in (broker.data_dir / f"{topic}-{partition}").glob("*.log"))


# ---------------------------------------------------------------------------------------------
# DescribeLogDirs
# ---------------------------------------------------------------------------------------------


def test_describe_log_dirs_reports_the_data_dir_and_sizes_that_grow(broker, kp):
    create_topics(broker, {"sized": 2})
    d, sizes = log_dir_sizes(kp, {"sized": [0, 1]})
    assert d["log_dir"] == os.path.abspath(broker.data_dir), d["log_dir"]
    assert sizes == {("sized", 0): 0, ("sized", 1): 0}

    # v4: the volume's space, as statvfs reports it for the data dir.
    vfs = os.statvfs(broker.data_dir)
    assert d["total_bytes"] == vfs.f_blocks * vfs.f_frsize, (d["total_bytes"], vfs)
    assert 0 < d["usable_bytes"] <= d["total_bytes"]
    assert abs(d["usable_bytes"] - vfs.f_bavail * vfs.f_frsize) < 512 << 20, (d["usable_bytes"], vfs)

    n, value_len = 200, 1000
    produce(broker, "sized", 0, n, value_len)
    _, sizes = log_dir_sizes(kp, {"sized": [0, 1]})
    grown = sizes[("sized", 0)]
    # Every value is in the log, plus batch and record overhead (uncompressed).
    assert n * value_len <= grown <= n * value_len + n * 100 + (64 << 10), grown
    assert grown <= segment_file_bytes(broker, "sized", 0), (grown, segment_file_bytes(broker, "sized", 0))
    assert sizes[("sized", 1)] == 0, sizes

    produce(broker, "sized", 0, n, value_len)
    _, sizes = log_dir_sizes(kp, {"sized": [0]})
    assert sizes[("sized", 0)] >= grown + n * value_len, (grown, sizes)
    assert set(sizes) == {("sized", 0)}, "only the partition asked for is answered"


def test_describe_log_dirs_leaves_out_partitions_it_does_not_hold(broker, kp):
    create_topics(broker, {"held": 1})
    _, sizes = log_dir_sizes(kp, {"held": [0, 5], "never-created": [0]})
    assert set(sizes) == {("held", 0)}, sizes


def describe_log_dirs_v1_all(broker):
    """DescribeLogDirs v1 with a null topic list: ([(error, dir, {(topic, p): (size, lag, future)})])."""
    s = kw.connect(broker.port)
    try:
        data = kw.roundtrip(s, kw.frame(API_DESCRIBE_LOG_DIRS, 1, 4242, body=kw.i32(-1)), timeout=T)
    finally:
        s.close()
    r = kw.Reader(data)
    assert r.i32() == 4242
    r.i32()  # throttle_time_ms
    results = []
    for _ in range(r.i32()):
        err, log_dir, parts = r.i16(), r.string(), {}
        for _ in range(r.i32()):
            name = r.string()
            for _ in range(r.i32()):
                index = r.i32()  # read first: Python evaluates an assignment's value before its key
                parts[(name, index)] = (r.i64(), r.i64(), r.i8())
        results.append((err, log_dir, parts))
    assert r.remaining() == 0, "trailing bytes in DescribeLogDirs v1 response"
    return results


def test_describe_log_dirs_null_topics_means_every_partition(broker, kp):
    create_topics(broker, {"all-a": 3, "all-b": 1})
    produce(broker, "all-a", 2, 50, 500)
    results = describe_log_dirs_v1_all(broker)
    assert len(results) == 1, results
    err, log_dir, parts = results[0]
    assert err == kw.ERR_NONE and log_dir == os.path.abspath(broker.data_dir), results
    # Every partition: the test's topics and the broker's own (__consumer_offsets, made at start).
    internal = {tp for tp in parts if tp[0].startswith("__")}
    assert set(parts) - internal == {("all-a", 0), ("all-a", 1), ("all-a", 2), ("all-b", 0)}, parts
    assert ("__consumer_offsets", 0) in internal, sorted(internal)
    assert all(lag == 0 and future == 0 for _size, lag, future in parts.values()), parts
    assert parts[("all-a", 2)][0] >= 50 * 500 and parts[("all-a", 0)][0] == 0, parts
    # The same sizes as the admin client's v4 answer for the partitions it names.
    _, sizes = log_dir_sizes(kp, {"all-a": [0, 1, 2], "all-b": [0]})
    assert sizes == {tp: size for tp, (size, _, _) in parts.items() if tp not in internal}, (sizes, parts)


# ---------------------------------------------------------------------------------------------
# DescribeTopicPartitions
# ---------------------------------------------------------------------------------------------


def metadata_partitions(kp, topic: str) -> tuple:
    """(topic_id, {partition: (leader, leader_epoch, replicas, isr)}) from Metadata."""
    (t,) = kp.describe_topics([topic])
    assert t["error_code"] == 0, t
    return t["topic_id"], {p["partition_index"]: (p["leader_id"], p["leader_epoch"], list(p["replica_nodes"]),
                                                   list(p["isr_nodes"])) for p in t["partitions"]}


def test_describe_topic_partitions_pages_one_partition_at_a_time(broker, kp):
    create_topics(broker, {"paged": 3, "other": 2})
    topic_id, expected = metadata_partitions(kp, "paged")
    seen, cursor, pages = {}, None, 0
    while True:
        page = kp.describe_topic_partitions(["paged"], response_partition_limit=1, cursor=cursor)
        pages += 1
        assert len(page["topics"]) == 1, page
        t = page["topics"][0]
        assert (t["error_code"], t["name"], t["is_internal"]) == (0, "paged", False), t
        assert uuid.UUID(str(t["topic_id"])) == uuid.UUID(str(topic_id)), (t["topic_id"], topic_id)
        assert len(t["partitions"]) == 1, t
        p = t["partitions"][0]
        assert p["error_code"] == 0, p
        assert p["partition_index"] == pages - 1, (p, pages)
        seen[p["partition_index"]] = (p["leader_id"], p["leader_epoch"], p["replica_nodes"], p["isr_nodes"])
        assert p["leader_id"] == 0 and p["replica_nodes"] == [0] and p["isr_nodes"] == [0], p
        assert p["leader_epoch"] >= 0, p
        assert not p["eligible_leader_replicas"] and not p["last_known_elr"] and p["offline_replicas"] == [], p
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == {"topic_name": "paged", "partition_index": pages}, cursor
        assert pages < 10, "pagination does not end"
    assert pages == 3
    assert seen == expected, (seen, expected)


def test_describe_topic_partitions_all_topics_and_page_boundaries(broker, kp):
    create_topics(broker, {"b-two": 2, "a-three": 3})
    full = kp.describe_topic_partitions([])
    names = [t["name"] for t in full["topics"]]
    assert names == sorted(names) and {"a-three", "b-two"} <= set(names), names
    assert full["next_cursor"] is None
    # A limit that ends exactly at a topic's last partition points the cursor at the next topic.
    page = kp.describe_topic_partitions(["b-two", "a-three"], response_partition_limit=3)
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in page["topics"]] == [("a-three", [0, 1, 2])]
    assert page["next_cursor"] == {"topic_name": "b-two", "partition_index": 0}, page["next_cursor"]
    rest = kp.describe_topic_partitions(["b-two", "a-three"], response_partition_limit=3, cursor=page["next_cursor"])
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in rest["topics"]] == [("b-two", [0, 1])]
    assert rest["next_cursor"] is None


def test_describe_topic_partitions_unknown_invalid_and_bad_cursor(broker, kp):
    create_topics(broker, {"known": 1})
    got = kp.describe_topic_partitions(["known", "no-such-topic", "bad/name"])
    by_name = {t["name"]: t for t in got["topics"]}
    assert by_name["known"]["error_code"] == 0 and len(by_name["known"]["partitions"]) == 1, got
    unknown = by_name["no-such-topic"]
    assert unknown["error_code"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, unknown
    # kafka-python decodes the all-zero (unset) topic id as None.
    assert unknown["partitions"] == [] and unknown["topic_id"] is None, unknown
    assert by_name["bad/name"]["error_code"] == ERR_INVALID_TOPIC_EXCEPTION, by_name["bad/name"]
    # A cursor whose topic is not in the named list: Kafka refuses the request for every topic.
    bad = kp.describe_topic_partitions(["known"], cursor={"topic_name": "zzz", "partition_index": 0})
    assert [(t["name"], t["error_code"]) for t in bad["topics"]] == [("known", ERR_INVALID_REQUEST)], bad


def test_describe_topic_partitions_raw_frame(broker):
    """v0 by hand: flexible request header v2, response header v1, every field of one partition."""
    create_topics(broker, {"raw": 1})
    body = (kw.compact_array([kw.compact_string("raw") + kw.NO_TAGS]) + kw.i32(2000)
            + b"\xff"  # null cursor
            + kw.NO_TAGS)
    s = kw.connect(broker.port)
    try:
        data = kw.roundtrip(s, kw.flexible_frame(API_DESCRIBE_TOPIC_PARTITIONS, 0, 7575, body), timeout=T)
    finally:
        s.close()
    r = kw.Reader(data)
    assert r.i32() == 7575
    r.skip_tags()
    r.i32()  # throttle_time_ms
    assert r.compact_array_len() == 1
    assert r.i16() == 0 and r.compact_string() == "raw"
    topic_id = r.data[r.pos:r.pos + 16]
    r.pos += 16
    assert topic_id != bytes(16)
    assert r.i8() == 0  # is_internal
    assert r.compact_array_len() == 1
    err, index, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
    assert (err, index, leader) == (0, 0, 0) and epoch >= 0
    lists = [[r.i32() for _ in range(r.compact_array_len())] for _ in range(2)]  # replicas, isr
    assert lists == [[0], [0]]
    for _ in range(2):  # eligible_leader_replicas, last_known_elr: empty, not null
        assert r.uvarint() == 1
    assert r.compact_array_len() == 0  # offline_replicas
    r.skip_tags()
    r.i32()  # topic_authorized_operations
    r.skip_tags()
    assert r.i8() == -1  # null next_cursor
    r.skip_tags()
    assert r.remaining() == 0


def test_api_versions_advertises_the_admin_apis(broker):
    s = kw.connect(broker.port)
    try:
        _corr, err, keys = kw.parse_api_versions_v0(kw.roundtrip(s, kw.frame(kw.API_VERSIONS, 0, 1), timeout=T))
    finally:
        s.close()
    assert err == kw.ERR_NONE
    by_key = {k: (lo, hi) for k, lo, hi in keys}
    assert by_key[API_DESCRIBE_LOG_DIRS] == (1, 4), by_key.get(API_DESCRIBE_LOG_DIRS)
    assert by_key[API_DESCRIBE_TOPIC_PARTITIONS] == (0, 0), by_key.get(API_DESCRIBE_TOPIC_PARTITIONS)
