"""Admin and offset APIs through real clients: CreateTopics, DeleteTopics, CreatePartitions,
DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeCluster, DeleteRecords and ListOffsets,
driven by confluent_kafka.admin.AdminClient (kafka-python's KafkaAdminClient / KafkaConsumer as a
second client where it checks something confluent does not expose), asserting on error codes,
config values and sources, and offsets."""

import subprocess
from typing import Dict, List, Optional, Tuple

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

import kafka_wire as kw
from conftest import (
    admin_for,
    consume_all,
    consumer_conf,
    create_topic,
    error_of,
    producer_conf,
    wait_for_topic,
    wait_until,
)

# confluent's AlterConfigs (non-incremental) wrapper is deprecated, but it is the client call for
# the legacy API, which this file tests.
pytestmark = pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")

T = 15  # seconds: per admin call / future

# Every topic config the broker knows, with Kafka's default (Kafka 4's full list).
from test_topic_configs import KAFKA4_TOPIC_DEFAULTS as TOPIC_DEFAULTS  # noqa: E402


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def expect_error(fut, code: int, what: str) -> KafkaError:
    err = error_of(fut)
    assert err is not None, f"{what}: succeeded, expected error {code} ({KafkaError(code).name()})"
    assert err.code() == code, f"{what}: error {err.code()} ({err}), expected {code} ({KafkaError(code).name()})"
    return err


def topic_configs(admin, topic: str) -> Dict[str, Tuple[str, ConfigSource]]:
    """{name: (value, source)} of a topic's DescribeConfigs answer (every key the broker lists)."""
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    return {name: (e.value, ConfigSource(e.source)) for name, e in entries.items()}


def assert_topic_configs(admin, topic: str, overrides: Dict[str, str]) -> None:
    """The topic lists every known config; `overrides` with a topic-level source, the rest at the
    default value with source DEFAULT_CONFIG."""
    got = topic_configs(admin, topic)
    want = {name: (default, ConfigSource.DEFAULT_CONFIG) for name, default in TOPIC_DEFAULTS.items()}
    want.update({name: (v, ConfigSource.DYNAMIC_TOPIC_CONFIG) for name, v in overrides.items()})
    assert got == want, f"DescribeConfigs({topic}): got {got}, expected {want}"


def topic_names(admin) -> set:
    return set(admin.list_topics(timeout=T).topics)


def topic_id(admin, topic: str) -> str:
    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(timeout=T)
    return str(desc.topic_id)


def produce_one(producer: Producer, topic: str, value: bytes, partition: int = 0,
                timestamp: Optional[int] = None, key: Optional[bytes] = None):
    """Produce one record and flush: (error or None, offset)."""
    out = []
    kwargs = {"partition": partition, "key": key, "on_delivery": lambda err, msg: out.append((err, msg.offset()))}
    if timestamp is not None:
        kwargs["timestamp"] = timestamp
    producer.produce(topic, value, **kwargs)
    assert producer.flush(30) == 0, "record not delivered within 30 s"
    assert len(out) == 1, out
    return out[0]


def single_batch_producer(broker, **extra) -> Producer:
    """linger 0 and a flush after every record: each record is its own batch."""
    return Producer(producer_conf(broker, **{"linger.ms": 0, "compression.type": "none", **extra}))


def watermarks(broker, topic: str, partition: int = 0) -> Tuple[int, int]:
    c = Consumer(consumer_conf(broker))
    try:
        return tuple(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=T, cached=False))
    finally:
        c.close()


def list_offset(admin, topic: str, partition: int, spec):
    tp = TopicPartition(topic, partition)
    return admin.list_offsets({tp: spec}, request_timeout=T)[tp].result(timeout=T)


# ----------------------------------------------------------------------------------------------
# 1. CreateTopics with configs, and its errors
# ----------------------------------------------------------------------------------------------

def test_create_topics_configs_and_errors(broker):
    admin = admin_for(broker)
    create_topic(broker, "with-configs", 3, config={"retention.ms": "1234", "cleanup.policy": "compact"})
    assert_topic_configs(admin, "with-configs", {"retention.ms": "1234", "cleanup.policy": "compact"})

    # ConfigEntry flags as a client reads them: an override is not a default, a default is.
    res = ConfigResource(ResourceType.TOPIC, "with-configs")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    assert entries["max.message.bytes"].value == "1048588"
    assert entries["max.message.bytes"].is_default, entries["max.message.bytes"]
    assert not entries["retention.ms"].is_default, entries["retention.ms"]

    # Only the asked-for keys when DescribeConfigs names some (kafka-python sends configuration_keys).
    from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType, KafkaAdminClient
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=T * 1000)
    try:
        got = kp.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "with-configs",
                                                    configs={"retention.ms": None, "segment.bytes": None})],
                                  config_filter="all")
        cfg = got["topic"]["with-configs"]
        assert sorted(cfg) == ["retention.ms", "segment.bytes"], cfg
        assert cfg["retention.ms"]["value"] == "1234" and cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG", cfg
        assert cfg["segment.bytes"]["value"] == "1073741824" and cfg["segment.bytes"]["config_source"] == "DEFAULT_CONFIG", cfg
    finally:
        kp.close()

    # One CreateTopics request, per-topic answers.
    futs = admin.create_topics([
        NewTopic("with-configs", 1, 1),                                   # exists
        NewTopic("bad/name", 1, 1),                                       # invalid name
        NewTopic("rf-three", 1, 3),                                       # RF 3 on one broker
        NewTopic("unknown-config", 1, 1, config={"no.such.config": "1"}),
        NewTopic("bad-value", 1, 1, config={"retention.ms": "forever"}),
        NewTopic("bad-policy", 1, 1, config={"cleanup.policy": "shred"}),
        NewTopic("zero-partitions", 0, 1),
        NewTopic("fine-too", 2, 1),
    ], operation_timeout=T, request_timeout=T)
    expect_error(futs["with-configs"], KafkaError.TOPIC_ALREADY_EXISTS, "create existing topic")
    expect_error(futs["bad/name"], KafkaError.TOPIC_EXCEPTION, "create topic 'bad/name'")
    expect_error(futs["rf-three"], KafkaError.INVALID_REPLICATION_FACTOR, "create with replication factor 3")
    expect_error(futs["unknown-config"], KafkaError.INVALID_CONFIG, "create with unknown config")
    expect_error(futs["bad-value"], KafkaError.INVALID_CONFIG, "create with retention.ms=forever")
    expect_error(futs["bad-policy"], KafkaError.INVALID_CONFIG, "create with cleanup.policy=shred")
    expect_error(futs["zero-partitions"], KafkaError.INVALID_PARTITIONS, "create with 0 partitions")
    assert error_of(futs["fine-too"]) is None
    wait_for_topic(broker, "fine-too", 2, admin=admin)

    # The existing topic is untouched; the failed ones do not exist.
    assert_topic_configs(admin, "with-configs", {"retention.ms": "1234", "cleanup.policy": "compact"})
    names = topic_names(admin)
    for bad in ("bad/name", "rf-three", "unknown-config", "bad-value", "bad-policy", "zero-partitions"):
        assert bad not in names, f"failed create left topic {bad!r} behind: {sorted(names)}"
    assert len(admin.list_topics(topic="with-configs", timeout=T).topics["with-configs"].partitions) == 3

    # Replication factor -1 (broker default) and validate_only.
    fut = admin.create_topics([NewTopic("rf-default", 2, -1)], request_timeout=T)["rf-default"]
    assert error_of(fut) is None
    wait_for_topic(broker, "rf-default", 2, admin=admin)
    fut = admin.create_topics([NewTopic("validate-only", 4, 1)], validate_only=True, request_timeout=T)["validate-only"]
    assert error_of(fut) is None
    assert "validate-only" not in topic_names(admin), "validate_only CreateTopics created the topic"

    # DescribeConfigs of a topic that does not exist.
    res = ConfigResource(ResourceType.TOPIC, "never-created")
    expect_error(admin.describe_configs([res], request_timeout=T)[res], KafkaError.UNKNOWN_TOPIC_OR_PART,
                 "describe_configs of a missing topic")


# ----------------------------------------------------------------------------------------------
# 2. IncrementalAlterConfigs SET / DELETE, legacy AlterConfigs replace
# ----------------------------------------------------------------------------------------------

def incremental(admin, topic: str, ops: List[Tuple[str, Optional[str], AlterConfigOpType]]):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops])
    return admin.incremental_alter_configs([res], request_timeout=T)[res]


def legacy_alter(admin, topic: str, configs: Dict[str, str]):
    res = ConfigResource(ResourceType.TOPIC, topic, set_config=configs)
    return admin.alter_configs([res], request_timeout=T)[res]


def test_incremental_and_legacy_alter_configs(broker):
    admin = admin_for(broker)
    topic = "alter-me"
    create_topic(broker, topic, 1, config={"retention.ms": "1234"})
    SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE

    assert error_of(incremental(admin, topic, [("segment.bytes", "1048576", SET),
                                               ("max.message.bytes", "5000", SET)])) is None
    # Incremental: the untouched override (retention.ms) stays.
    assert_topic_configs(admin, topic, {"retention.ms": "1234", "segment.bytes": "1048576", "max.message.bytes": "5000"})

    assert error_of(incremental(admin, topic, [("retention.ms", None, DELETE)])) is None
    assert_topic_configs(admin, topic, {"segment.bytes": "1048576", "max.message.bytes": "5000"})

    # SET over an existing override.
    assert error_of(incremental(admin, topic, [("max.message.bytes", "6000", SET)])) is None
    assert_topic_configs(admin, topic, {"segment.bytes": "1048576", "max.message.bytes": "6000"})

    # Bad changes are refused with INVALID_CONFIG, and a request with one bad key changes nothing.
    expect_error(incremental(admin, topic, [("no.such.config", "1", SET)]), KafkaError.INVALID_CONFIG,
                 "incremental SET of an unknown config")
    expect_error(incremental(admin, topic, [("segment.ms", "5000", SET), ("retention.ms", "soon", SET)]),
                 KafkaError.INVALID_CONFIG, "incremental SET retention.ms=soon")
    expect_error(incremental(admin, topic, [("message.timestamp.type", "WallClock", SET)]),
                 KafkaError.INVALID_CONFIG, "incremental SET message.timestamp.type=WallClock")
    assert_topic_configs(admin, topic, {"segment.bytes": "1048576", "max.message.bytes": "6000"})

    # Missing topic.
    expect_error(incremental(admin, "no-such-topic", [("retention.ms", "1", SET)]),
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "incremental alter of a missing topic")

    # Legacy AlterConfigs replaces the whole override set: keys not sent go back to their defaults.
    assert error_of(legacy_alter(admin, topic, {"retention.ms": "9999", "cleanup.policy": "compact,delete"})) is None
    assert_topic_configs(admin, topic, {"retention.ms": "9999", "cleanup.policy": "compact,delete"})
    expect_error(legacy_alter(admin, topic, {"retention.ms": "1", "bogus.key": "x"}), KafkaError.INVALID_CONFIG,
                 "legacy alter with an unknown key")
    assert_topic_configs(admin, topic, {"retention.ms": "9999", "cleanup.policy": "compact,delete"})
    assert error_of(legacy_alter(admin, topic, {})) is None
    assert_topic_configs(admin, topic, {})

    # validate_only changes nothing.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "77", incremental_operation=SET)])
    assert error_of(admin.incremental_alter_configs([res], validate_only=True, request_timeout=T)[res]) is None
    assert_topic_configs(admin, topic, {})


# ----------------------------------------------------------------------------------------------
# 3. CreatePartitions
# ----------------------------------------------------------------------------------------------

def test_create_partitions_grow_and_refuse_shrink(broker_factory):
    broker = broker_factory(cores=2)
    admin = admin_for(broker)
    topic = "grow-me"
    create_topic(broker, topic, 2)

    fut = admin.create_partitions([NewPartitions(topic, 5)], operation_timeout=T, request_timeout=T)[topic]
    assert error_of(fut) is None
    wait_for_topic(broker, topic, 5, admin=admin)
    md = admin.list_topics(topic=topic, timeout=T).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4]

    p = single_batch_producer(broker)
    for part in range(5):
        err, off = produce_one(p, topic, b"to-%d" % part, partition=part)
        assert err is None and off == 0, f"produce to new partition {part}: err={err} offset={off}"
    got = consume_all(broker, topic, range(5), timeout=30)
    assert {part: [(o, v) for o, _k, v in recs] for part, recs in got.items()} == \
        {part: [(0, b"to-%d" % part)] for part in range(5)}

    for count in (3, 5):
        fut = admin.create_partitions([NewPartitions(topic, count)], request_timeout=T)[topic]
        expect_error(fut, KafkaError.INVALID_PARTITIONS, f"create_partitions {topic} 5 -> {count}")
    fut = admin.create_partitions([NewPartitions("no-such-topic", 4)], request_timeout=T)["no-such-topic"]
    expect_error(fut, KafkaError.UNKNOWN_TOPIC_OR_PART, "create_partitions of a missing topic")
    fut = admin.create_partitions([NewPartitions(topic, 8)], validate_only=True, request_timeout=T)[topic]
    assert error_of(fut) is None
    assert len(admin.list_topics(topic=topic, timeout=T).topics[topic].partitions) == 5, \
        "validate_only CreatePartitions changed the partition count"


# ----------------------------------------------------------------------------------------------
# 4. DescribeCluster, and the broker config resource
# ----------------------------------------------------------------------------------------------

def test_describe_cluster_and_broker_configs(broker_factory):
    # Broker-level topic defaults from the config file (Kafka's broker key names).
    broker = broker_factory(config={"num.partitions": 3, "log.retention.ms": 5000, "message.max.bytes": 300000})
    admin = admin_for(broker)
    cluster = admin.describe_cluster(request_timeout=T).result(timeout=T)
    assert cluster.cluster_id, f"empty cluster id: {cluster.cluster_id!r}"
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(0, "127.0.0.1", broker.advertised_port)], cluster.nodes
    assert cluster.controller is not None and cluster.controller.id == 0, cluster.controller
    # The same id that Metadata reports.
    assert admin.list_topics(timeout=T).cluster_id == cluster.cluster_id

    res = ConfigResource(ResourceType.BROKER, "0")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    values = {name: e.value for name, e in entries.items()}
    assert values.get("broker.id") == "0", values
    assert values.get("auto.create.topics.enable") == "true", values
    assert values.get("num.partitions") == "3", values
    assert values.get("log.retention.ms") == "5000", values
    assert values.get("message.max.bytes") == "300000", values
    assert values.get("log.segment.bytes") == "1073741824", values

    # A topic created with the broker defaults (-1 partitions, -1 replication factor) inherits them;
    # a broker-level value shows with source STATIC_BROKER_CONFIG, and a topic override still wins.
    fut = admin.create_topics([NewTopic("inherits", -1, -1, config={"segment.ms": "60000"})], request_timeout=T)["inherits"]
    assert error_of(fut) is None
    wait_for_topic(broker, "inherits", 3, admin=admin)
    got = topic_configs(admin, "inherits")
    assert got["retention.ms"] == ("5000", ConfigSource.STATIC_BROKER_CONFIG), got["retention.ms"]
    assert got["max.message.bytes"] == ("300000", ConfigSource.STATIC_BROKER_CONFIG), got["max.message.bytes"]
    assert got["segment.ms"] == ("60000", ConfigSource.DYNAMIC_TOPIC_CONFIG), got["segment.ms"]
    assert got["segment.bytes"] == ("1073741824", ConfigSource.DEFAULT_CONFIG), got["segment.bytes"]


def test_override_flag_wins_over_the_config_file_and_rejects_bad_values(broker_factory):
    # kafka-server-start.sh --override KEY=VALUE: later than the file, so it wins.
    broker = broker_factory(
        config={"num.partitions": 3, "log.retention.ms": 5000},
        extra_args=["--override", "num.partitions=5", "--override", "visible_on_append=TRUE"],
    )
    admin = admin_for(broker)
    res = ConfigResource(ResourceType.BROKER, "0")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    values = {name: e.value for name, e in entries.items()}
    assert values.get("num.partitions") == "5", values
    assert values.get("log.retention.ms") == "5000", values

    # With no --listen flag, the broker listens on, and advertises, its `listeners` config.
    by_config = broker_factory(listen_flags=False)
    md = admin_for(by_config).list_topics(timeout=T)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", by_config.port)], md.brokers

    # A value the key cannot take, or no '=', stops the broker before it starts, naming the problem.
    for bad, named in ((["--override", "visible_on_append=yes"], b"visible_on_append"),
                       (["--override", "num.partitions"], b"KEY=VALUE")):
        b = broker_factory(start=False, extra_args=bad)
        done = subprocess.run(b.command(), capture_output=True, timeout=60, env=b.env)
        assert done.returncode == 2, (done.returncode, done.stderr[-500:])
        assert named in done.stderr, done.stderr[-500:]


# ----------------------------------------------------------------------------------------------
# 5. DeleteRecords
# ----------------------------------------------------------------------------------------------

def test_delete_records_moves_low_watermark(broker):
    admin = admin_for(broker)
    topic = "trim-me"
    create_topic(broker, topic, 1)
    p = single_batch_producer(broker)
    for i in range(100):
        err, off = produce_one(p, topic, b"rec-%03d" % i)
        assert err is None and off == i, (err, off)
    assert watermarks(broker, topic) == (0, 100)

    tp = TopicPartition(topic, 0, 40)
    deleted = admin.delete_records([tp], request_timeout=T, operation_timeout=T)[tp].result(timeout=T)
    assert deleted.low_watermark == 40, deleted
    assert watermarks(broker, topic) == (40, 100)
    assert list_offset(admin, topic, 0, OffsetSpec.earliest()).offset == 40
    assert list_offset(admin, topic, 0, OffsetSpec.latest()).offset == 100
    # By timestamp, a target older than every record: the first offset still in the log.
    assert list_offset(admin, topic, 0, OffsetSpec.for_timestamp(0)).offset == 40

    # Reading from the beginning starts at the new log start (every record is its own batch).
    got = consume_all(broker, topic, [0], timeout=30)[0]
    assert got[0][0] == 40, f"first offset consumed from OFFSET_BEGINNING: {got[0][0]}, expected 40"
    assert [(o, v) for o, _k, v in got] == [(i, b"rec-%03d" % i) for i in range(40, 100)]

    # An earlier offset changes nothing; past the high watermark is OFFSET_OUT_OF_RANGE.
    tp = TopicPartition(topic, 0, 10)
    deleted = admin.delete_records([tp], request_timeout=T)[tp].result(timeout=T)
    assert deleted.low_watermark == 40, deleted
    tp = TopicPartition(topic, 0, 200)
    expect_error(admin.delete_records([tp], request_timeout=T)[tp], KafkaError.OFFSET_OUT_OF_RANGE,
                 "delete_records before offset 200 of a 100-record partition")
    assert watermarks(broker, topic) == (40, 100)

    # Fetching below the log start offset: OFFSET_OUT_OF_RANGE, so auto.offset.reset applies.
    c = Consumer(consumer_conf(broker, **{"auto.offset.reset": "error"}))
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        errs = []
        for _ in range(20):
            m = c.poll(0.5)
            if m is not None:
                errs.append(m.error() and m.error().code())
                break
        assert errs and errs[0] == KafkaError._AUTO_OFFSET_RESET, \
            f"fetch at offset 5 below log start 40 gave {errs}, expected an offset-out-of-range reset error"
    finally:
        c.close()

    # OFFSET_END (-1): delete everything up to the high watermark.
    tp = TopicPartition(topic, 0, -1)
    deleted = admin.delete_records([tp], request_timeout=T)[tp].result(timeout=T)
    assert deleted.low_watermark == 100, deleted
    assert watermarks(broker, topic) == (100, 100)
    err, off = produce_one(p, topic, b"after")
    assert err is None and off == 100, (err, off)


# ----------------------------------------------------------------------------------------------
# 6. ListOffsets: earliest, latest, max timestamp, by timestamp
# ----------------------------------------------------------------------------------------------

# Offsets 0..5; offset 3 carries the largest timestamp.
TIMESTAMPS = [1000, 2000, 3000, 9000, 4000, 5000]


def test_list_offsets_by_spec_and_timestamp(broker):
    admin = admin_for(broker)
    topic = "timed"
    create_topic(broker, topic, 1)
    p = single_batch_producer(broker)
    for i, ts in enumerate(TIMESTAMPS):
        err, off = produce_one(p, topic, b"ts-%d" % ts, timestamp=ts)
        assert err is None and off == i, (err, off)

    earliest = list_offset(admin, topic, 0, OffsetSpec.earliest())
    latest = list_offset(admin, topic, 0, OffsetSpec.latest())
    assert earliest.offset == 0, earliest
    assert latest.offset == len(TIMESTAMPS), latest
    maxts = list_offset(admin, topic, 0, OffsetSpec.max_timestamp())
    assert (maxts.offset, maxts.timestamp) == (3, 9000), f"max_timestamp: {maxts}"

    # by timestamp: the first offset whose timestamp is >= the target, with that record's timestamp.
    cases = {500: (0, 1000), 1000: (0, 1000), 2500: (2, 3000), 3000: (2, 3000), 3500: (3, 9000),
             4500: (3, 9000), 9000: (3, 9000), 10_000: (-1, -1)}
    got = {}
    for target in cases:
        r = list_offset(admin, topic, 0, OffsetSpec.for_timestamp(target))
        got[target] = (r.offset, r.timestamp)
    assert {t: o for t, (o, _ts) in got.items()} == {t: o for t, (o, _ts) in cases.items()}, \
        f"for_timestamp offsets: {got}, expected {cases}"

    # The consumer API (librdkafka ListOffsets path).
    c = Consumer(consumer_conf(broker))
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, 2500)], timeout=T)
        assert [(t.partition, t.offset, t.error) for t in res] == [(0, 2, None)], res
        res = c.offsets_for_times([TopicPartition(topic, 0, 10_000)], timeout=T)
        assert res[0].offset == -1, res
    finally:
        c.close()

    # kafka-python's consumer, which also reports the timestamp of the found record.
    from kafka import KafkaConsumer, TopicPartition as KpTopicPartition
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                       request_timeout_ms=T * 1000)
    try:
        ktp = KpTopicPartition(topic, 0)
        assert kc.beginning_offsets([ktp]) == {ktp: 0}
        assert kc.end_offsets([ktp]) == {ktp: len(TIMESTAMPS)}
        found = kc.offsets_for_times({ktp: 2500})[ktp]
        assert found is not None and found.offset == 2, f"kafka-python offsets_for_times(2500): {found}"
        kp_ts = found.timestamp
    finally:
        kc.close()

    # ListOffsets by timestamp answers the timestamp of the record found, not the one asked for.
    assert got == cases, f"for_timestamp (offset, timestamp): {got}, expected {cases}"
    assert kp_ts == 3000, f"kafka-python offsets_for_times(2500): timestamp {kp_ts}, expected 3000 (the record's)"


# ----------------------------------------------------------------------------------------------
# 7. DeleteTopics
# ----------------------------------------------------------------------------------------------

def test_delete_topic_then_recreate(broker_factory):
    broker = broker_factory(config={"auto.create.topics.enable": False})
    admin = admin_for(broker)
    topic = "doomed"
    create_topic(broker, topic, 2)
    old_id = topic_id(admin, topic)
    p = single_batch_producer(broker)
    for i in range(5):
        assert produce_one(p, topic, b"old-%d" % i, partition=i % 2)[0] is None
    del p

    assert error_of(admin.delete_topics([topic], operation_timeout=T, request_timeout=T)[topic]) is None
    wait_until(lambda: topic not in topic_names(admin), 10, what=f"{topic} gone from Metadata")
    md = admin.list_topics(topic=topic, timeout=T).topics[topic]
    assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, md.error
    expect_error(admin.delete_topics([topic], request_timeout=T)[topic], KafkaError.UNKNOWN_TOPIC_OR_PART,
                 "deleting an already deleted topic")

    # Raw Produce: UNKNOWN_TOPIC_OR_PARTITION, and auto-creation is off so nothing comes back.
    s = kw.connect(broker.port)
    try:
        data = kw.roundtrip(s, kw.frame(kw.API_PRODUCE, 8, 1, kw.produce_body([(topic, [(0, kw.record_batch([(b"k", b"v")]))])])))
        _corr, parts = kw.parse_produce_response(8, data)
        assert parts[(topic, 0)]["error_code"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, parts
    finally:
        s.close()
    # confluent-kafka: the delivery fails.
    errors = []
    p = Producer(producer_conf(broker, **{"topic.metadata.propagation.max.ms": 1000, "message.timeout.ms": 10000}))
    p.produce(topic, b"x", partition=0, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(30) == 0
    assert len(errors) == 1 and errors[0] is not None, f"delivery to a deleted topic reported {errors}"
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors[0]
    del p
    assert topic not in topic_names(admin), "the deleted topic came back although auto-creation is off"

    # Re-created: a new topic id, empty, offsets from 0.
    create_topic(broker, topic, 2)
    new_id = topic_id(admin, topic)
    assert new_id != old_id, f"re-created topic kept the old id {old_id}"
    assert watermarks(broker, topic, 0) == (0, 0)
    assert watermarks(broker, topic, 1) == (0, 0)
    p = single_batch_producer(broker)
    err, off = produce_one(p, topic, b"new-0", partition=0)
    assert err is None and off == 0, (err, off)
    got = consume_all(broker, topic, [0, 1], timeout=30)
    assert {part: [(o, v) for o, _k, v in recs] for part, recs in got.items()} == {0: [(0, b"new-0")], 1: []}


# ----------------------------------------------------------------------------------------------
# 8. max.message.bytes is enforced (and follows config changes)
# ----------------------------------------------------------------------------------------------

def test_max_message_bytes_enforced(broker_factory):
    broker = broker_factory(cores=2)
    admin = admin_for(broker)
    topics = ["small-msgs-0", "small-msgs-1"]  # two topics: with 2 shards, partitions on both shards
    for t in topics:
        create_topic(broker, t, 1, config={"max.message.bytes": "2000"})
    p = single_batch_producer(broker, **{"message.max.bytes": 100_000, "message.timeout.ms": 10_000,
                                         "retries": 0})
    big = b"x" * 10_240
    for t in topics:
        err, _ = produce_one(p, t, b"small" * 20)
        assert err is None, f"{t}: 100-byte record refused: {err}"
        err, _ = produce_one(p, t, big)
        assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, \
            f"{t}: 10 KB record with max.message.bytes=2000: delivery {err!r}, expected MSG_SIZE_TOO_LARGE (10)"

    # Raising the limit takes effect on the live partition, lowering it again too.
    for t in topics:
        assert error_of(incremental(admin, t, [("max.message.bytes", "20000", AlterConfigOpType.SET)])) is None
        err, off = produce_one(p, t, big)
        assert err is None and off == 1, f"{t}: 10 KB record after max.message.bytes=20000: {err!r} offset {off}"
        assert error_of(legacy_alter(admin, t, {"max.message.bytes": "2000"})) is None
        err, _ = produce_one(p, t, big)
        assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, \
            f"{t}: 10 KB record after max.message.bytes back to 2000: {err!r}"
        got = consume_all(broker, t, [0], timeout=30)[0]
        assert [(o, len(v)) for o, _k, v in got] == [(0, 100), (1, 10_240)]


# ----------------------------------------------------------------------------------------------
# 9. Restart keeps topic ids, partition counts, configs, log start offsets, deletions
# ----------------------------------------------------------------------------------------------

def test_admin_changes_survive_restart(broker_factory):
    broker = broker_factory(cores=2)
    admin = admin_for(broker)
    create_topic(broker, "kept", 2, config={"retention.ms": "1234"})
    create_topic(broker, "gone", 1)
    assert error_of(incremental(admin, "kept", [("segment.bytes", "1048576", AlterConfigOpType.SET),
                                                ("cleanup.policy", "compact", AlterConfigOpType.SET)])) is None
    assert error_of(admin.create_partitions([NewPartitions("kept", 4)], request_timeout=T)["kept"]) is None
    wait_for_topic(broker, "kept", 4, admin=admin)
    p = single_batch_producer(broker, **{"enable.idempotence": True})
    # "kept" is compacted now: its records need keys (issue 18), as in Kafka.
    for i in range(3):
        assert produce_one(p, "kept", b"p3-%d" % i, partition=3, key=b"k%d" % i) == (None, i)
    tp = TopicPartition("kept", 3, 2)
    assert admin.delete_records([tp], request_timeout=T)[tp].result(timeout=T).low_watermark == 2
    assert error_of(admin.delete_topics(["gone"], request_timeout=T)["gone"]) is None
    del p

    overrides = {"retention.ms": "1234", "segment.bytes": "1048576", "cleanup.policy": "compact"}
    before_id = topic_id(admin, "kept")
    cluster_id = admin.describe_cluster(request_timeout=T).result(timeout=T).cluster_id
    assert_topic_configs(admin, "kept", overrides)

    broker.restart()
    admin = admin_for(broker)
    wait_for_topic(broker, "kept", 4, admin=admin)
    assert topic_id(admin, "kept") == before_id
    assert admin.describe_cluster(request_timeout=T).result(timeout=T).cluster_id == cluster_id
    assert_topic_configs(admin, "kept", overrides)
    assert "gone" not in topic_names(admin), "a deleted topic came back after restart"
    assert watermarks(broker, "kept", 3) == (2, 3)
    got = consume_all(broker, "kept", [3], timeout=30)[3]
    assert [(o, v) for o, _k, v in got] == [(2, b"p3-2")]

    # A second client's view of the overrides (kafka-python, 'modified' filter: topic-level only).
    from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType, KafkaAdminClient
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=T * 1000)
    try:
        got = kp.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "kept")])
        assert {k: v["value"] for k, v in got["topic"]["kept"].items()} == overrides, got
    finally:
        kp.close()

    # Still writable after the restart: the new partitions, with an idempotent producer (new producer id).
    p = single_batch_producer(broker, **{"enable.idempotence": True})
    assert produce_one(p, "kept", b"p3-3", partition=3, key=b"k3") == (None, 3)
    assert produce_one(p, "kept", b"p2-0", partition=2, key=b"k0") == (None, 0)
