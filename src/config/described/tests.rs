use super::*;
use crate::config::dynamic::DynamicLayers;

fn broker() -> BrokerConfig {
    BrokerConfig::new("127.0.0.1:9092".parse().unwrap())
}

fn find<'a>(rows: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
    rows.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} is described"))
}

#[test]
fn a_topic_lists_every_config_with_kafkas_default_and_source() {
    let b = broker();
    let rows = topic_configs(&b, DynamicLayers::NONE, &BTreeMap::new());
    assert_eq!(rows.len(), TOPIC_CONFIGS.len());
    for (row, d) in rows.iter().zip(TOPIC_CONFIGS) {
        assert_eq!((row.name.as_str(), row.value.as_deref(), row.source), (d.name, Some(d.default), ConfigSource::Default));
        assert!(!row.read_only && !row.sensitive);
    }
    let c = find(&rows, "min.cleanable.dirty.ratio");
    assert_eq!(c.config_type, ConfigType::Double);
    assert_eq!(
        c.synonyms,
        vec![Synonym { name: "log.cleaner.min.cleanable.ratio".into(), value: Some("0.5".into()), source: ConfigSource::Default }]
    );
    assert!(find(&rows, "leader.replication.throttled.replicas").synonyms.is_empty(), "no server default in Kafka");
}

#[test]
fn override_then_broker_file_then_default() {
    let mut b = broker();
    b.apply_key("log.retention.hours", "1").unwrap();
    b.apply_key("compression.type", "zstd").unwrap();
    let overrides: BTreeMap<String, String> = [("segment.ms".to_string(), "60000".to_string())].into();
    let rows = topic_configs(&b, DynamicLayers::NONE, &overrides);
    let retention = find(&rows, "retention.ms");
    assert_eq!((retention.value.as_deref(), retention.source), (Some("3600000"), ConfigSource::StaticBroker));
    let names: Vec<_> = retention.synonyms.iter().map(|s| (s.name.as_str(), s.value.as_deref(), s.source)).collect();
    assert_eq!(
        names,
        [("log.retention.hours", Some("1"), ConfigSource::StaticBroker), ("log.retention.ms", Some("604800000"), ConfigSource::Default)]
    );
    let compression = find(&rows, "compression.type");
    assert_eq!((compression.value.as_deref(), compression.source), (Some("zstd"), ConfigSource::StaticBroker));
    let segment = find(&rows, "segment.ms");
    assert_eq!((segment.value.as_deref(), segment.source), (Some("60000"), ConfigSource::DynamicTopic));
    assert_eq!(segment.synonyms[0].source, ConfigSource::DynamicTopic);
    assert_eq!(find(&rows, "segment.bytes").source, ConfigSource::Default);
}

#[test]
fn the_broker_lists_its_settings_and_every_log_default() {
    let mut b = broker();
    b.apply_key("num.partitions", "3").unwrap();
    b.apply_key("log.cleaner.backoff.ms", "2000").unwrap();
    assert!(b.apply_key("log.cleaner.threads", "many").is_err(), "a typo fails start-up");
    assert!(b.apply_key("log.segment.bytes", "100").is_err(), "below Kafka 4's 1 MiB");
    assert!(b.apply_key("compression.type", "brotli").is_err());
    let rows = broker_configs(&b, DynamicLayers::NONE);
    let value = |name: &str| {
        let c = find(&rows, name);
        (c.value.clone().unwrap_or_default(), c.source)
    };
    assert_eq!(value("num.partitions"), ("3".into(), ConfigSource::StaticBroker));
    assert_eq!(value("log.cleaner.backoff.ms"), ("2000".into(), ConfigSource::StaticBroker));
    assert_eq!(value("log.cleaner.enable"), ("true".into(), ConfigSource::Default));
    assert_eq!(value("log.segment.bytes"), ("1073741824".into(), ConfigSource::Default));
    assert_eq!(value("log.retention.hours"), ("168".into(), ConfigSource::Default));
    assert_eq!(value("log.segment.delete.delay.ms"), ("60000".into(), ConfigSource::Default));
    assert_eq!(value("message.max.bytes"), ("1048588".into(), ConfigSource::Default));
    assert_eq!(value("broker.id"), ("0".into(), ConfigSource::Default));
    for c in &rows {
        assert_eq!(c.read_only, !is_dynamic(&c.name), "{} is writable exactly when Kafka makes it dynamic", c.name);
    }
    assert!(!find(&rows, "log.retention.ms").read_only && find(&rows, "log.retention.hours").read_only);
    assert!(rows.windows(2).all(|w| w[0].name < w[1].name), "sorted, one row per name");
    // Every topic config with a server default has its broker key listed.
    for d in TOPIC_CONFIGS {
        for key in d.broker_keys {
            find(&rows, key);
        }
    }
    assert_eq!(find(&rows, "log.cleaner.threads").config_type, ConfigType::Int);
    // The default of a fresh broker: log.cleaner.backoff.ms is Kafka's 15000.
    assert_eq!(find(&broker_configs(&broker(), DynamicLayers::NONE), "log.cleaner.backoff.ms").value.as_deref(), Some("15000"));
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn synonyms(c: &DescribedConfig) -> Vec<(&str, Option<&str>, ConfigSource)> {
    c.synonyms.iter().map(|s| (s.name.as_str(), s.value.as_deref(), s.source)).collect()
}

/// What Kafka 4.4 answered for the same settings (broker 1 with `log.retention.ms` 1000, the
/// cluster default 7000; `log.segment.bytes` 2000000 as cluster default only).
#[test]
fn the_broker_shows_dynamic_values_and_every_level_as_synonyms() {
    let mut b = broker();
    b.apply_key("num.recovery.threads.per.data.dir", "4").unwrap();
    let cluster = map(&[("log.retention.ms", "7000"), ("log.segment.bytes", "2000000"), ("num.recovery.threads.per.data.dir", "5")]);
    let mine = map(&[("log.retention.ms", "1000"), ("log.cleanup.policy", "delete,compact")]);
    let rows = broker_configs(&b, DynamicLayers { cluster_default: &cluster, broker: &mine });
    let retention = find(&rows, "log.retention.ms");
    assert_eq!((retention.value.as_deref(), retention.source, retention.read_only), (Some("1000"), ConfigSource::DynamicBroker, false));
    assert_eq!(
        synonyms(retention),
        [
            ("log.retention.ms", Some("1000"), ConfigSource::DynamicBroker),
            ("log.retention.ms", Some("7000"), ConfigSource::DynamicDefaultBroker),
            ("log.retention.hours", Some("168"), ConfigSource::Default),
        ]
    );
    let segment = find(&rows, "log.segment.bytes");
    assert_eq!((segment.value.as_deref(), segment.source), (Some("2000000"), ConfigSource::DynamicDefaultBroker));
    assert_eq!(
        synonyms(segment),
        [("log.segment.bytes", Some("2000000"), ConfigSource::DynamicDefaultBroker), ("log.segment.bytes", Some("1073741824"), ConfigSource::Default)]
    );
    let threads = find(&rows, "num.recovery.threads.per.data.dir");
    assert_eq!(
        synonyms(threads),
        [
            ("num.recovery.threads.per.data.dir", Some("5"), ConfigSource::DynamicDefaultBroker),
            ("num.recovery.threads.per.data.dir", Some("4"), ConfigSource::StaticBroker),
            ("num.recovery.threads.per.data.dir", Some("2"), ConfigSource::Default),
        ]
    );
    assert_eq!(find(&rows, "log.cleanup.policy").source, ConfigSource::DynamicBroker);
    let hours = find(&rows, "log.retention.hours");
    assert_eq!((hours.value.as_deref(), hours.source, hours.read_only), (Some("168"), ConfigSource::Default, true));
}

#[test]
fn the_cluster_default_resource_lists_only_what_is_set() {
    let cluster = map(&[("log.retention.ms", "7000"), ("no.such.key", "1")]);
    let rows = cluster_default_configs(&cluster);
    assert_eq!(rows.len(), 1, "an unknown stored key is not described");
    assert_eq!((rows[0].name.as_str(), rows[0].value.as_deref(), rows[0].source), ("log.retention.ms", Some("7000"), ConfigSource::DynamicDefaultBroker));
    assert_eq!(synonyms(&rows[0]), [("log.retention.ms", Some("7000"), ConfigSource::DynamicDefaultBroker)]);
    assert!(!rows[0].read_only);
}

#[test]
fn a_topic_follows_the_dynamic_broker_default() {
    let mut b = broker();
    b.apply_key("log.retention.hours", "1").unwrap();
    let cluster = map(&[("log.retention.ms", "7000"), ("compression.type", "zstd")]);
    let mine = map(&[("log.retention.ms", "1000")]);
    let overrides = map(&[("compression.type", "lz4")]);
    let rows = topic_configs(&b, DynamicLayers { cluster_default: &cluster, broker: &mine }, &overrides);
    let retention = find(&rows, "retention.ms");
    assert_eq!((retention.value.as_deref(), retention.source), (Some("1000"), ConfigSource::DynamicBroker));
    assert_eq!(
        synonyms(retention),
        [
            ("log.retention.ms", Some("1000"), ConfigSource::DynamicBroker),
            ("log.retention.ms", Some("7000"), ConfigSource::DynamicDefaultBroker),
            ("log.retention.hours", Some("1"), ConfigSource::StaticBroker),
            ("log.retention.ms", Some("604800000"), ConfigSource::Default),
        ]
    );
    let compression = find(&rows, "compression.type");
    assert_eq!((compression.value.as_deref(), compression.source), (Some("lz4"), ConfigSource::DynamicTopic));
    assert_eq!(compression.synonyms[1].source, ConfigSource::DynamicDefaultBroker);
    let only_cluster = topic_configs(&b, DynamicLayers { cluster_default: &cluster, broker: &BTreeMap::new() }, &BTreeMap::new());
    let c = find(&only_cluster, "compression.type");
    assert_eq!((c.value.as_deref(), c.source), (Some("zstd"), ConfigSource::DynamicDefaultBroker));
}

#[test]
fn a_broker_setting_is_its_set_value_else_the_tables_default() {
    let mut settings = BTreeMap::new();
    assert_eq!(broker_setting_or_default(&settings, "producer.id.expiration.ms"), Some("86400000"));
    settings.insert("producer.id.expiration.ms".to_string(), "1000".to_string());
    assert_eq!(broker_setting_or_default(&settings, "producer.id.expiration.ms"), Some("1000"));
    assert_eq!(broker_setting_or_default(&settings, "no.such.setting"), None);
}
