//! Every Kafka 4 topic config: one table with Kafka's names, types, defaults, broker synonyms,
//! validation and a line of documentation, and the checks CreateTopics and AlterConfigs run.
//!
//! Facts come from Kafka 4.0's `LogConfig`, `TopicConfig`, `ServerLogConfigs` and `QuotaConfig`
//! (with KIP-1030's 4.0 changes: `segment.bytes` at least 1 MiB, `message.timestamp.after.max.ms`
//! one hour by default). `message.format.version`, `message.timestamp.difference.max.ms` and
//! `message.downconversion.enable` are gone in 4.0, so they are unknown configs here too.

use std::collections::BTreeMap;

/// Kafka's config value types, with the ids DescribeConfigs v3+ sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`, any case.
    Boolean,
    /// Free text, or one of a set.
    String,
    /// A 32-bit integer.
    Int,
    /// A 16-bit integer.
    Short,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// Comma-separated values.
    List,
    /// A Java class name.
    Class,
    /// A secret, never described in clear.
    Password,
}

impl ConfigType {
    /// The id on the wire (Kafka's `DescribeConfigsResponse.ConfigType`).
    pub fn id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

/// Where a described config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics or AlterConfigs).
    DynamicTopic,
    /// Set for this broker at run time (a dynamic broker config, `config::dynamic`).
    DynamicBroker,
    /// A cluster-wide dynamic broker default (resource name `""`).
    DynamicDefaultBroker,
    /// Set in this broker's config file or by `--override`.
    StaticBroker,
    /// Kafka's default.
    Default,
}

impl ConfigSource {
    /// The id on the wire (DescribeConfigs v1+).
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// What values a config takes, beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Any value of the type.
    Any,
    /// A number at least this.
    AtLeast(i64),
    /// A number in this closed range.
    Between(i64, i64),
    /// A floating-point number in this closed range.
    Fraction(f64, f64),
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings (Kafka's `ValidList`); empty is allowed.
    ListOf(&'static [&'static str]),
    /// `compression.gzip.level`: -1 (zlib's default) or 1 to 9.
    GzipLevel,
    /// `*`, or a list of `partition:broker` pairs (Kafka's `ThrottledReplicaListValidator`).
    ThrottledReplicas,
    /// Only `false`: the feature behind it (tiered storage) is off in this broker, and Kafka
    /// refuses `true` where `remote.log.storage.system.enable` is false.
    FalseOnly,
}

/// One topic config.
#[derive(Debug)]
pub struct TopicConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// Kafka 4's default, as DescribeConfigs shows it.
    pub default: &'static str,
    /// The broker keys that set the broker-wide default, first the one DescribeConfigs names as
    /// the synonym (`log.retention.ms`), then coarser ones (`log.retention.hours`). Empty where
    /// Kafka has no server default (throttled replicas, tiered-storage switches).
    pub broker_keys: &'static [&'static str],
    /// The value type.
    pub config_type: ConfigType,
    /// The values accepted.
    pub rule: Rule,
    /// A short line for DescribeConfigs' documentation.
    pub doc: &'static str,
}

impl TopicConfigDef {
    /// The broker key DescribeConfigs names as this config's server default, if any.
    pub fn broker_key(&self) -> Option<&'static str> {
        self.broker_keys.first().copied()
    }
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    broker_keys: &'static [&'static str],
    rule: Rule,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef { name, default, broker_keys, config_type, rule, doc }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const LONG_MAX: &str = "9223372036854775807";

/// Every Kafka 4 topic config, sorted by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", List, "delete", &["log.cleanup.policy"], Rule::ListOf(CLEANUP_POLICIES),
        "delete: old segments go by time and size; compact: keep the latest record per key; or both."),
    def("compression.gzip.level", Int, "-1", &["compression.gzip.level"], Rule::GzipLevel,
        "Compression level when compression.type is gzip."),
    def("compression.lz4.level", Int, "9", &["compression.lz4.level"], Rule::Between(1, 17),
        "Compression level when compression.type is lz4."),
    def("compression.type", Str, "producer", &["compression.type"], Rule::OneOf(COMPRESSION_TYPES),
        "Final compression of the topic's batches; producer keeps the producer's codec."),
    def("compression.zstd.level", Int, "3", &["compression.zstd.level"], Rule::Between(-131_072, 22),
        "Compression level when compression.type is zstd."),
    def("delete.retention.ms", Long, "86400000", &["log.cleaner.delete.retention.ms"], Rule::AtLeast(0),
        "How long tombstones are kept on a compacted topic."),
    def("file.delete.delay.ms", Long, "60000", &["log.segment.delete.delay.ms"], Rule::AtLeast(0),
        "Time to wait before deleting a file from the filesystem."),
    def("flush.messages", Long, LONG_MAX, &["log.flush.interval.messages"], Rule::AtLeast(1),
        "Force an fsync after this many messages."),
    def("flush.ms", Long, LONG_MAX, &["log.flush.interval.ms"], Rule::AtLeast(0),
        "Force an fsync at least this often."),
    def("follower.replication.throttled.replicas", List, "", &[], Rule::ThrottledReplicas,
        "Replicas (partition:broker, or *) whose follower-side replication is throttled."),
    def("index.interval.bytes", Int, "4096", &["log.index.interval.bytes"], Rule::AtLeast(0),
        "Bytes between offset index entries."),
    def("leader.replication.throttled.replicas", List, "", &[], Rule::ThrottledReplicas,
        "Replicas (partition:broker, or *) whose leader-side replication is throttled."),
    def("local.retention.bytes", Long, "-2", &["log.local.retention.bytes"], Rule::AtLeast(-2),
        "Bytes kept locally under tiered storage; -2 follows retention.bytes."),
    def("local.retention.ms", Long, "-2", &["log.local.retention.ms"], Rule::AtLeast(-2),
        "Time segments are kept locally under tiered storage; -2 follows retention.ms."),
    def("max.compaction.lag.ms", Long, LONG_MAX, &["log.cleaner.max.compaction.lag.ms"], Rule::AtLeast(1),
        "Longest time a record stays ineligible for compaction."),
    def("max.message.bytes", Int, "1048588", &["message.max.bytes"], Rule::AtLeast(0),
        "Largest record batch size accepted."),
    def("message.timestamp.after.max.ms", Long, "3600000", &["log.message.timestamp.after.max.ms"], Rule::AtLeast(0),
        "How far ahead of the broker's clock a CreateTime timestamp may be."),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, &["log.message.timestamp.before.max.ms"], Rule::AtLeast(0),
        "How far behind the broker's clock a CreateTime timestamp may be."),
    def("message.timestamp.type", Str, "CreateTime", &["log.message.timestamp.type"], Rule::OneOf(TIMESTAMP_TYPES),
        "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime)."),
    def("min.cleanable.dirty.ratio", Double, "0.5", &["log.cleaner.min.cleanable.ratio"], Rule::Fraction(0.0, 1.0),
        "Share of the log that must be uncompacted before the cleaner runs."),
    def("min.compaction.lag.ms", Long, "0", &["log.cleaner.min.compaction.lag.ms"], Rule::AtLeast(0),
        "Shortest time a record stays uncompacted."),
    def("min.insync.replicas", Int, "1", &["min.insync.replicas"], Rule::AtLeast(1),
        "Replicas that must acknowledge an acks=all write."),
    def("preallocate", Boolean, "false", &["log.preallocate"], Rule::Any,
        "Preallocate the file of a new segment."),
    def("remote.log.copy.disable", Boolean, "false", &[], Rule::Any,
        "Stop copying segments to tiered storage, keeping remote reads."),
    def("remote.log.delete.on.disable", Boolean, "false", &[], Rule::Any,
        "Delete remote data when tiered storage is turned off for the topic."),
    def("remote.storage.enable", Boolean, "false", &[], Rule::FalseOnly,
        "Tiered storage for the topic (needs remote.log.storage.system.enable on the broker)."),
    def("retention.bytes", Long, "-1", &["log.retention.bytes"], Rule::Any,
        "Largest size a partition may grow to before old segments go; -1 is no limit."),
    def("retention.ms", Long, "604800000", &["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
        Rule::AtLeast(-1), "Longest time a segment is kept; -1 is no limit."),
    def("segment.bytes", Int, "1073741824", &["log.segment.bytes"], Rule::AtLeast(1_048_576),
        "Segment file size."),
    def("segment.index.bytes", Int, "10485760", &["log.index.size.max.bytes"], Rule::AtLeast(4),
        "Size of the offset index of a segment."),
    def("segment.jitter.ms", Long, "0", &["log.roll.jitter.ms", "log.roll.jitter.hours"], Rule::AtLeast(0),
        "Largest random jitter subtracted from segment.ms."),
    def("segment.ms", Long, "604800000", &["log.roll.ms", "log.roll.hours"], Rule::AtLeast(1),
        "Time after which a segment is rolled even if not full."),
    def("unclean.leader.election.enable", Boolean, "false", &["unclean.leader.election.enable"], Rule::Any,
        "Elect a leader outside the ISR as a last resort, at the risk of data loss."),
];

/// The table entry of topic config `name`.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config whose broker-wide default broker key `key` sets, in that key's units
/// (`log.retention.hours` is hours).
pub fn topic_config_of_broker_key(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_keys.contains(&key))
}

/// Kafka's default of a topic config, or "" when unknown.
pub fn default_of(name: &str) -> &'static str {
    topic_config_def(name).map_or("", |d| d.default)
}

/// Checks one value against a type and rule; the message names `key`, as Kafka's
/// `ConfigException` does ("Invalid value X for configuration KEY: why").
pub fn check_value(key: &str, config_type: ConfigType, rule: Rule, value: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("Invalid value {value} for configuration {key}: {why}"));
    // Kafka trims every non-password value before parsing it.
    let text = value.trim();
    let number: Option<i64> = match config_type {
        ConfigType::Int => match text.parse::<i32>() {
            Ok(n) => Some(n.into()),
            Err(_) => return invalid("Not a number of type INT"),
        },
        ConfigType::Short => match text.parse::<i16>() {
            Ok(n) => Some(n.into()),
            Err(_) => return invalid("Not a number of type SHORT"),
        },
        ConfigType::Long => match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return invalid("Not a number of type LONG"),
        },
        ConfigType::Boolean if !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false") => {
            return invalid("Expected value to be either true or false");
        }
        ConfigType::Double if text.parse::<f64>().map_or(true, |d| d.is_nan()) => {
            return invalid("Not a number of type DOUBLE");
        }
        _ => None,
    };
    match rule {
        Rule::Any => Ok(()),
        Rule::AtLeast(min) => match number {
            Some(n) if n < min => invalid(&format!("Value must be at least {min}")),
            _ => Ok(()),
        },
        Rule::Between(min, max) => match number {
            Some(n) if n < min || n > max => invalid(&format!("Value must be no less than {min} and no more than {max}")),
            _ => Ok(()),
        },
        Rule::Fraction(min, max) => match text.parse::<f64>() {
            Ok(d) if (min..=max).contains(&d) => Ok(()),
            _ => invalid(&format!("Value must be no less than {min} and no more than {max}")),
        },
        Rule::OneOf(allowed) if allowed.contains(&text) => Ok(()),
        Rule::OneOf(allowed) => invalid(&format!("String must be one of: {}", allowed.join(", "))),
        Rule::ListOf(allowed) => {
            let items = list_items(text);
            match items.iter().find(|item| !allowed.contains(item)) {
                Some(bad) => invalid(&format!("Invalid value {bad}; the list may hold only {}", allowed.join(", "))),
                None => Ok(()),
            }
        }
        Rule::GzipLevel => match number {
            Some(n) if n != -1 && !(1..=9).contains(&n) => invalid("Value must be -1 or between 1 and 9"),
            _ => Ok(()),
        },
        Rule::ThrottledReplicas => {
            let pair = |item: &str| {
                item.is_empty()
                    || item.split_once(':').is_some_and(|(p, b)| {
                        [p, b].iter().all(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                    })
            };
            // Kafka splits on ',' and trims each entry; "*" must stand alone.
            let entries: Vec<&str> = text.split(',').map(str::trim).collect();
            if text == "*" || entries.iter().all(|e| pair(e)) {
                Ok(())
            } else {
                invalid("must be the literal '*' or a list of replicas in the form [PartitionId]:[BrokerId],...")
            }
        }
        Rule::FalseOnly if text.eq_ignore_ascii_case("false") => Ok(()),
        Rule::FalseOnly => invalid("tiered storage is not enabled in this broker (remote.log.storage.system.enable=false)"),
    }
}

/// The non-empty, trimmed items of a LIST value.
pub fn list_items(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Checks one topic config override: a known name and a value of its type and range. The
/// message names the key; CreateTopics and AlterConfigs answer it with INVALID_CONFIG.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = topic_config_def(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    check_value(name, d.config_type, d.rule, value)
}

/// Checks a topic's whole effective config (overrides over broker defaults) for the conflicts
/// Kafka's `LogConfig.validate` refuses between keys, after each key passed
/// [`validate_topic_config`].
pub fn validate_topic_configs(defaults: &BTreeMap<String, String>, overrides: &BTreeMap<String, String>) -> Result<(), String> {
    let long = |name: &str| -> i64 {
        overrides
            .get(name)
            .or_else(|| defaults.get(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| default_of(name).parse().unwrap_or(0))
    };
    let (min_lag, max_lag) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min_lag > max_lag {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
        ));
    }
    Ok(())
}

/// IncrementalAlterConfigs' APPEND and SUBTRACT on a LIST topic config: the new value from the
/// `current` effective one (override or broker default), as Kafka's controller computes it.
/// APPEND adds the items not yet listed, SUBTRACT removes the items given. Any other config
/// type is refused (Kafka: "Config value append is not allowed for config key ...").
pub fn apply_list_change(name: &str, current: &str, items: &str, append: bool) -> Result<String, String> {
    match topic_config_def(name) {
        None => return Err(format!("Unknown topic config name: {name}")),
        Some(d) if d.config_type != ConfigType::List => {
            let op = if append { "append" } else { "subtract" };
            return Err(format!("Config value {op} is not allowed for config key: {name}"));
        }
        Some(_) => {}
    }
    let given = list_items(items);
    let mut list: Vec<&str> = list_items(current);
    if append {
        for item in given {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    } else {
        list.retain(|item| !given.contains(item));
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests;
