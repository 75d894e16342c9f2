"""Every Kafka 4 topic config, through real clients against one broker: CreateTopics with each
config and a valid value, an invalid value of each type (INVALID_CONFIG naming the key),
DescribeConfigs with Kafka's defaults, sources, types, synonyms and documentation, and the BROKER
resource with its `log.*` defaults (log.cleaner.backoff.ms=15000)."""

import struct
from typing import Dict, List, Optional

from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceType

import kafka_wire as kw
from conftest import admin_for, create_topic, error_of

T = 15  # seconds: per admin call / future

# Kafka 4.0's topic configs and defaults (LogConfig, with KIP-1030's 4.0 changes).
KAFKA4_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.gzip.level": "-1",
    "compression.lz4.level": "9",
    "compression.type": "producer",
    "compression.zstd.level": "3",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "follower.replication.throttled.replicas": "",
    "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}

# A valid value other than the default for each config (remote.storage.enable only takes false:
# Kafka refuses true where the broker has no tiered storage, and so does Ringlog).
VALID = {
    "cleanup.policy": "compact,delete",
    "compression.gzip.level": "6",
    "compression.lz4.level": "12",
    "compression.type": "zstd",
    "compression.zstd.level": "-5",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "0",
    "flush.messages": "1000",
    "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:0",
    "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "-1",
    "local.retention.ms": "1000",
    "max.compaction.lag.ms": "600000",
    "max.message.bytes": "2000000",
    "message.timestamp.after.max.ms": "1000",
    "message.timestamp.before.max.ms": "86400000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25",
    "min.compaction.lag.ms": "1000",
    "min.insync.replicas": "1",
    "preallocate": "true",
    "remote.log.copy.disable": "true",
    "remote.log.delete.on.disable": "true",
    "remote.storage.enable": "false",
    "retention.bytes": "1073741824",
    "retention.ms": "-1",
    "segment.bytes": "1048576",
    "segment.index.bytes": "4096",
    "segment.jitter.ms": "100",
    "segment.ms": "3600000",
    "unclean.leader.election.enable": "true",
}

# An invalid value of each config type (and of each kind of rule).
INVALID = [
    ("segment.bytes", "1GB"),                       # INT: not a number
    ("segment.bytes", "1048575"),                   # INT: below Kafka 4's 1 MiB
    ("max.message.bytes", "2147483648"),            # INT: out of range
    ("compression.lz4.level", "18"),                # INT: range 1..17
    ("compression.gzip.level", "0"),                # INT: -1 or 1..9
    ("retention.ms", "-2"),                         # LONG: at least -1
    ("segment.jitter.ms", "soon"),                  # LONG: not a number
    ("min.cleanable.dirty.ratio", "1.5"),           # DOUBLE: 0..1
    ("min.cleanable.dirty.ratio", "half"),          # DOUBLE: not a number
    ("preallocate", "yes"),                         # BOOLEAN
    ("compression.type", "brotli"),                 # STRING: one of
    ("message.timestamp.type", "BrokerTime"),       # STRING: one of
    ("cleanup.policy", "shred"),                    # LIST: of compact, delete
    ("leader.replication.throttled.replicas", "7"),  # LIST: partition:broker
    ("remote.storage.enable", "true"),              # no tiered storage in this broker
    ("message.downconversion.enable", "true"),      # removed in Kafka 4.0
]

CONFIG_TYPES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "LONG": 5, "DOUBLE": 6, "LIST": 7}


def describe(admin, rtype, name: str) -> Dict[str, ConfigEntry]:
    res = ConfigResource(rtype, name)
    return admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)


# ----------------------------------------------------------------------------------------------
# DescribeConfigs v3 on the wire: confluent's ConfigEntry has no type or documentation.
# ----------------------------------------------------------------------------------------------

def describe_v3(port: int, rtype: int, name: str, keys: Optional[List[str]] = None,
                synonyms: bool = True, documentation: bool = True):
    """(error_code, error_message, {name: {value, read_only, source, sensitive, synonyms, type, doc}})."""
    key_list = struct.pack(">i", -1) if keys is None else kw.array([kw.string(k) for k in keys])
    body = kw.array([kw.i8(rtype) + kw.string(name) + key_list]) + kw.i8(int(synonyms)) + kw.i8(int(documentation))
    sock = kw.connect(port)
    try:
        data = kw.roundtrip(sock, kw.frame(32, 3, 7, body))
    finally:
        sock.close()
    r = kw.Reader(data)
    assert r.i32() == 7, "correlation id"
    r.i32()  # throttle
    assert r.i32() == 1, "one result"
    error_code, error_message = r.i16(), r.nullable_string()
    assert (r.i8(), r.string()) == (rtype, name)
    configs = {}
    for _ in range(r.i32()):
        cname, value = r.string(), r.nullable_string()
        read_only, source, sensitive = bool(r.i8()), r.i8(), bool(r.i8())
        syns = [(r.string(), r.nullable_string(), r.i8()) for _ in range(r.i32())]
        configs[cname] = {"value": value, "read_only": read_only, "source": source, "sensitive": sensitive,
                          "synonyms": syns, "type": r.i8(), "doc": r.nullable_string()}
    assert r.remaining() == 0, "trailing bytes"
    return error_code, error_message, configs


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

def test_each_config_with_a_valid_value_is_accepted_stored_and_described(broker):
    admin = admin_for(broker)
    assert sorted(VALID) == sorted(KAFKA4_TOPIC_DEFAULTS)
    # One topic per config, all in one CreateTopics.
    topics = {f"valid-{name.replace('.', '-')}": name for name in VALID}
    futs = admin.create_topics([NewTopic(t, 1, 1, config={name: VALID[name]}) for t, name in topics.items()],
                               request_timeout=T)
    for topic, name in topics.items():
        err = error_of(futs[topic])
        assert err is None, f"{name}={VALID[name]}: {err}"
    for topic, name in list(topics.items())[:5]:
        got = describe(admin, ResourceType.TOPIC, topic)[name]
        assert (got.value, got.source) == (VALID[name], ConfigSource.DYNAMIC_TOPIC_CONFIG.value), (name, got)

    # And all of them on one topic: each described with its value and a topic source.
    create_topic(broker, "all-configs", 1, config=VALID)
    got = {n: (e.value, ConfigSource(e.source)) for n, e in describe(admin, ResourceType.TOPIC, "all-configs").items()}
    assert got == {n: (v, ConfigSource.DYNAMIC_TOPIC_CONFIG) for n, v in VALID.items()}, got


def test_an_invalid_value_of_each_type_is_invalid_config_naming_the_key(broker):
    admin = admin_for(broker)
    futs = admin.create_topics([NewTopic(f"bad-{i}", 1, 1, config={k: v}) for i, (k, v) in enumerate(INVALID)],
                               request_timeout=T)
    for i, (key, value) in enumerate(INVALID):
        err = error_of(futs[f"bad-{i}"])
        assert err is not None, f"{key}={value} was accepted"
        assert err.code() == KafkaError.INVALID_CONFIG, f"{key}={value}: {err}"
        assert key in err.str(), f"{key}={value}: the message does not name the key: {err.str()}"
    assert not any(t.startswith("bad-") for t in admin.list_topics(timeout=T).topics)

    # Conflicting keys (Kafka's LogConfig.validate): min.compaction.lag.ms above max.
    fut = admin.create_topics([NewTopic("lags", 1, 1, config={"min.compaction.lag.ms": "2000",
                                                              "max.compaction.lag.ms": "1000"})], request_timeout=T)["lags"]
    err = error_of(fut)
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG and "min.compaction.lag.ms" in err.str(), err

    # AlterConfigs checks the same way, and leaves the topic as it was.
    create_topic(broker, "alter-me", 1, config={"compression.type": "lz4"})
    res = ConfigResource(ResourceType.TOPIC, "alter-me", incremental_configs=[
        ConfigEntry("compression.type", "brotli", incremental_operation=AlterConfigOpType.SET)])
    err = error_of(admin.incremental_alter_configs([res], request_timeout=T)[res])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG and "compression.type" in err.str(), err
    res = ConfigResource(ResourceType.TOPIC, "alter-me", incremental_configs=[
        ConfigEntry("compression.zstd.level", "19", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(admin.incremental_alter_configs([res], request_timeout=T)[res]) is None
    got = describe(admin, ResourceType.TOPIC, "alter-me")
    assert (got["compression.type"].value, got["compression.zstd.level"].value) == ("lz4", "19")


def test_append_and_subtract_apply_to_list_configs_only(broker):
    admin = admin_for(broker)
    create_topic(broker, "lists", 1)

    def alter(name: str, value: str, op):
        res = ConfigResource(ResourceType.TOPIC, "lists", incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op)])
        return error_of(admin.incremental_alter_configs([res], request_timeout=T)[res])

    def value(name: str):
        e = describe(admin, ResourceType.TOPIC, "lists")[name]
        return e.value, ConfigSource(e.source)

    # From Kafka's default "delete": APPEND adds, a repeated item is not added twice.
    assert alter("cleanup.policy", "compact", AlterConfigOpType.APPEND) is None
    assert value("cleanup.policy") == ("delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert alter("cleanup.policy", "delete", AlterConfigOpType.APPEND) is None
    assert value("cleanup.policy")[0] == "delete,compact"
    assert alter("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT) is None
    assert value("cleanup.policy")[0] == "compact"
    assert alter("leader.replication.throttled.replicas", "0:0", AlterConfigOpType.APPEND) is None
    assert value("leader.replication.throttled.replicas")[0] == "0:0"
    # Not a list: refused, naming the key; and an appended item is still validated.
    err = alter("retention.ms", "5", AlterConfigOpType.APPEND)
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG and "retention.ms" in err.str(), err
    err = alter("cleanup.policy", "shred", AlterConfigOpType.APPEND)
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG and "cleanup.policy" in err.str(), err
    assert value("cleanup.policy")[0] == "compact"


def test_describe_lists_every_config_with_kafkas_default_source_type_synonyms_and_doc(broker):
    admin = admin_for(broker)
    create_topic(broker, "defaults", 1, config={"retention.ms": "1234"})
    got = {n: (e.value, ConfigSource(e.source)) for n, e in describe(admin, ResourceType.TOPIC, "defaults").items()}
    want = {n: (v, ConfigSource.DEFAULT_CONFIG) for n, v in KAFKA4_TOPIC_DEFAULTS.items()}
    want["retention.ms"] = ("1234", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert got == want, got

    code, _, configs = describe_v3(broker.port, 2, "defaults")
    assert code == 0 and sorted(configs) == sorted(KAFKA4_TOPIC_DEFAULTS)
    types = {n: c["type"] for n, c in configs.items()}
    assert types["compression.type"] == CONFIG_TYPES["STRING"]
    assert types["cleanup.policy"] == CONFIG_TYPES["LIST"]
    assert types["segment.bytes"] == CONFIG_TYPES["INT"]
    assert types["retention.ms"] == CONFIG_TYPES["LONG"]
    assert types["min.cleanable.dirty.ratio"] == CONFIG_TYPES["DOUBLE"]
    assert types["preallocate"] == CONFIG_TYPES["BOOLEAN"]
    assert all(c["doc"] for c in configs.values()), "documentation when asked for"
    assert not any(c["read_only"] or c["sensitive"] for c in configs.values())
    # Synonyms: the topic override, then the broker key behind it at Kafka's default (source 5).
    assert configs["retention.ms"]["synonyms"] == [("retention.ms", "1234", 1), ("log.retention.ms", "604800000", 5)]
    assert configs["delete.retention.ms"]["synonyms"] == [("log.cleaner.delete.retention.ms", "86400000", 5)]
    assert configs["file.delete.delay.ms"]["synonyms"] == [("log.segment.delete.delay.ms", "60000", 5)]

    # Neither synonyms nor documentation unless asked for; only the keys named.
    code, _, configs = describe_v3(broker.port, 2, "defaults", keys=["segment.jitter.ms"], synonyms=False,
                                   documentation=False)
    assert code == 0 and list(configs) == ["segment.jitter.ms"], configs
    assert configs["segment.jitter.ms"]["synonyms"] == [] and configs["segment.jitter.ms"]["doc"] is None
    assert configs["segment.jitter.ms"]["value"] == "0"


def test_broker_resource_lists_every_broker_config_with_its_source(broker_factory):
    broker = broker_factory(config={"log.cleaner.backoff.ms": 2000, "log.retention.hours": 1})
    admin = admin_for(broker)
    entries = describe(admin, ResourceType.BROKER, "0")
    values = {n: (e.value, ConfigSource(e.source)) for n, e in entries.items()}
    assert values["log.cleaner.backoff.ms"] == ("2000", ConfigSource.STATIC_BROKER_CONFIG), values
    assert values["log.retention.hours"] == ("1", ConfigSource.STATIC_BROKER_CONFIG), values
    assert values["log.cleaner.enable"] == ("true", ConfigSource.DEFAULT_CONFIG), values
    assert values["log.segment.delete.delay.ms"] == ("60000", ConfigSource.DEFAULT_CONFIG), values
    assert values["log.message.timestamp.after.max.ms"] == ("3600000", ConfigSource.DEFAULT_CONFIG), values
    assert values["log.index.size.max.bytes"] == ("10485760", ConfigSource.DEFAULT_CONFIG), values
    assert values["node.id"][0] == "0" and values["num.partitions"][0] == "1", values
    # Writable exactly where Kafka makes the key dynamic (test_dynamic_broker_configs.py alters them).
    writable = {n for n, e in entries.items() if not e.is_read_only}
    assert {"log.cleaner.backoff.ms", "log.retention.ms", "log.segment.bytes", "message.max.bytes"} <= writable, writable
    assert not writable & {"log.retention.hours", "log.cleaner.enable", "num.partitions", "node.id", "log.dirs"}, writable
    # The broker default reaches a topic: retention.ms from log.retention.hours.
    create_topic(broker, "inherits", 1)
    got = describe(admin, ResourceType.TOPIC, "inherits")["retention.ms"]
    assert (got.value, ConfigSource(got.source)) == ("3600000", ConfigSource.STATIC_BROKER_CONFIG), got

    # Types on the wire; the cluster-default resource ("") is empty while no dynamic default is
    # set, as in Kafka; another broker's id is refused.
    code, _, configs = describe_v3(broker.port, 4, "0", keys=["log.cleaner.backoff.ms", "log.cleaner.enable"])
    assert code == 0 and {n: c["type"] for n, c in configs.items()} == {
        "log.cleaner.backoff.ms": CONFIG_TYPES["LONG"], "log.cleaner.enable": CONFIG_TYPES["BOOLEAN"]}, configs
    code, _, configs = describe_v3(broker.port, 4, "")
    assert (code, configs) == (0, {}), configs
    code, message, _ = describe_v3(broker.port, 4, "7")
    assert code == 42 and "7" in message, (code, message)  # INVALID_REQUEST


def test_a_fresh_broker_describes_log_cleaner_backoff_ms_as_kafkas_15000(broker):
    entries = describe(admin_for(broker), ResourceType.BROKER, "0")
    e = entries["log.cleaner.backoff.ms"]
    assert (e.value, ConfigSource(e.source)) == ("15000", ConfigSource.DEFAULT_CONFIG), e
    assert entries["log.segment.bytes"].value == "1073741824"
    assert entries["message.max.bytes"].value == "1048588"
