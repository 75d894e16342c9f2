//! Dynamic broker configs (KIP-226): which broker keys AlterConfigs may change at run time, how
//! a change is checked, and how the dynamic layers combine with the config file.
//!
//! A dynamic value is set for one broker (resource name `"<id>"`) or for every broker (the
//! cluster-wide default, resource name `""`). The metadata log keeps both as config records;
//! this module only sees them as two maps ([`DynamicLayers`]), so `config` never imports
//! `metadata`. Precedence, as Kafka's `DynamicBrokerConfig`: per-broker dynamic value >
//! cluster-default dynamic value > the config file (`STATIC_BROKER_CONFIG`) > Kafka's default.
//!
//! Dynamic keys, as Kafka 4.4's `DynamicBrokerConfig.AllDynamicConfigs` has them for what
//! Ringlog serves: `DynamicLogConfig`'s keys (the first broker synonym of each topic config:
//! `log.retention.ms` is dynamic, `log.retention.hours` is not), `LogCleaner`'s reconfigurable
//! `log.cleaner.*` keys, and `num.recovery.threads.per.data.dir` (`DynamicThreadPool`).

use std::collections::BTreeMap;

use super::described::{BrokerSettingDef, broker_setting_def, validate_broker_setting};
use super::topic::{ConfigSource, ConfigType, TOPIC_CONFIGS, TopicConfigDef, apply_list_change, check_value};

/// The `log.cleaner.*` keys Kafka's `LogCleaner.ReconfigurableConfigs` lists, the thread pool key
/// Ringlog stores (`DynamicThreadPool`) and `producer.id.expiration.ms`
/// (`DynamicProducerStateManagerConfig`); all are rows of `BROKER_LOG_SETTINGS`.
const DYNAMIC_SETTINGS: &[&str] = &[
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.threads",
    "num.recovery.threads.per.data.dir",
    // KIP-854: producer state expiry is reconfigurable.
    "producer.id.expiration.ms",
];

/// What a dynamic broker key sets.
#[derive(Debug, Clone, Copy)]
pub enum DynamicKey {
    /// The broker-wide default of a topic config (`log.retention.ms` of `retention.ms`).
    TopicDefault(&'static TopicConfigDef),
    /// A broker setting of `BROKER_LOG_SETTINGS` (`log.cleaner.backoff.ms`).
    Setting(&'static BrokerSettingDef),
}

impl DynamicKey {
    /// The value type.
    pub fn config_type(self) -> ConfigType {
        match self {
            DynamicKey::TopicDefault(d) => d.config_type,
            DynamicKey::Setting(d) => d.config_type,
        }
    }

    /// The line of documentation DescribeConfigs sends.
    pub fn doc(self) -> &'static str {
        match self {
            DynamicKey::TopicDefault(d) => d.doc,
            DynamicKey::Setting(d) => d.doc,
        }
    }
}

/// The dynamic key `name`, if `name` is one.
pub fn dynamic_key(name: &str) -> Option<DynamicKey> {
    if let Some(d) = TOPIC_CONFIGS.iter().find(|d| d.broker_key() == Some(name)) {
        return Some(DynamicKey::TopicDefault(d));
    }
    DYNAMIC_SETTINGS.contains(&name).then(|| broker_setting_def(name)).flatten().map(DynamicKey::Setting)
}

/// Whether AlterConfigs may change broker key `name` at run time.
pub fn is_dynamic(name: &str) -> bool {
    dynamic_key(name).is_some()
}

/// A broker key Kafka knows but cannot change at run time: every broker config Ringlog
/// describes or accepts in its config file that is not dynamic. Any other key is unknown, and
/// Kafka stores an unknown key as given (custom configs), so Ringlog does too.
fn is_known_static(name: &str, known: &dyn Fn(&str) -> bool) -> bool {
    !is_dynamic(name) && known(name)
}

/// Why a dynamic broker config change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynamicConfigError {
    /// A known broker key that only the config file sets (`num.partitions`).
    #[error("Cannot update these configs dynamically: [{key}]")]
    NotDynamic {
        /// The key.
        key: String,
    },
    /// A value of the wrong type or range; the message names the key (Kafka's `ConfigException`).
    #[error("{reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// Kafka's message ("Invalid value X for configuration KEY: why").
        reason: String,
    },
    /// APPEND or SUBTRACT on a key that is not a list.
    #[error("Config value {op} is not allowed for config key: {key}")]
    NotAList {
        /// The key.
        key: String,
        /// `append` or `subtract`.
        op: &'static str,
    },
    /// The resource name is neither `""` nor this broker's id.
    #[error("{reason}")]
    WrongBroker {
        /// Kafka's message.
        reason: String,
    },
}

/// Checks one dynamic broker config change: `value` `None` deletes the key (always allowed for
/// a key that may be set). `known` tells whether a key is a broker config this broker has.
pub fn validate_dynamic(name: &str, value: Option<&str>, known: &dyn Fn(&str) -> bool) -> Result<(), DynamicConfigError> {
    if is_known_static(name, known) {
        return Err(DynamicConfigError::NotDynamic { key: name.to_string() });
    }
    let (Some(key), Some(value)) = (dynamic_key(name), value) else {
        return Ok(());
    };
    let checked = match key {
        DynamicKey::TopicDefault(d) => check_value(name, d.config_type, d.rule, value),
        DynamicKey::Setting(d) => validate_broker_setting(d, value),
    };
    checked.map_err(|reason| DynamicConfigError::InvalidValue { key: name.to_string(), reason })
}

/// IncrementalAlterConfigs' APPEND/SUBTRACT on a dynamic broker key, from `current` (the
/// resource's own dynamic value, else Kafka's default, as KRaft's controller computes it).
pub fn apply_broker_list_change(name: &str, current: &str, items: &str, append: bool) -> Result<String, DynamicConfigError> {
    let op = if append { "append" } else { "subtract" };
    match dynamic_key(name) {
        Some(DynamicKey::TopicDefault(d)) if d.config_type == ConfigType::List => {
            apply_list_change(d.name, current, items, append).map_err(|reason| DynamicConfigError::InvalidValue { key: name.to_string(), reason })
        }
        _ => Err(DynamicConfigError::NotAList { key: name.to_string(), op }),
    }
}

/// Kafka's default of dynamic key `name` (the topic config's default for a `log.*` key).
pub fn dynamic_default(name: &str) -> Option<&'static str> {
    match dynamic_key(name)? {
        DynamicKey::TopicDefault(d) => Some(d.default),
        DynamicKey::Setting(d) => Some(d.default),
    }
}

static NO_CONFIGS: BTreeMap<String, String> = BTreeMap::new();

/// The dynamic broker configs one broker sees: the cluster-wide default layer and its own.
#[derive(Debug, Clone, Copy)]
pub struct DynamicLayers<'a> {
    /// Set for every broker (resource name `""`).
    pub cluster_default: &'a BTreeMap<String, String>,
    /// Set for this broker (resource name `"<id>"`).
    pub broker: &'a BTreeMap<String, String>,
}

impl Default for DynamicLayers<'_> {
    fn default() -> Self {
        DynamicLayers::NONE
    }
}

impl DynamicLayers<'static> {
    /// No dynamic config at all.
    pub const NONE: DynamicLayers<'static> = DynamicLayers { cluster_default: &NO_CONFIGS, broker: &NO_CONFIGS };
}

impl<'a> DynamicLayers<'a> {
    /// The dynamic value of broker key `name` and its level, the broker's own first. Only a
    /// dynamic key counts: a stored unknown key changes nothing.
    pub fn get(&self, name: &str) -> Option<(&'a str, ConfigSource)> {
        if !is_dynamic(name) {
            return None;
        }
        self.broker
            .get(name)
            .map(|v| (v.as_str(), ConfigSource::DynamicBroker))
            .or_else(|| self.cluster_default.get(name).map(|v| (v.as_str(), ConfigSource::DynamicDefaultBroker)))
    }

    /// Each level of broker key `name` that sets it dynamically, the broker's own first.
    pub fn levels(&self, name: &str) -> Vec<(&'a str, ConfigSource)> {
        let mut out = Vec::new();
        if !is_dynamic(name) {
            return out;
        }
        if let Some(v) = self.broker.get(name) {
            out.push((v.as_str(), ConfigSource::DynamicBroker));
        }
        if let Some(v) = self.cluster_default.get(name) {
            out.push((v.as_str(), ConfigSource::DynamicDefaultBroker));
        }
        out
    }
}

/// The broker-wide topic config defaults in effect: the config file's (`static_defaults`, by
/// topic config name) with each dynamic `log.*` value over it.
pub fn effective_topic_defaults(static_defaults: &BTreeMap<String, String>, layers: DynamicLayers<'_>) -> BTreeMap<String, String> {
    let mut out = static_defaults.clone();
    for d in TOPIC_CONFIGS {
        if let Some((value, _)) = d.broker_key().and_then(|k| layers.get(k)) {
            out.insert(d.name.to_string(), value.trim().to_string());
        }
    }
    out
}

/// The `BROKER_LOG_SETTINGS` in effect: the config file's (`static_settings`) with each dynamic
/// value over it (the cleaner reads `log.cleaner.*` from here).
pub fn effective_log_settings(static_settings: &BTreeMap<String, String>, layers: DynamicLayers<'_>) -> BTreeMap<String, String> {
    let mut out = static_settings.clone();
    for name in DYNAMIC_SETTINGS {
        if let Some((value, _)) = layers.get(name) {
            out.insert(name.to_string(), value.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;
