use std::collections::BTreeMap;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn known(name: &str) -> bool {
    ["num.partitions", "log.retention.hours", "log.cleaner.enable", "log.retention.ms"].contains(&name)
}

#[test]
fn dynamic_keys_are_kafkas() {
    for key in ["log.retention.ms", "log.segment.bytes", "log.cleanup.policy", "compression.type", "message.max.bytes",
        "min.insync.replicas", "log.message.timestamp.type", "log.cleaner.backoff.ms", "log.cleaner.threads",
        "num.recovery.threads.per.data.dir", "unclean.leader.election.enable", "log.roll.ms"] {
        assert!(is_dynamic(key), "{key} is dynamic in Kafka");
    }
    for key in ["log.retention.hours", "log.roll.hours", "log.cleaner.enable", "num.partitions", "log.dirs",
        "log.retention.check.interval.ms", "remote.log.storage.system.enable"] {
        assert!(!is_dynamic(key), "{key} is read-only in Kafka");
    }
}

#[test]
fn validation_names_the_key() {
    assert_eq!(validate_dynamic("log.retention.ms", Some("1000"), &known), Ok(()));
    assert_eq!(
        validate_dynamic("num.partitions", Some("3"), &known),
        Err(DynamicConfigError::NotDynamic { key: "num.partitions".into() })
    );
    assert_eq!(validate_dynamic("num.partitions", None, &known).unwrap_err().to_string(), "Cannot update these configs dynamically: [num.partitions]");
    let bad = validate_dynamic("log.retention.ms", Some("abc"), &known).unwrap_err();
    assert_eq!(bad.to_string(), "Invalid value abc for configuration log.retention.ms: Not a number of type LONG");
    let small = validate_dynamic("log.segment.bytes", Some("10"), &known).unwrap_err();
    assert!(small.to_string().contains("log.segment.bytes") && small.to_string().contains("at least 1048576"), "{small}");
    assert!(validate_dynamic("log.cleaner.backoff.ms", Some("-1"), &known).is_err());
    // Kafka stores a broker key it does not know as given (a custom config).
    assert_eq!(validate_dynamic("no.such.key", Some("3"), &known), Ok(()));
    assert_eq!(validate_dynamic("log.retention.ms", None, &known), Ok(()));
}

#[test]
fn append_only_on_lists() {
    assert_eq!(apply_broker_list_change("log.cleanup.policy", "delete", "compact", true).unwrap(), "delete,compact");
    assert_eq!(apply_broker_list_change("log.cleanup.policy", "delete,compact", "delete", false).unwrap(), "compact");
    assert_eq!(
        apply_broker_list_change("log.retention.ms", "1", "5", true).unwrap_err().to_string(),
        "Config value append is not allowed for config key: log.retention.ms"
    );
}

#[test]
fn broker_value_beats_cluster_default_beats_file() {
    let file = map(&[("retention.ms", "100"), ("segment.bytes", "2000000"), ("cleanup.policy", "delete")]);
    let cluster = map(&[("log.retention.ms", "200"), ("log.segment.bytes", "3000000"), ("log.retention.hours", "1")]);
    let broker = map(&[("log.retention.ms", "300")]);
    let layers = DynamicLayers { cluster_default: &cluster, broker: &broker };
    let eff = effective_topic_defaults(&file, layers);
    assert_eq!(eff["retention.ms"], "300");
    assert_eq!(eff["segment.bytes"], "3000000");
    assert_eq!(eff["cleanup.policy"], "delete");
    assert_eq!(layers.get("log.retention.ms"), Some(("300", ConfigSource::DynamicBroker)));
    assert_eq!(layers.get("log.segment.bytes"), Some(("3000000", ConfigSource::DynamicDefaultBroker)));
    assert_eq!(layers.get("log.retention.hours"), None, "a stored non-dynamic key changes nothing");
    assert_eq!(layers.levels("log.retention.ms").len(), 2);
    let none = effective_topic_defaults(&file, DynamicLayers::NONE);
    assert_eq!(none, file);
}

#[test]
fn cleaner_settings_follow_dynamic_values() {
    let file = map(&[("log.cleaner.backoff.ms", "15000"), ("log.cleaner.enable", "true")]);
    let cluster = map(&[("log.cleaner.backoff.ms", "200"), ("log.cleaner.enable", "false")]);
    let eff = effective_log_settings(&file, DynamicLayers { cluster_default: &cluster, broker: &BTreeMap::new() });
    assert_eq!(eff["log.cleaner.backoff.ms"], "200");
    assert_eq!(eff["log.cleaner.enable"], "true", "log.cleaner.enable is not dynamic");
}
