//! What DescribeConfigs shows: a topic's configs and the broker's, each with its value, source,
//! type, synonyms and documentation, built from the one topic table ([`super::topic`]) and the
//! broker's own settings.
//!
//! A value's source is the most specific level that sets it: the topic's override
//! (`DYNAMIC_TOPIC_CONFIG`), this broker's dynamic value (`DYNAMIC_BROKER_CONFIG`), the
//! cluster-wide dynamic default (`DYNAMIC_DEFAULT_BROKER_CONFIG`), the config file
//! (`STATIC_BROKER_CONFIG`), else Kafka's default (`DEFAULT_CONFIG`); the synonyms list every
//! level that sets it, most specific first, as Kafka 4 does. Broker entries are read-only except
//! the dynamic keys ([`super::dynamic`]).

use std::collections::BTreeMap;

use super::BrokerConfig;
use super::dynamic::{DynamicLayers, dynamic_key, is_dynamic};
use super::topic::{ConfigSource, ConfigType, Rule, TOPIC_CONFIGS, check_value};

/// A broker setting Kafka has that no Ringlog field holds yet: it is checked, stored in
/// [`BrokerConfig::log_settings`] and described, so a Kafka config file starts and a client sees
/// Kafka's value (`log.cleaner.backoff.ms`); the code that acts on it reads it from there.
#[derive(Debug)]
pub struct BrokerSettingDef {
    /// Kafka's broker config name.
    pub name: &'static str,
    /// Kafka 4's default.
    pub default: &'static str,
    /// The value type.
    pub config_type: ConfigType,
    /// The values accepted.
    pub rule: Rule,
    /// A short line for DescribeConfigs' documentation.
    pub doc: &'static str,
}

const fn setting(name: &'static str, config_type: ConfigType, default: &'static str, rule: Rule, doc: &'static str) -> BrokerSettingDef {
    BrokerSettingDef { name, default, config_type, rule, doc }
}

/// Kafka 4's broker settings (log cleaner, flush scheduling, recovery, tiered storage switch)
/// that Ringlog stores but has no field for.
pub const BROKER_LOG_SETTINGS: &[BrokerSettingDef] = &[
    setting("log.cleaner.backoff.ms", ConfigType::Long, "15000", Rule::AtLeast(0), "Sleep of the cleaner when there is nothing to clean."),
    setting("log.cleaner.dedupe.buffer.size", ConfigType::Long, "134217728", Rule::Any, "Memory for log deduplication across all cleaner threads."),
    setting("log.cleaner.enable", ConfigType::Boolean, "true", Rule::Any, "Run the log cleaner."),
    setting("log.cleaner.io.buffer.load.factor", ConfigType::Double, "0.9", Rule::Any, "Load factor of the cleaner's dedupe buffer."),
    setting("log.cleaner.io.buffer.size", ConfigType::Int, "524288", Rule::AtLeast(0), "I/O buffer memory across all cleaner threads."),
    setting("log.cleaner.io.max.bytes.per.second", ConfigType::Double, "1.7976931348623157E308", Rule::Any, "Cleaner I/O throttle (read plus write)."),
    setting("log.cleaner.threads", ConfigType::Int, "1", Rule::AtLeast(0), "Background threads for log cleaning."),
    setting("log.dir.failure.timeout.ms", ConfigType::Long, "30000", Rule::AtLeast(1), "Time before a failed log directory shuts the broker down."),
    setting("log.flush.offset.checkpoint.interval.ms", ConfigType::Int, "60000", Rule::AtLeast(0), "How often the recovery point is written."),
    setting("log.flush.scheduler.interval.ms", ConfigType::Long, "9223372036854775807", Rule::Any, "How often logs are checked for a flush."),
    setting("log.flush.start.offset.checkpoint.interval.ms", ConfigType::Int, "60000", Rule::AtLeast(0), "How often the log start offset is written."),
    setting("num.recovery.threads.per.data.dir", ConfigType::Int, "2", Rule::AtLeast(1), "Threads per data directory for log recovery."),
    setting("producer.id.expiration.ms", ConfigType::Int, "86400000", Rule::AtLeast(1), "Time without a write after which a producer's state is forgotten."),
    setting("remote.log.storage.system.enable", ConfigType::Boolean, "false", Rule::FalseOnly, "Tiered storage in this broker (not built)."),
];

/// The row of broker setting `name` in [`BROKER_LOG_SETTINGS`].
pub fn broker_setting_def(name: &str) -> Option<&'static BrokerSettingDef> {
    BROKER_LOG_SETTINGS.iter().find(|d| d.name == name)
}

/// The value of broker setting `name` in `settings` (a broker's effective Kafka-named settings),
/// else its default from [`BROKER_LOG_SETTINGS`]; `None` for a name not in the table.
pub fn broker_setting_or_default<'a>(settings: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    settings.get(name).map(String::as_str).or_else(|| broker_setting_def(name).map(|d| d.default))
}

/// Checks a value for a broker setting of [`BROKER_LOG_SETTINGS`].
pub fn validate_broker_setting(d: &BrokerSettingDef, value: &str) -> Result<(), String> {
    check_value(d.name, d.config_type, d.rule, value)
}

/// One synonym of a described config: a key that sets the same value at another level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    /// The key (`log.retention.ms` for `retention.ms`).
    pub name: String,
    /// Its value there.
    pub value: Option<String>,
    /// The level.
    pub source: ConfigSource,
}

/// One described config.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConfig {
    /// Kafka's name.
    pub name: String,
    /// The effective value (`None`: unset with no default, as Kafka's null).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// The value type.
    pub config_type: ConfigType,
    /// True where it cannot be altered at run time.
    pub read_only: bool,
    /// True for secrets (none here).
    pub sensitive: bool,
    /// A short line of documentation.
    pub doc: &'static str,
    /// The keys that set it, most specific first (sent when synonyms are asked for).
    pub synonyms: Vec<Synonym>,
}

/// A topic's configs: each of [`TOPIC_CONFIGS`] with the topic's override
/// (`DYNAMIC_TOPIC_CONFIG`), else the dynamic broker default (`DYNAMIC_BROKER_CONFIG`, then
/// `DYNAMIC_DEFAULT_BROKER_CONFIG`), else the broker's default from its config file
/// (`STATIC_BROKER_CONFIG`), else Kafka's default (`DEFAULT_CONFIG`).
pub fn topic_configs(broker: &BrokerConfig, layers: DynamicLayers<'_>, overrides: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            let synonym = |name: &str, value: &str, source| Synonym { name: name.to_string(), value: Some(value.to_string()), source };
            if let Some(v) = overrides.get(d.name) {
                synonyms.push(synonym(d.name, v, ConfigSource::DynamicTopic));
            }
            let dynamic: Vec<(&str, ConfigSource)> = d.broker_key().map(|k| layers.levels(k)).unwrap_or_default();
            if let Some(key) = d.broker_key() {
                synonyms.extend(dynamic.iter().map(|(v, source)| synonym(key, v, *source)));
            }
            for key in d.broker_keys {
                if let Some(v) = broker.static_keys.get(*key) {
                    synonyms.push(synonym(key, v, ConfigSource::StaticBroker));
                }
            }
            if let Some(key) = d.broker_key() {
                synonyms.push(synonym(key, d.default, ConfigSource::Default));
            }
            let (value, source) = match (overrides.get(d.name), dynamic.first()) {
                (Some(v), _) => (v.clone(), ConfigSource::DynamicTopic),
                (None, Some((v, source))) => (v.trim().to_string(), *source),
                (None, None) => {
                    let value = broker.topic_defaults.get(d.name).cloned().unwrap_or_else(|| d.default.to_string());
                    let set_on_broker = d.broker_keys.iter().any(|k| broker.static_keys.contains_key(*k));
                    (value, if set_on_broker { ConfigSource::StaticBroker } else { ConfigSource::Default })
                }
            };
            DescribedConfig {
                name: d.name.to_string(),
                value: Some(value),
                source,
                config_type: d.config_type,
                read_only: false,
                sensitive: false,
                doc: d.doc,
                synonyms,
            }
        })
        .collect()
}

/// Every broker config Ringlog has, with Kafka's names: its own settings, the broker defaults
/// of every topic config (`log.*`, in the broker key's units), and [`BROKER_LOG_SETTINGS`], as
/// broker `layers.broker`'s owner sees them. Sorted by name; only the dynamic keys are writable.
pub fn broker_configs(broker: &BrokerConfig, layers: DynamicLayers<'_>) -> Vec<DescribedConfig> {
    // Per name: (value from the file or Kafka's default, Kafka's default, type, doc, the keys
    // whose levels are its synonyms).
    let mut rows: BTreeMap<String, BrokerRow> = BTreeMap::new();
    for (name, value, config_type, doc) in own_settings(broker) {
        // Ringlog does not keep Kafka's default of its own settings beside the file's value.
        let default = if broker.static_keys.contains_key(name) { None } else { value.clone() };
        rows.insert(name.to_string(), BrokerRow { value, default, config_type, doc, keys: vec![name] });
    }
    for d in TOPIC_CONFIGS {
        let topic_value = broker.topic_defaults.get(d.name).cloned().unwrap_or_else(|| d.default.to_string());
        for (i, key) in d.broker_keys.iter().enumerate() {
            // The first key holds the value in the topic config's units; a coarser one
            // (`log.retention.hours`) shows what was set, else Kafka's default of it.
            let (value, default, keys) = match (i, broker.static_keys.get(*key)) {
                // Kafka has no default for a first key with coarser ones (`log.retention.ms`):
                // the coarse key's is its synonym.
                (0, _) => (Some(topic_value.clone()), (d.broker_keys.len() == 1).then(|| d.default.to_string()), d.broker_keys.to_vec()),
                (_, Some(v)) => (Some(v.clone()), coarse_default(key).map(str::to_string), vec![*key]),
                (_, None) => (coarse_default(key).map(str::to_string), coarse_default(key).map(str::to_string), vec![*key]),
            };
            let config_type = if i == 0 { d.config_type } else { ConfigType::Int };
            rows.insert(key.to_string(), BrokerRow { value, default, config_type, doc: d.doc, keys });
        }
    }
    for d in BROKER_LOG_SETTINGS {
        let value = broker.log_settings.get(d.name).cloned().unwrap_or_else(|| d.default.to_string());
        let row = BrokerRow { value: Some(value), default: Some(d.default.to_string()), config_type: d.config_type, doc: d.doc, keys: vec![d.name] };
        rows.insert(d.name.to_string(), row);
    }
    rows.into_iter()
        .map(|(name, row)| {
            let mut synonyms = Vec::new();
            for key in &row.keys {
                let synonym = |value: &str, source| Synonym { name: key.to_string(), value: Some(value.to_string()), source };
                synonyms.extend(layers.levels(key).into_iter().map(|(v, source)| synonym(v, source)));
                if let Some(v) = broker.static_keys.get(*key) {
                    synonyms.push(synonym(v, ConfigSource::StaticBroker));
                }
                let default = if *key == name { row.default.clone() } else { coarse_default(key).map(str::to_string) };
                if let Some(v) = default {
                    synonyms.push(synonym(&v, ConfigSource::Default));
                }
            }
            let (value, source) = match layers.get(&name) {
                Some((v, source)) => (Some(v.to_string()), source),
                None if broker.static_keys.contains_key(&name) => (row.value, ConfigSource::StaticBroker),
                None => (row.value, ConfigSource::Default),
            };
            let read_only = !is_dynamic(&name);
            DescribedConfig { name, value, source, config_type: row.config_type, read_only, sensitive: false, doc: row.doc, synonyms }
        })
        .collect()
}

/// The cluster-wide dynamic defaults (BROKER resource `""`): only the dynamic keys set at that
/// level, each its own only synonym, as Kafka describes them.
pub fn cluster_default_configs(cluster_default: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    cluster_default
        .iter()
        .filter_map(|(name, value)| {
            let key = dynamic_key(name)?;
            let source = ConfigSource::DynamicDefaultBroker;
            Some(DescribedConfig {
                name: name.clone(),
                value: Some(value.clone()),
                source,
                config_type: key.config_type(),
                read_only: false,
                sensitive: false,
                doc: key.doc(),
                synonyms: vec![Synonym { name: name.clone(), value: Some(value.clone()), source }],
            })
        })
        .collect()
}

/// One broker config before its dynamic levels are laid over it.
struct BrokerRow {
    /// From the config file, else Kafka's default (`None`: Kafka's null).
    value: Option<String>,
    /// Kafka's default, where known (`None`: null or unknown).
    default: Option<String>,
    config_type: ConfigType,
    doc: &'static str,
    /// The keys whose levels are this config's synonyms, itself first (`log.retention.ms`,
    /// `log.retention.minutes`, `log.retention.hours`).
    keys: Vec<&'static str>,
}

/// Kafka's defaults of the coarse time keys (`log.retention.hours` = 168); `None` is Kafka's null.
fn coarse_default(key: &str) -> Option<&'static str> {
    match key {
        "log.retention.hours" | "log.roll.hours" => Some("168"),
        "log.roll.jitter.hours" => Some("0"),
        _ => None,
    }
}

type OwnSetting = (&'static str, Option<String>, ConfigType, &'static str);

/// The broker settings Ringlog keeps in fields of [`BrokerConfig`], rendered as Kafka writes them.
fn own_settings(b: &BrokerConfig) -> Vec<OwnSetting> {
    use ConfigType::{Boolean, Int, List, Long, Short, String as Str};
    let endpoints = |list: &[super::Endpoint]| list.iter().map(|e| format!("{}://{}:{}", e.listener, e.host, e.port)).collect::<Vec<_>>().join(",");
    let advertised = b.listeners.resolve().map(|ls| {
        ls.iter().map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port)).collect::<Vec<_>>().join(",")
    });
    let protocol_map =
        b.listeners.protocol_map.iter().map(|(name, p)| format!("{name}:{}", p.name())).collect::<Vec<_>>().join(",");
    let roles = [(b.cluster.roles.broker, "broker"), (b.cluster.roles.controller, "controller")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, r)| *r)
        .collect::<Vec<_>>()
        .join(",");
    let voters = b.cluster.voters.iter().map(|v| format!("{}@{}:{}", v.id, v.host, v.port)).collect::<Vec<_>>().join(",");
    let s = |v: &dyn ToString| Some(v.to_string());
    let c = &b.cluster;
    let g = &b.group;
    let t = &b.txn;
    vec![
        ("advertised.listeners", advertised.ok(), Str, "Listeners published to clients."),
        ("auto.create.topics.enable", s(&b.auto_create_topics), Boolean, "Create a topic on first use."),
        ("broker.heartbeat.interval.ms", s(&c.broker_heartbeat_interval_ms), Int, "Broker heartbeat period to the controller."),
        ("broker.id", s(&b.node_id), Int, "This broker's id (node.id)."),
        ("broker.session.timeout.ms", s(&c.broker_session_timeout_ms), Int, "Time without heartbeat before a broker is fenced."),
        ("controller.listener.names", s(&c.controller_listener_names.join(",")), Str, "Listeners the controller uses."),
        ("controller.quorum.bootstrap.servers", s(&c.bootstrap_servers.join(",")), List, "Controller quorum endpoints."),
        ("controller.quorum.fetch.timeout.ms", s(&c.quorum_fetch_timeout_ms), Int, "Time without leader contact before an election."),
        ("controller.quorum.voters", s(&voters), List, "The controller quorum: id@host:port,..."),
        ("default.replication.factor", s(&c.default_replication_factor), Int, "Replication factor of auto-created topics."),
        ("group.initial.rebalance.delay.ms", s(&g.initial_rebalance_delay_ms), Int, "Wait for more members before the first rebalance."),
        ("group.max.session.timeout.ms", s(&g.max_session_timeout_ms), Int, "Longest session timeout a member may ask for."),
        ("group.min.session.timeout.ms", s(&g.min_session_timeout_ms), Int, "Shortest session timeout a member may ask for."),
        ("inter.broker.listener.name", c.inter_broker_listener_name.clone(), Str, "Listener brokers use between them."),
        ("listener.security.protocol.map", s(&protocol_map), Str, "Security protocol of each listener."),
        ("listeners", s(&endpoints(&b.listeners.listeners)), Str, "Addresses the broker binds."),
        ("log.dirs", s(&b.data_dir.display()), Str, "Where partition data lives."),
        ("log.retention.check.interval.ms", s(&b.retention_check_interval_ms), Long, "How often retention runs."),
        ("node.id", s(&b.node_id), Int, "This node's id."),
        ("num.partitions", s(&b.num_partitions), Int, "Partitions of an auto-created topic."),
        ("offset.metadata.max.bytes", s(&g.offset_metadata_max_bytes), Int, "Largest metadata of a committed offset."),
        ("offsets.retention.minutes", s(&g.offsets_retention_minutes), Int, "How long committed offsets of an empty group are kept."),
        ("offsets.topic.num.partitions", s(&g.offsets_topic_partitions), Int, "Partitions of __consumer_offsets."),
        ("offsets.topic.segment.bytes", s(&g.offsets_topic_segment_bytes), Int, "segment.bytes of __consumer_offsets."),
        ("offsets.topic.replication.factor", s(&c.offsets_topic_replication_factor), Short, "Replication factor of __consumer_offsets."),
        ("process.roles", s(&roles), List, "broker, controller, or both."),
        ("replica.fetch.max.bytes", s(&c.replica_fetch_max_bytes), Int, "Bytes a follower fetches per partition."),
        ("replica.lag.time.max.ms", s(&c.replica_lag_time_max_ms), Long, "Time a follower may lag before it leaves the ISR."),
        ("socket.request.max.bytes", s(&b.socket_request_max_bytes), Int, "Largest request accepted."),
        ("transaction.abort.timed.out.transaction.cleanup.interval.ms", s(&t.abort_timed_out_interval_ms), Int, "How often timed-out transactions are aborted."),
        ("transaction.max.timeout.ms", s(&t.max_timeout_ms), Int, "Longest transaction timeout a producer may ask for."),
        ("transaction.remove.expired.transaction.cleanup.interval.ms", s(&t.remove_expired_interval_ms), Int, "How often expired transactional ids are removed."),
        ("transaction.state.log.min.isr", s(&t.state_log_min_isr), Int, "min.insync.replicas of __transaction_state."),
        ("transaction.state.log.num.partitions", s(&t.state_log_partitions), Int, "Partitions of __transaction_state."),
        ("transaction.state.log.replication.factor", s(&t.state_log_replication_factor), Short, "Replication factor of __transaction_state."),
        ("transaction.state.log.segment.bytes", s(&t.state_log_segment_bytes), Int, "Segment size of __transaction_state."),
        ("transactional.id.expiration.ms", s(&t.id_expiration_ms), Int, "How long an idle transactional id is kept."),
    ]
}

#[cfg(test)]
mod tests;
