use super::*;

#[test]
fn table_is_sorted_unique_and_every_default_is_valid() {
    let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "one row per config, by name");
    for d in TOPIC_CONFIGS {
        assert_eq!(validate_topic_config(d.name, d.default), Ok(()), "{}'s default", d.name);
        assert!(!d.doc.is_empty(), "{} has documentation", d.name);
    }
    for must in [
        "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level", "compression.zstd.level",
        "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms", "follower.replication.throttled.replicas",
        "index.interval.bytes", "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
        "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms", "message.timestamp.before.max.ms",
        "message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas", "preallocate",
        "remote.storage.enable", "retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes",
        "segment.jitter.ms", "segment.ms", "unclean.leader.election.enable",
    ] {
        assert!(topic_config_def(must).is_some(), "{must} is in the table");
    }
}

#[test]
fn kafka_4_defaults_and_removed_configs() {
    assert_eq!(default_of("compression.type"), "producer");
    assert_eq!(default_of("message.timestamp.after.max.ms"), "3600000", "KIP-1030: one hour in 4.0");
    assert_eq!(default_of("message.timestamp.before.max.ms"), "9223372036854775807");
    assert_eq!(default_of("file.delete.delay.ms"), "60000");
    assert_eq!(default_of("local.retention.ms"), "-2");
    assert_eq!(default_of("min.cleanable.dirty.ratio"), "0.5");
    for gone in ["message.downconversion.enable", "message.format.version", "message.timestamp.difference.max.ms"] {
        let err = validate_topic_config(gone, "true").unwrap_err();
        assert!(err.contains(gone), "{err}");
    }
    assert_eq!(topic_config_of_broker_key("log.retention.hours").map(|d| d.name), Some("retention.ms"));
    assert_eq!(topic_config_of_broker_key("log.cleaner.delete.retention.ms").map(|d| d.name), Some("delete.retention.ms"));
    assert_eq!(topic_config_def("leader.replication.throttled.replicas").and_then(|d| d.broker_key()), None);
}

#[test]
fn values_are_checked_by_type_and_range_and_the_message_names_the_key() {
    let bad = [
        ("cleanup.policy", "shred"),
        ("cleanup.policy", "true"),
        ("compression.type", "brotli"),
        ("compression.type", "ZSTD"),
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("compression.zstd.level", "-131073"),
        ("min.cleanable.dirty.ratio", "1.2"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("min.cleanable.dirty.ratio", "half"),
        ("min.insync.replicas", "0"),
        ("max.compaction.lag.ms", "0"),
        ("retention.ms", "-2"),
        ("retention.ms", "forever"),
        ("local.retention.ms", "-3"),
        ("segment.bytes", "1048575"),
        ("segment.bytes", "2147483648"),
        ("segment.index.bytes", "3"),
        ("segment.ms", "0"),
        ("flush.messages", "0"),
        ("preallocate", "yes"),
        ("unclean.leader.election.enable", "1"),
        ("remote.storage.enable", "true"),
        ("message.timestamp.type", "createtime"),
        ("leader.replication.throttled.replicas", "100"),
        ("leader.replication.throttled.replicas", "*,100:10"),
        ("follower.replication.throttled.replicas", "100 :0"),
    ];
    for (key, value) in bad {
        let err = validate_topic_config(key, value).expect_err(&format!("{key}={value} must be refused"));
        assert!(err.contains(key), "{key}={value}: {err}");
    }
    let good = [
        ("cleanup.policy", "compact,delete"),
        ("cleanup.policy", "delete, compact"),
        ("compression.type", "zstd"),
        ("compression.type", "uncompressed"),
        ("compression.gzip.level", "-1"),
        ("compression.gzip.level", "9"),
        ("compression.zstd.level", "-5"),
        ("min.cleanable.dirty.ratio", "0"),
        ("min.cleanable.dirty.ratio", "1.0"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-7"),
        ("segment.bytes", " 1048576 "),
        ("preallocate", "TRUE"),
        ("remote.storage.enable", "false"),
        ("leader.replication.throttled.replicas", "*"),
        ("follower.replication.throttled.replicas", "0:1,1:2"),
        ("follower.replication.throttled.replicas", "100:0,"),
        ("message.timestamp.type", "LogAppendTime"),
    ];
    for (key, value) in good {
        assert_eq!(validate_topic_config(key, value), Ok(()), "{key}={value}");
    }
}

#[test]
fn compaction_lags_may_not_cross() {
    let none = BTreeMap::new();
    assert_eq!(validate_topic_configs(&none, &none), Ok(()));
    let lag = |min: &str, max: &str| -> BTreeMap<String, String> {
        [("min.compaction.lag.ms".to_string(), min.to_string()), ("max.compaction.lag.ms".to_string(), max.to_string())].into()
    };
    assert_eq!(validate_topic_configs(&none, &lag("100", "100")), Ok(()));
    let err = validate_topic_configs(&none, &lag("200", "100")).unwrap_err();
    assert!(err.contains("min.compaction.lag.ms"), "{err}");
    // A broker default counts where the topic sets nothing.
    let defaults: BTreeMap<String, String> = [("max.compaction.lag.ms".to_string(), "50".to_string())].into();
    let min_only: BTreeMap<String, String> = [("min.compaction.lag.ms".to_string(), "60".to_string())].into();
    assert!(validate_topic_configs(&defaults, &min_only).is_err());
}

#[test]
fn append_and_subtract_work_on_list_configs_only() {
    assert_eq!(apply_list_change("cleanup.policy", "delete", "compact", true), Ok("delete,compact".into()));
    assert_eq!(apply_list_change("cleanup.policy", "delete,compact", "delete", true), Ok("delete,compact".into()));
    assert_eq!(apply_list_change("cleanup.policy", "delete,compact", "delete", false), Ok("compact".into()));
    assert_eq!(apply_list_change("leader.replication.throttled.replicas", "", "0:1,1:1", true), Ok("0:1,1:1".into()));
    let err = apply_list_change("retention.ms", "1000", "5", true).unwrap_err();
    assert!(err.contains("retention.ms") && err.contains("append"), "{err}");
    assert!(apply_list_change("no.such", "", "x", false).is_err());
}
