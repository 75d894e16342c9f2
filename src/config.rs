//! Broker configuration: command-line flags, a TOML file of Kafka-named keys, and topic configs.
//!
//! The TOML file uses Kafka's broker config names as keys (`"num.partitions" = 6`), so a Kafka
//! operator's knowledge carries over. Flags win over the file.

pub mod cluster;
pub mod described;
pub mod dynamic;
pub mod listeners;
pub mod topic;
pub mod txn;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use cluster::{ClusterConfig, ClusterConfigError};
pub use listeners::{Endpoint, Listener, ListenerConfig, ListenerError, SecurityProtocol};
pub use txn::TxnConfig;
pub use topic::{TOPIC_CONFIGS, TopicConfigDef, default_of, validate_topic_config, validate_topic_configs};

/// Errors met while loading configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// A key has a value of the wrong type or range.
    #[error("config key {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Default of `sync_linger_us`: sync as soon as the previous sync ends. A linger helps only where
/// a device flush stalls the writes behind it. On the 2-core VM's virtio disk, 3000 cut e2e p99 at
/// `linger.ms` 1 in every quiet-period pair. On the lent 16-core machine it made p99 worse and
/// doubled `acks=all` publish p50 (perf/RESULTS.md, session 4), so it is opt-in.
pub const DEFAULT_SYNC_LINGER_US: u64 = 0;

/// Default of `batch_cache_bytes`, per shard. A tailing consumer reads from this cache; one that
/// falls out of it reads from the disk the producers are writing to, and on this VM such a
/// consumer never caught up again (50–220 MB/s against 380–470 MB/s produced). Kafka leans on
/// the whole page cache for the same job. 256 MiB is about 0.6 s of this VM's top produce rate.
/// Unset, the budget is also capped so that all shards together take at most a quarter of the
/// machine's memory ([`BrokerConfig::batch_cache_per_shard`]).
pub const DEFAULT_BATCH_CACHE_BYTES: usize = 256 << 20;

/// Everything a broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The Kafka listeners every shard binds (`listeners`, `advertised.listeners`,
    /// `listener.security.protocol.map`), checked at start-up by [`ListenerConfig::resolve`].
    pub listeners: ListenerConfig,
    /// Root of the partition directories.
    pub data_dir: PathBuf,
    /// Number of shards (pinned executors).
    pub cores: usize,
    /// This broker's node id.
    pub node_id: i32,
    /// The cluster settings (`process.roles`, `controller.quorum.voters`, ...), checked at
    /// start-up by [`ClusterConfig::check`].
    pub cluster: ClusterConfig,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub socket_request_max_bytes: usize,
    /// Bytes of registered DMA memory per shard (glommio `io_memory`).
    pub io_memory: usize,
    /// `batch_cache_bytes`: byte budget of each shard's batch cache; unset, it is sized from the
    /// machine ([`BrokerConfig::batch_cache_per_shard`]).
    pub batch_cache_bytes: Option<usize>,
    /// `sync_linger_us`: the least time between the end of a shard's fdatasync and the start of
    /// the next one of any of its partitions, under `acks=all` load (see `storage::SyncRounds`).
    pub sync_linger_us: u64,
    /// `visible_on_append`: fetches see a record once it is appended (offsets assigned, in the
    /// batch cache), before its write completes (see `storage::PartitionLog::append`).
    pub visible_on_append: bool,
    /// `append_journal_dir`: where each shard keeps its append journal, a file in shared memory
    /// (tmpfs) that lets consumers see records before their write and still survives a broker
    /// process crash (see `storage::journal`). Empty turns it off.
    pub append_journal_dir: Option<PathBuf>,
    /// `append_journal_bytes`: the size of each shard's append journal.
    pub append_journal_bytes: usize,
    /// `fault_injection_write_delay_ms`: each segment write waits this long before it is issued.
    /// Fault injection for tests (a slow disk on demand), as Redpanda ships its own; zero, the
    /// default, injects nothing.
    pub fault_injection_write_delay_ms: u64,
    /// `fault_injection_unanswered_shard`: this shard drops every data-plane request it is sent
    /// (produce, fetch, offsets, groups) unanswered, as a wedged owner would. Test-only.
    pub fault_injection_unanswered_shard: Option<usize>,
    /// `cold_read_splice`: large ranges of segment files go to the socket by splice from the page
    /// cache, instead of direct-I/O reads sent from their buffers (see `storage::reader`).
    pub cold_read_splice: bool,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// Broker-wide defaults of topic configs (`log.*` keys in Kafka), by topic config name and
    /// in its units (`retention.ms`, whether `log.retention.hours` or `log.retention.ms` set it).
    pub topic_defaults: BTreeMap<String, String>,
    /// Kafka broker settings with no field here yet ([`described::BROKER_LOG_SETTINGS`], e.g.
    /// `log.cleaner.backoff.ms`), by Kafka name: Kafka's default unless the file sets one.
    pub log_settings: BTreeMap<String, String>,
    /// Every key the config file or `--override` set, by Kafka name, with the value as given:
    /// DescribeConfigs reports these as `STATIC_BROKER_CONFIG`, the rest as Kafka's default.
    pub static_keys: BTreeMap<String, String>,
    /// Consumer group coordinator settings.
    pub group: GroupConfig,
    /// Transaction coordinator settings.
    pub txn: TxnConfig,
    /// Admin HTTP listener (`/metrics`, `/health`); `None` turns it off.
    pub admin_listen: Option<SocketAddr>,
}

/// Consumer group coordinator settings, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i64,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` when it is
    /// created, so its segments roll and the cleaner can compact them.
    pub offsets_topic_segment_bytes: i32,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 10080,
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offset_metadata_max_bytes: 4096,
        }
    }
}

impl BrokerConfig {
    /// Each shard's batch cache budget: `batch_cache_bytes` where set, else
    /// [`DEFAULT_BATCH_CACHE_BYTES`] capped at a quarter of the machine's memory over the shards,
    /// so a small box with many cores is not promised more cache than it has.
    pub fn batch_cache_per_shard(&self) -> usize {
        self.batch_cache_bytes.unwrap_or_else(|| {
            let quarter = total_memory_bytes().map_or(usize::MAX, |total| total / 4 / self.cores.max(1));
            DEFAULT_BATCH_CACHE_BYTES.min(quarter)
        })
    }

    /// Defaults for a single-node broker with data in `./data` and one PLAINTEXT listener on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        let topic_defaults = TOPIC_CONFIGS.iter().map(|d| (d.name.to_string(), d.default.to_string())).collect();
        let log_settings =
            described::BROKER_LOG_SETTINGS.iter().map(|d| (d.name.to_string(), d.default.to_string())).collect();
        BrokerConfig {
            listeners: ListenerConfig::plaintext(listen),
            data_dir: PathBuf::from("./data"),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            node_id: 0,
            cluster: ClusterConfig::default(),
            auto_create_topics: true,
            num_partitions: 1,
            socket_request_max_bytes: 104_857_600,
            io_memory: 512 * 1024,
            batch_cache_bytes: None,
            sync_linger_us: DEFAULT_SYNC_LINGER_US,
            visible_on_append: false,
            append_journal_dir: Some(PathBuf::from("/dev/shm")),
            // Batches wait in it only until their write completes: at 400 MB/s and 2 ms per write
            // that is under 1 MiB.
            append_journal_bytes: 8 << 20,
            fault_injection_write_delay_ms: 0,
            fault_injection_unanswered_shard: None,
            // Off: filling the page cache cost this VM twice the broker CPU of a direct read, and
            // the catch-up from disk ran 30-80% slower (perf/RESULTS.md, session 10).
            cold_read_splice: false,
            retention_check_interval_ms: 300_000,
            topic_defaults,
            log_settings,
            static_keys: BTreeMap::new(),
            group: GroupConfig::default(),
            txn: TxnConfig::default(),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
        }
    }

    /// Moves the first listener to `addr` (`--listen`), keeping its name. Its advertised address
    /// follows unless `advertised.listeners` names one for it, as in Kafka.
    pub fn set_listen(&mut self, addr: SocketAddr) {
        self.listeners.set_first_address(addr);
    }

    /// Applies the keys of a TOML config file.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let table: toml::Table =
            text.parse().map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            self.apply_key(&key, &text)?;
        }
        Ok(())
    }

    /// Applies one `KEY=VALUE` pair (`--override`, as Kafka's `kafka-server-start.sh --override`).
    pub fn apply_override(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid { key: pair.to_string(), reason: "--override wants KEY=VALUE".into() })?;
        self.apply_key(key.trim(), value.trim())
    }

    /// Applies one Kafka-named broker key, and remembers it as set (see [`BrokerConfig::static_keys`]).
    pub fn apply_key(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.apply_key_value(key, value)?;
        // Ringlog's older spellings are recorded under Kafka's name, which DescribeConfigs shows.
        let own = [key];
        let names: &[&str] = match key {
            "data_dir" | "log.dir" => &["log.dirs"],
            "node.id" | "broker.id" => &["node.id", "broker.id"],
            "listen" => &["listeners"],
            "advertised_listener" => &["advertised.listeners"],
            _ => &own,
        };
        for name in names {
            self.static_keys.insert(name.to_string(), value.to_string());
        }
        Ok(())
    }

    fn apply_key_value(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
            value.parse().map_err(|_| ConfigError::Invalid {
                key: key.to_string(),
                reason: format!("{value:?} is not a number"),
            })
        }
        // Kafka's ConfigDef takes "true" or "false" in any case and rejects anything else.
        fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
            match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::Invalid { key: key.to_string(), reason: format!("{value:?} is not true or false") }),
            }
        }
        match key {
            // Ringlog's own single address, as `--listen`.
            "listen" => self.set_listen(
                value
                    .trim_start_matches("PLAINTEXT://")
                    .parse()
                    .map_err(|_| ConfigError::Invalid { key: key.into(), reason: "bad address".into() })?,
            ),
            "listeners" => self.listeners.set_listeners(value).map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?,
            "advertised.listeners" | "advertised_listener" => {
                self.listeners.set_advertised(value).map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?
            }
            "listener.security.protocol.map" => {
                self.listeners.set_protocol_map(value).map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?
            }
            "data_dir" | "log.dirs" | "log.dir" => self.data_dir = PathBuf::from(value),
            "cores" => self.cores = num(key, value)?,
            "node.id" | "broker.id" => self.node_id = num(key, value)?,
            "process.roles" => self.cluster.set_roles(value).map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?,
            "controller.quorum.voters" => {
                self.cluster.set_voters(value).map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?
            }
            "controller.quorum.bootstrap.servers" => self.cluster.bootstrap_servers = ClusterConfig::list(value),
            "controller.listener.names" => self.cluster.controller_listener_names = ClusterConfig::list(value),
            "default.replication.factor" => self.cluster.default_replication_factor = num(key, value)?,
            "broker.heartbeat.interval.ms" => self.cluster.broker_heartbeat_interval_ms = num(key, value)?,
            "broker.session.timeout.ms" => self.cluster.broker_session_timeout_ms = num(key, value)?,
            "replica.lag.time.max.ms" => self.cluster.replica_lag_time_max_ms = num(key, value)?,
            // The broker default of the topic config of the same name (kept with the other topic
            // defaults, which the controller plans with), checked here so a typo fails start-up.
            "unclean.leader.election.enable" => {
                let enabled = boolean(key, value)?;
                self.topic_defaults.insert(key.to_string(), enabled.to_string());
            }
            "inter.broker.listener.name" => self.cluster.inter_broker_listener_name = Some(value.to_string()),
            "offsets.topic.replication.factor" => self.cluster.offsets_topic_replication_factor = num(key, value)?,
            "controller.quorum.fetch.timeout.ms" => self.cluster.quorum_fetch_timeout_ms = num(key, value)?,
            "replica.fetch.max.bytes" => self.cluster.replica_fetch_max_bytes = num(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics = boolean(key, value)?,
            "num.partitions" => self.num_partitions = num(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = num(key, value)?,
            "io_memory" => self.io_memory = num(key, value)?,
            "batch_cache_bytes" => self.batch_cache_bytes = Some(num(key, value)?),
            "sync_linger_us" => self.sync_linger_us = num(key, value)?,
            "visible_on_append" => self.visible_on_append = boolean(key, value)?,
            "append_journal_dir" => self.append_journal_dir = (!value.is_empty()).then(|| PathBuf::from(value)),
            "append_journal_bytes" => self.append_journal_bytes = num(key, value)?,
            "fault_injection_write_delay_ms" => self.fault_injection_write_delay_ms = num(key, value)?,
            "fault_injection_unanswered_shard" => self.fault_injection_unanswered_shard = Some(num(key, value)?),
            "cold_read_splice" => self.cold_read_splice = boolean(key, value)?,
            "log.retention.check.interval.ms" => self.retention_check_interval_ms = num(key, value)?,
            "group.initial.rebalance.delay.ms" => self.group.initial_rebalance_delay_ms = num(key, value)?,
            "group.min.session.timeout.ms" => self.group.min_session_timeout_ms = num(key, value)?,
            "group.max.session.timeout.ms" => self.group.max_session_timeout_ms = num(key, value)?,
            "offsets.retention.minutes" => self.group.offsets_retention_minutes = num(key, value)?,
            "offsets.topic.num.partitions" => self.group.offsets_topic_partitions = num(key, value)?,
            "offsets.topic.segment.bytes" => {
                let bytes: i32 = num(key, value)?;
                topic::validate_topic_config("segment.bytes", &bytes.to_string())
                    .map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?;
                self.group.offsets_topic_segment_bytes = bytes;
            }
            "offset.metadata.max.bytes" => self.group.offset_metadata_max_bytes = num(key, value)?,
            "transaction.max.timeout.ms" => self.txn.max_timeout_ms = num(key, value)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => self.txn.abort_timed_out_interval_ms = num(key, value)?,
            "transactional.id.expiration.ms" => self.txn.id_expiration_ms = num(key, value)?,
            "transaction.remove.expired.transaction.cleanup.interval.ms" => self.txn.remove_expired_interval_ms = num(key, value)?,
            "transaction.state.log.num.partitions" => self.txn.state_log_partitions = num(key, value)?,
            "transaction.state.log.replication.factor" => self.txn.state_log_replication_factor = num(key, value)?,
            "transaction.state.log.min.isr" => self.txn.state_log_min_isr = num(key, value)?,
            "transaction.state.log.segment.bytes" => self.txn.state_log_segment_bytes = num(key, value)?,
            // Kafka's coarse time keys; a negative value means no limit (-1), as in Kafka.
            "log.retention.hours" | "log.retention.minutes" | "log.roll.hours" | "log.roll.jitter.hours" => {
                let count: i64 = num(key, value)?;
                let unit = if key.ends_with("minutes") { 60_000 } else { 3_600_000 };
                let millis = if count < 0 { -1 } else { count.saturating_mul(unit) };
                let topic_key = match key {
                    "log.roll.hours" => "segment.ms",
                    "log.roll.jitter.hours" => "segment.jitter.ms",
                    _ => "retention.ms",
                };
                topic::validate_topic_config(topic_key, &millis.to_string())
                    .map_err(|reason| ConfigError::Invalid { key: key.into(), reason })?;
                self.topic_defaults.insert(topic_key.into(), millis.to_string());
            }
            other => {
                let invalid = |reason| ConfigError::Invalid { key: other.into(), reason };
                if let Some(d) = topic::topic_config_of_broker_key(other) {
                    // Checked with the topic config's own rule, so a typo fails start-up.
                    topic::check_value(other, d.config_type, d.rule, value).map_err(invalid)?;
                    self.topic_defaults.insert(d.name.to_string(), value.trim().to_string());
                } else if let Some(d) = described::broker_setting_def(other) {
                    described::validate_broker_setting(d, value).map_err(invalid)?;
                    self.log_settings.insert(d.name.to_string(), value.trim().to_string());
                } else {
                    tracing::warn!(key = other, "ignoring unknown config key");
                }
            }
        }
        Ok(())
    }
}

/// The effective configs of one topic, parsed once so the hot path reads plain numbers.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`, or `max.compaction.lag.ms` when smaller on a compacted topic.
    pub segment_ms: i64,
    /// `retention.ms` (-1: unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `flush.messages`: fsync after this many messages even at acks=1.
    pub flush_messages: i64,
    /// `flush.ms`: fsync at least this often.
    pub flush_ms: i64,
    /// `message.timestamp.type` is LogAppendTime.
    pub log_append_time: bool,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `cleanup.policy` includes `delete`: time and size retention apply. A compact-only topic
    /// (`__consumer_offsets`) keeps every segment; the cleaner compacts it.
    pub delete_retention: bool,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync replicas, or gets
    /// NOT_ENOUGH_REPLICAS.
    pub min_insync_replicas: usize,
    /// `cleanup.policy` includes `compact`: produce refuses records without a key.
    pub compacted: bool,
    /// `message.timestamp.before.max.ms`: how far before now a CreateTime timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far after now a CreateTime timestamp may be.
    pub timestamp_after_max_ms: i64,
    /// `delete.retention.ms`: how long the cleaner keeps a tombstone after it first cleaned it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: share of dirty bytes that makes a compacted log cleanable.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log cleanable whatever
    /// its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `file.delete.delay.ms`: how long a replaced segment file stays (as `.deleted`) for
    /// readers that still hold it.
    pub file_delete_delay_ms: i64,
    /// `compression.type` as Kafka's codec id every batch is stored with (0 for
    /// `uncompressed`); `None` for `producer`: batches keep the producer's codec.
    pub final_compression: Option<i16>,
    /// The level of `final_compression` (`compression.gzip.level`, `compression.lz4.level` or
    /// `compression.zstd.level`); `None` for the codec's default.
    pub compression_level: Option<i32>,
}

impl TopicConfig {
    /// Resolves a topic's overrides over the broker defaults.
    pub fn resolve(defaults: &BTreeMap<String, String>, overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> i64 {
            overrides
                .get(name)
                .or_else(|| defaults.get(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| default_of(name).parse().unwrap_or(0))
        };
        let text = |name: &str| -> String {
            overrides.get(name).or_else(|| defaults.get(name)).cloned().unwrap_or_default()
        };
        let compacted = text("cleanup.policy").split(',').any(|p| p.trim() == "compact");
        TopicConfig {
            segment_bytes: get("segment.bytes").max(4096) as u64,
            // Kafka's `maxSegmentMs`: a compacted topic's active segment also rolls at
            // max.compaction.lag.ms, so no record waits longer than that to be cleanable.
            segment_ms: match compacted {
                true => get("segment.ms").min(get("max.compaction.lag.ms").max(1)),
                false => get("segment.ms"),
            },
            retention_ms: get("retention.ms"),
            retention_bytes: get("retention.bytes"),
            max_message_bytes: get("max.message.bytes").max(0) as usize,
            flush_messages: get("flush.messages"),
            flush_ms: get("flush.ms"),
            log_append_time: text("message.timestamp.type") == "LogAppendTime",
            index_interval_bytes: get("index.interval.bytes").max(1) as u64,
            delete_retention: text("cleanup.policy").split(',').any(|p| p.trim() == "delete"),
            min_insync_replicas: get("min.insync.replicas").max(1) as usize,
            compacted,
            timestamp_before_max_ms: get("message.timestamp.before.max.ms").max(0),
            timestamp_after_max_ms: get("message.timestamp.after.max.ms").max(0),
            delete_retention_ms: get("delete.retention.ms").max(0),
            min_cleanable_dirty_ratio: {
                let ratio = |v: &String| v.trim().parse::<f64>().ok();
                let set = overrides.get("min.cleanable.dirty.ratio").and_then(ratio);
                set.or_else(|| defaults.get("min.cleanable.dirty.ratio").and_then(ratio)).unwrap_or(0.5)
            },
            min_compaction_lag_ms: get("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: get("max.compaction.lag.ms").max(1),
            file_delete_delay_ms: get("file.delete.delay.ms").max(0),
            final_compression: match text("compression.type").as_str() {
                "uncompressed" => Some(0),
                "gzip" => Some(1),
                "snappy" => Some(2),
                "lz4" => Some(3),
                "zstd" => Some(4),
                _ => None,
            },
            compression_level: match text("compression.type").as_str() {
                codec @ ("gzip" | "lz4" | "zstd") => text(&format!("compression.{codec}.level")).trim().parse().ok(),
                _ => None,
            },
        }
    }
}

/// Whether a topic with config `overrides` may elect a leader outside its ISR
/// (`unclean.leader.election.enable`): the topic's override, else the broker default, else false.
pub fn unclean_leader_election_enabled(defaults: &BTreeMap<String, String>, overrides: &BTreeMap<String, String>) -> bool {
    let key = "unclean.leader.election.enable";
    overrides.get(key).or_else(|| defaults.get(key)).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `MemTotal` from /proc/meminfo, in bytes (cgroup limits are not read).
fn total_memory_bytes() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_cache_is_capped_by_memory_unless_set() {
        let mut cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        let total = total_memory_bytes().unwrap();
        cfg.cores = 1;
        assert_eq!(cfg.batch_cache_per_shard(), DEFAULT_BATCH_CACHE_BYTES.min(total / 4));
        // So many shards that a quarter of memory spread over them is under the default.
        cfg.cores = total / DEFAULT_BATCH_CACHE_BYTES + 1;
        assert_eq!(cfg.batch_cache_per_shard(), total / 4 / cfg.cores);
        assert!(cfg.batch_cache_per_shard() < DEFAULT_BATCH_CACHE_BYTES);
        cfg.apply_key("batch_cache_bytes", "1048576").unwrap();
        assert_eq!(cfg.batch_cache_per_shard(), 1 << 20, "a set value is used as given");
    }

    #[test]
    fn unclean_leader_election_is_a_broker_default_that_a_topic_overrides() {
        let mut cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        let none = BTreeMap::new();
        assert!(!unclean_leader_election_enabled(&cfg.topic_defaults, &none), "Kafka's default");
        assert!(cfg.apply_key("unclean.leader.election.enable", "maybe").is_err());
        cfg.apply_key("unclean.leader.election.enable", "TRUE").unwrap();
        assert!(unclean_leader_election_enabled(&cfg.topic_defaults, &none));
        let off: BTreeMap<String, String> = [("unclean.leader.election.enable".to_string(), "false".to_string())].into();
        assert!(!unclean_leader_election_enabled(&cfg.topic_defaults, &off), "the topic overrides the broker");
        assert!(validate_topic_config("unclean.leader.election.enable", "True").is_ok());
        assert!(validate_topic_config("unclean.leader.election.enable", "1").is_err());
    }

    #[test]
    fn toml_keys_use_kafka_names() {
        let mut cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        cfg.apply_key("auto.create.topics.enable", "false").unwrap();
        cfg.apply_key("num.partitions", "6").unwrap();
        cfg.apply_key("log.segment.bytes", "1048576").unwrap();
        assert!(!cfg.auto_create_topics);
        assert_eq!(cfg.num_partitions, 6);
        let topic = TopicConfig::resolve(&cfg.topic_defaults, &BTreeMap::new());
        assert_eq!(topic.segment_bytes, 1_048_576);
        assert_eq!(topic.max_message_bytes, 1_048_588);
        assert!(cfg.apply_key("num.partitions", "six").is_err());
        // The advertised address follows the listener until it is set itself, as in Kafka.
        cfg.apply_key("listeners", "PLAINTEXT://127.0.0.1:19092").unwrap();
        let advertised = |cfg: &BrokerConfig| {
            let first = cfg.listeners.resolve().unwrap().remove(0);
            (first.bind.port(), first.advertised_host, first.advertised_port)
        };
        assert_eq!(advertised(&cfg), (19092, "127.0.0.1".into(), 19092));
        cfg.apply_key("advertised.listeners", "PLAINTEXT://broker.example:29092").unwrap();
        cfg.set_listen("127.0.0.1:39092".parse().unwrap());
        assert_eq!(advertised(&cfg), (39092, "broker.example".into(), 29092));
        cfg.apply_override("visible_on_append = TRUE").unwrap();
        assert!(cfg.visible_on_append);
        assert!(cfg.apply_key("visible_on_append", "yes").is_err(), "a typo is an error, not a silent false");
        assert!(cfg.visible_on_append);
        assert!(!cfg.cold_read_splice, "cold reads are direct reads unless asked");
        cfg.apply_override("cold_read_splice=true").unwrap();
        assert!(cfg.cold_read_splice);
        assert!(cfg.apply_override("num.partitions").is_err(), "no '=': not KEY=VALUE");
        assert_eq!(cfg.append_journal_dir.as_deref(), Some(std::path::Path::new("/dev/shm")), "the journal is on by default");
        cfg.apply_override("append_journal_dir=").unwrap();
        assert_eq!(cfg.append_journal_dir, None, "empty turns it off");
    }

    #[test]
    fn listener_keys_in_any_order_and_todays_forms() {
        // A TOML file's keys arrive sorted: advertised.listeners before listeners before the map.
        let mut cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        cfg.apply_key("advertised.listeners", "PLAINTEXT://public.example:9092,INTERNAL://internal.example:9093").unwrap();
        cfg.apply_key("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT").unwrap();
        cfg.apply_key("listeners", "PLAINTEXT://127.0.0.1:19092,INTERNAL://127.0.0.1:19093").unwrap();
        let resolved = cfg.listeners.resolve().unwrap();
        let table: Vec<_> = resolved.iter().map(|l| (l.name.as_str(), l.bind.port(), l.advertised_host.as_str(), l.advertised_port)).collect();
        assert_eq!(table, [("PLAINTEXT", 19092, "public.example", 9092), ("INTERNAL", 19093, "internal.example", 9093)]);

        // Today's forms: `listen`, a bare `advertised_listener`, and --listen (set_listen) after them.
        let mut cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        cfg.apply_key("listen", "127.0.0.1:19092").unwrap();
        cfg.apply_key("advertised_listener", "127.0.0.1:29092").unwrap();
        cfg.set_listen("127.0.0.1:39092".parse().unwrap());
        let resolved = cfg.listeners.resolve().unwrap();
        assert_eq!(resolved.len(), 1);
        assert_eq!((resolved[0].name.as_str(), resolved[0].bind.port(), resolved[0].advertised_port), ("PLAINTEXT", 39092, 29092));

        // A bad value is a config error naming the key; a protocol not served is a listener error.
        let err = cfg.apply_key("listeners", "PLAINTEXT://127.0.0.1").unwrap_err();
        assert!(err.to_string().starts_with("config key listeners:"), "{err}");
        assert!(cfg.apply_key("listener.security.protocol.map", "PLAINTEXT:TLS").is_err());
        cfg.apply_override("listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093").unwrap();
        assert_eq!(
            cfg.listeners.resolve().unwrap_err(),
            ListenerError::UnsupportedProtocol { listener: "SSL".into(), protocol: SecurityProtocol::Ssl }
        );
    }

    #[test]
    fn topic_overrides_win() {
        let cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        assert_eq!(TopicConfig::resolve(&cfg.topic_defaults, &o).retention_ms, 1000);
        assert!(TopicConfig::resolve(&cfg.topic_defaults, &o).delete_retention);
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        assert!(!TopicConfig::resolve(&cfg.topic_defaults, &o).delete_retention, "compacted topics keep their segments");
        assert_eq!(TopicConfig::resolve(&cfg.topic_defaults, &o).segment_ms, 604_800_000, "Kafka's default segment.ms");
        o.insert("max.compaction.lag.ms".to_string(), "60000".to_string());
        assert_eq!(TopicConfig::resolve(&cfg.topic_defaults, &o).segment_ms, 60_000, "a compacted topic rolls at its max compaction lag");
        o.insert("cleanup.policy".to_string(), "delete".to_string());
        assert_eq!(TopicConfig::resolve(&cfg.topic_defaults, &o).segment_ms, 604_800_000, "only a compacted one");
        assert!(validate_topic_config("retention.ms", "x").is_err());
        assert!(validate_topic_config("nope", "1").is_err());
    }

    /// What produce's record checks read (storage::validate): Kafka 4's defaults, then overrides.
    #[test]
    fn record_check_configs_resolve_with_kafka_defaults() {
        let cfg = BrokerConfig::new("127.0.0.1:9092".parse().unwrap());
        let default = TopicConfig::resolve(&cfg.topic_defaults, &BTreeMap::new());
        assert!(!default.compacted && !default.log_append_time);
        assert_eq!((default.timestamp_before_max_ms, default.timestamp_after_max_ms), (i64::MAX, 3_600_000));
        let o: BTreeMap<String, String> = [("cleanup.policy", "delete, compact"), ("message.timestamp.before.max.ms", "60000")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let topic = TopicConfig::resolve(&cfg.topic_defaults, &o);
        assert!(topic.compacted && topic.delete_retention);
        assert_eq!(topic.timestamp_before_max_ms, 60_000);
    }
}
