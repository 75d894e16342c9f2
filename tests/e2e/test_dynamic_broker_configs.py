"""Dynamic broker configs (issue 18, KIP-226): IncrementalAlterConfigs and AlterConfigs on the
BROKER resource, for this broker's id or for the cluster-wide default (resource name ""), as
Kafka 4.4 answers them (checked against a real Kafka 4.4.0 with perf/kafka.sh): only the dynamic
keys may be set (`log.*` synonyms of topic configs, the cleaner's keys), a non-dynamic key or a
bad value is INVALID_REQUEST naming the key, APPEND on a non-list key INVALID_CONFIG. The values
are metadata records, so they survive a restart and reach every broker of a cluster, and a topic
without its own override follows them at once (source DYNAMIC_BROKER_CONFIG or
DYNAMIC_DEFAULT_BROKER_CONFIG).

The cluster default is reached on the wire: both Python clients refuse a BROKER resource named ""."""

import struct
import time
from typing import Dict, List, Optional, Tuple

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

import kafka_wire as kw
from conftest import admin_for, create_topics, error_of, wait_until

T = 15.0
BROKER = 4
TOPIC = 2
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
ERR_INVALID_CONFIG, ERR_INVALID_REQUEST = 40, 42
DYNAMIC_TOPIC, DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 1, 2, 3, 4, 5


# ----------------------------------------------------------------------------------------------
# The three APIs on the wire (non-flexible versions, request header v1)
# ----------------------------------------------------------------------------------------------

def _call(port: int, api_key: int, version: int, body: bytes) -> kw.Reader:
    sock = kw.connect(port)
    try:
        data = kw.roundtrip(sock, kw.frame(api_key, version, 11, body))
    finally:
        sock.close()
    r = kw.Reader(data)
    assert r.i32() == 11, "correlation id"
    r.i32()  # throttle
    return r


def describe(port: int, rtype: int, name: str, keys: Optional[List[str]] = None):
    """DescribeConfigs v1 with synonyms: (error_code, message, {name: {value, read_only, source, synonyms}})."""
    key_list = struct.pack(">i", -1) if keys is None else kw.array([kw.string(k) for k in keys])
    r = _call(port, 32, 1, kw.array([kw.i8(rtype) + kw.string(name) + key_list]) + kw.i8(1))
    assert r.i32() == 1
    code, message = r.i16(), r.nullable_string()
    assert (r.i8(), r.string()) == (rtype, name)
    configs = {}
    for _ in range(r.i32()):
        cname, value = r.string(), r.nullable_string()
        read_only, source, _sensitive = bool(r.i8()), r.i8(), r.i8()
        synonyms = [(r.string(), r.nullable_string(), r.i8()) for _ in range(r.i32())]
        configs[cname] = {"value": value, "read_only": read_only, "source": source, "synonyms": synonyms}
    assert r.remaining() == 0
    return code, message, configs


def incremental(port: int, name: str, ops: List[Tuple[str, int, Optional[str]]], validate_only: bool = False):
    """IncrementalAlterConfigs v0 on BROKER `name`: (error_code, message)."""
    entries = [kw.string(k) + kw.i8(op) + kw.nullable_string(v) for k, op, v in ops]
    r = _call(port, 44, 0, kw.array([kw.i8(BROKER) + kw.string(name) + kw.array(entries)]) + kw.i8(int(validate_only)))
    assert r.i32() == 1
    code, message = r.i16(), r.nullable_string()
    assert (r.i8(), r.string()) == (BROKER, name)
    return code, message


def legacy_alter(port: int, name: str, configs: Dict[str, str]):
    """AlterConfigs v0 on BROKER `name` (replaces the resource's whole set): (error_code, message)."""
    entries = [kw.string(k) + kw.nullable_string(v) for k, v in configs.items()]
    r = _call(port, 33, 0, kw.array([kw.i8(BROKER) + kw.string(name) + kw.array(entries)]) + kw.i8(0))
    assert r.i32() == 1
    code, message = r.i16(), r.nullable_string()
    assert (r.i8(), r.string()) == (BROKER, name)
    return code, message


def value_and_source(port: int, rtype: int, name: str, key: str):
    code, message, configs = describe(port, rtype, name, [key])
    assert code == 0, message
    return configs[key]["value"], configs[key]["source"]


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

def test_set_and_delete_per_broker_and_cluster_default_values(broker):
    port = broker.port
    assert incremental(port, "", [("log.retention.ms", SET, "7000"), ("log.segment.bytes", SET, "2000000")]) == (0, None)
    assert incremental(port, "0", [("log.retention.ms", SET, "1000"), ("log.cleaner.backoff.ms", SET, "2000")]) == (0, None)
    # The cleanup policy list grows from Kafka's default (delete), as in Kafka.
    assert incremental(port, "0", [("log.cleanup.policy", APPEND, "compact")]) == (0, None)

    code, _, mine = describe(port, BROKER, "0")
    assert code == 0
    assert (mine["log.retention.ms"]["value"], mine["log.retention.ms"]["source"]) == ("1000", DYNAMIC_BROKER)
    assert mine["log.retention.ms"]["synonyms"] == [
        ("log.retention.ms", "1000", DYNAMIC_BROKER),
        ("log.retention.ms", "7000", DYNAMIC_DEFAULT),
        ("log.retention.hours", "168", DEFAULT),
    ]
    assert (mine["log.segment.bytes"]["value"], mine["log.segment.bytes"]["source"]) == ("2000000", DYNAMIC_DEFAULT)
    assert mine["log.segment.bytes"]["synonyms"] == [
        ("log.segment.bytes", "2000000", DYNAMIC_DEFAULT), ("log.segment.bytes", "1073741824", DEFAULT)]
    assert (mine["log.cleanup.policy"]["value"], mine["log.cleanup.policy"]["source"]) == ("delete,compact", DYNAMIC_BROKER)
    assert mine["log.cleaner.backoff.ms"]["source"] == DYNAMIC_BROKER
    # read_only is false exactly for the dynamic keys.
    assert not mine["log.retention.ms"]["read_only"] and not mine["log.cleaner.threads"]["read_only"]
    for key in ["log.retention.hours", "num.partitions", "log.cleaner.enable", "log.dirs", "log.retention.check.interval.ms"]:
        assert mine[key]["read_only"], key

    # The cluster default resource lists what is set there, and only that.
    code, _, default = describe(port, BROKER, "")
    assert code == 0
    assert {k: (c["value"], c["source"], c["read_only"]) for k, c in default.items()} == {
        "log.retention.ms": ("7000", DYNAMIC_DEFAULT, False), "log.segment.bytes": ("2000000", DYNAMIC_DEFAULT, False)}
    assert default["log.retention.ms"]["synonyms"] == [("log.retention.ms", "7000", DYNAMIC_DEFAULT)]

    # confluent-kafka sees the same through its AdminClient (per-broker resource).
    admin = admin_for(broker)
    res = ConfigResource(ResourceType.BROKER, "0")
    entry = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)["log.retention.ms"]
    assert (entry.value, entry.source, entry.is_read_only) == ("1000", DYNAMIC_BROKER, False)
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert error_of(admin.incremental_alter_configs([res], request_timeout=T)[res]) is None

    # DELETE falls back to the next level: the cluster default, then the static/Kafka default.
    assert value_and_source(port, BROKER, "0", "log.retention.ms") == ("7000", DYNAMIC_DEFAULT)
    assert incremental(port, "", [("log.retention.ms", DELETE, None)]) == (0, None)
    assert value_and_source(port, BROKER, "0", "log.retention.ms")[1] == DEFAULT
    # The legacy API replaces the broker's whole set: what it does not name goes.
    assert legacy_alter(port, "0", {"log.retention.ms": "3000"}) == (0, None)
    _, _, mine = describe(port, BROKER, "0", ["log.retention.ms", "log.cleanup.policy", "log.cleaner.backoff.ms"])
    assert {k: c["source"] for k, c in mine.items()} == {
        "log.retention.ms": DYNAMIC_BROKER, "log.cleanup.policy": DEFAULT, "log.cleaner.backoff.ms": DEFAULT}


def test_refusals_are_kafkas(broker):
    port = broker.port
    code, message = incremental(port, "0", [("num.partitions", SET, "3")])
    assert (code, message) == (ERR_INVALID_REQUEST, "Cannot update these configs dynamically: [num.partitions]")
    code, message = incremental(port, "", [("log.retention.hours", SET, "2")])
    assert (code, message) == (ERR_INVALID_REQUEST, "Cannot update these configs dynamically: [log.retention.hours]")
    code, message = incremental(port, "0", [("log.retention.ms", SET, "abc")])
    assert (code, message) == (ERR_INVALID_REQUEST, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG")
    code, message = incremental(port, "0", [("log.segment.bytes", SET, "10")])
    assert code == ERR_INVALID_REQUEST and "log.segment.bytes" in message and "1048576" in message, message
    code, message = incremental(port, "0", [("log.cleanup.policy", SET, "bogus")])
    assert code == ERR_INVALID_REQUEST and "log.cleanup.policy" in message, message
    code, message = incremental(port, "0", [("log.retention.ms", APPEND, "5")])
    assert (code, message) == (ERR_INVALID_CONFIG, "Config value append is not allowed for config key: log.retention.ms")
    assert legacy_alter(port, "0", {"num.partitions": "3"})[0] == ERR_INVALID_REQUEST
    # Another broker's id, or no number at all.
    assert incremental(port, "2", [("log.retention.ms", SET, "1")]) == (ERR_INVALID_REQUEST, "Unexpected broker id, expected 0, but received 2")
    assert incremental(port, "abc", [("log.retention.ms", SET, "1")]) == (ERR_INVALID_REQUEST, "Node id must be an integer, but it is: abc")
    # validate_only checks and changes nothing.
    assert incremental(port, "0", [("log.retention.ms", SET, "5000")], validate_only=True) == (0, None)
    assert incremental(port, "0", [("num.partitions", SET, "3")], validate_only=True)[0] == ERR_INVALID_REQUEST
    assert value_and_source(port, BROKER, "0", "log.retention.ms")[1] == DEFAULT
    # Nothing refused was stored.
    code, _, default = describe(port, BROKER, "")
    assert (code, default) == (0, {})
    # An unknown key is stored as given, as Kafka does (a custom config), and changes nothing.
    assert incremental(port, "0", [("no.such.key", SET, "3")]) == (0, None)


def _produce(bootstrap: str, topic: str, value: bytes, timestamp: int = 0):
    """Produces one record; the delivery error (None when it was written)."""
    outcome = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0, "message.max.bytes": 1 << 20})
    p.produce(topic, value, timestamp=timestamp, on_delivery=lambda err, msg: outcome.append(err))
    p.flush(T)
    assert outcome, "no delivery report"
    return outcome[0]


def _first_record(bootstrap: str, topic: str, partition: int = 0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}-{time.monotonic()}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                return m
        raise AssertionError(f"no record read from {topic}")
    finally:
        c.close()


def test_a_topic_without_an_override_follows_the_dynamic_defaults(broker_factory):
    b = broker_factory(config={"log.retention.check.interval.ms": 300})
    port = b.port
    create_topics(b, {"plain": 1, "pinned": 1})
    admin = admin_for(b)
    res = ConfigResource(ResourceType.TOPIC, "pinned", incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "1048588", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(admin.incremental_alter_configs([res], request_timeout=T)[res]) is None

    # The broker's own value: LogAppendTime replaces the producer's timestamp at once.
    assert incremental(port, "0", [("log.message.timestamp.type", SET, "LogAppendTime")]) == (0, None)
    assert value_and_source(port, TOPIC, "plain", "message.timestamp.type") == ("LogAppendTime", DYNAMIC_BROKER)
    assert value_and_source(port, TOPIC, "pinned", "message.timestamp.type") == ("CreateTime", DYNAMIC_TOPIC)
    old = int(time.time() * 1000) - 3_600_000
    assert _produce(b.bootstrap, "plain", b"v", timestamp=old) is None
    assert _produce(b.bootstrap, "pinned", b"v", timestamp=old) is None
    kind, ts = _first_record(b.bootstrap, "plain").timestamp()
    assert kind == 2 and ts > old + 3_000_000, (kind, ts)  # TIMESTAMP_LOG_APPEND_TIME, the broker's clock
    assert _first_record(b.bootstrap, "pinned").timestamp() == (1, old), "a topic override wins"

    # The cluster default: a smaller message.max.bytes refuses a larger batch.
    assert incremental(port, "", [("message.max.bytes", SET, "2000")]) == (0, None)
    _, _, topic = describe(port, TOPIC, "plain", ["max.message.bytes"])
    assert (topic["max.message.bytes"]["value"], topic["max.message.bytes"]["source"]) == ("2000", DYNAMIC_DEFAULT)
    assert topic["max.message.bytes"]["synonyms"] == [
        ("message.max.bytes", "2000", DYNAMIC_DEFAULT), ("message.max.bytes", "1048588", DEFAULT)]
    err = _produce(b.bootstrap, "plain", b"x" * 10_000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    assert _produce(b.bootstrap, "pinned", b"x" * 10_000) is None
    assert incremental(port, "", [("message.max.bytes", DELETE, None)]) == (0, None)
    assert _produce(b.bootstrap, "plain", b"x" * 10_000) is None

    # Retention by a dynamic log.retention.ms and log.roll.ms: old segments go.
    assert incremental(port, "", [("log.roll.ms", SET, "200"), ("log.retention.ms", SET, "500")]) == (0, None)
    for _ in range(3):
        assert _produce(b.bootstrap, "plain", b"r") is None
        time.sleep(0.3)

    def start_offset():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "watermarks"})
        try:
            return c.get_watermark_offsets(TopicPartition("plain", 0), timeout=T)[0]
        finally:
            c.close()
    wait_until(lambda: start_offset() > 0, 15, what="retention to delete old segments of 'plain'")


def test_values_survive_a_restart(broker_factory):
    b = broker_factory()
    port = b.port
    create_topics(b, {"kept": 1})
    assert incremental(port, "", [("log.segment.bytes", SET, "2000000"), ("log.cleaner.threads", SET, "2")]) == (0, None)
    assert incremental(port, "0", [("log.message.timestamp.type", SET, "LogAppendTime")]) == (0, None)
    b.restart()
    port = b.port
    assert value_and_source(port, BROKER, "0", "log.segment.bytes") == ("2000000", DYNAMIC_DEFAULT)
    assert value_and_source(port, BROKER, "0", "log.cleaner.threads") == ("2", DYNAMIC_DEFAULT)
    assert value_and_source(port, BROKER, "0", "log.message.timestamp.type") == ("LogAppendTime", DYNAMIC_BROKER)
    assert value_and_source(port, TOPIC, "kept", "segment.bytes") == ("2000000", DYNAMIC_DEFAULT)
    # And the log that opened at start-up follows it.
    old = int(time.time() * 1000) - 3_600_000
    assert _produce(b.bootstrap, "kept", b"v", timestamp=old) is None
    assert _first_record(b.bootstrap, "kept").timestamp()[0] == 2


def test_a_cluster_default_reaches_every_broker(cluster_factory):
    c = cluster_factory(size=3)
    node = c.broker(1)
    admin = c.admin()
    from confluent_kafka.admin import NewTopic
    futs = admin.create_topics([NewTopic("everywhere", 3, 3)], request_timeout=T)
    assert error_of(futs["everywhere"]) is None
    leaders = lambda: {p: s["leader"] for p, s in c.partition_state("everywhere").items()}
    wait_until(lambda: sorted(leaders().values()) == [1, 2, 3], 30, what="one leader per broker")
    # Every leader takes a 10 kB batch first: its log is open, under the old limit.
    p = Producer({"bootstrap.servers": c.bootstrap, "linger.ms": 0, "retries": 0})
    outcome = {}
    for partition in range(3):
        p.produce("everywhere", b"x" * 10_000, partition=partition,
                  on_delivery=lambda err, msg: outcome.__setitem__(msg.partition(), err))
    p.flush(T)
    assert outcome == {0: None, 1: None, 2: None}, outcome

    assert incremental(node.port, "", [("message.max.bytes", SET, "2000")]) == (0, None)
    for n in (1, 2, 3):
        wait_until(lambda: value_and_source(c.broker(n).port, BROKER, str(n), "message.max.bytes") == ("2000", DYNAMIC_DEFAULT),
                   15, what=f"broker {n} to see the cluster default")
        assert value_and_source(c.broker(n).port, TOPIC, "everywhere", "max.message.bytes") == ("2000", DYNAMIC_DEFAULT)
    # Every leader refuses a batch over the new limit.
    outcome = {}
    for partition in range(3):
        p.produce("everywhere", b"x" * 10_000, partition=partition,
                  on_delivery=lambda err, msg: outcome.__setitem__(msg.partition(), err))
    p.flush(T)
    assert sorted(outcome) == [0, 1, 2]
    assert all(e is not None and e.code() == KafkaError.MSG_SIZE_TOO_LARGE for e in outcome.values()), outcome
    # A per-broker value concerns that broker only.
    assert incremental(c.broker(2).port, "2", [("message.max.bytes", SET, "100000")]) == (0, None)
    wait_until(lambda: value_and_source(c.broker(2).port, BROKER, "2", "message.max.bytes") == ("100000", DYNAMIC_BROKER),
               15, what="broker 2's own value")
    assert value_and_source(c.broker(3).port, BROKER, "3", "message.max.bytes") == ("2000", DYNAMIC_DEFAULT)
