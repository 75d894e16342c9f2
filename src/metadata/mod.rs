//! Cluster metadata: topics (with UUIDs), partitions and their owner shards, and topic configs.
//!
//! Shard 0 is the single writer. Other shards forward mutations to it through the router.
//! Each mutation is written durably (a JSON file, replaced atomically) and then published as a
//! new immutable [`ClusterSnapshot`]; every shard reads the latest snapshot without locking.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{TopicConfig, validate_topic_config};
use crate::error::code;
use crate::types::ShardId;

/// Metadata of one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The shard that owns the partition's log.
    pub owner: ShardId,
    /// Current leader epoch.
    pub leader_epoch: i32,
}

/// Metadata of one topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionMeta>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// An immutable view of the cluster's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Cluster id (stable across restarts).
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Next producer id block start: ids are handed out from here and persisted.
    pub next_producer_id: i64,
}

impl ClusterSnapshot {
    /// Looks a topic up by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// The owner shard of a partition.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<ShardId> {
        let t = self.topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?).map(|p| p.owner)
    }

    /// Partitions per shard, over all topics.
    fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for t in self.topics.values() {
            for p in &t.partitions {
                if p.owner.0 < shards {
                    load[p.owner.0] += 1;
                }
            }
        }
        load
    }
}

/// A metadata mutation, always executed on shard 0.
#[derive(Debug, Clone)]
pub enum MetadataMutation {
    /// Create a topic.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: i32,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Check only; change nothing.
        validate_only: bool,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Grow a topic to `count` partitions.
    CreatePartitions {
        /// Name.
        name: String,
        /// New total.
        count: i32,
        /// Check only.
        validate_only: bool,
    },
    /// Replace (`incremental = false`) or patch a topic's config overrides. `None` deletes a key.
    AlterConfigs {
        /// Topic.
        name: String,
        /// Keys to set or delete.
        changes: Vec<(String, Option<String>)>,
        /// Patch instead of replace.
        incremental: bool,
        /// Check only.
        validate_only: bool,
    },
    /// Reserve a producer id.
    AllocateProducerId,
}

/// The answer to a mutation: a Kafka error code, a message, and what changed.
#[derive(Debug, Clone)]
pub struct MutationResult {
    /// Kafka error code.
    pub error_code: i16,
    /// Human-readable reason.
    pub message: Option<String>,
    /// The topic after the change, when there is one.
    pub topic: Option<Arc<TopicMeta>>,
    /// A reserved producer id.
    pub producer_id: i64,
}

impl MutationResult {
    fn ok(topic: Option<Arc<TopicMeta>>) -> Self {
        MutationResult { error_code: code::NONE, message: None, topic, producer_id: -1 }
    }

    fn err(error_code: i16, message: impl Into<String>) -> Self {
        MutationResult { error_code, message: Some(message.into()), topic: None, producer_id: -1 }
    }
}

/// Kafka's topic name rule: 1–249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The shared, lock-free handle to the latest snapshot.
pub type SnapshotHandle = Arc<ArcSwap<ClusterSnapshot>>;

/// The metadata writer. Only shard 0 holds one.
pub struct MetadataStore {
    path: PathBuf,
    shards: usize,
    handle: SnapshotHandle,
}

/// Producer ids are reserved in blocks so the file is written once per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

impl MetadataStore {
    /// Loads `<data_dir>/meta/cluster.json`, or starts empty with a new cluster id.
    pub fn load(data_dir: &std::path::Path, shards: usize) -> std::io::Result<(MetadataStore, SnapshotHandle)> {
        let dir = data_dir.join("meta");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("cluster.json");
        let snapshot: ClusterSnapshot = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClusterSnapshot {
                cluster_id: Uuid::new_v4().simple().to_string()[..22].to_string(),
                topics: BTreeMap::new(),
                next_producer_id: 0,
            },
            Err(e) => return Err(e),
        };
        let mut snapshot = snapshot;
        // Ids handed out before a crash may be in use: skip the rest of the last block.
        snapshot.next_producer_id = (snapshot.next_producer_id / PRODUCER_ID_BLOCK + 1) * PRODUCER_ID_BLOCK;
        let handle = Arc::new(ArcSwap::from_pointee(snapshot));
        let store = MetadataStore { path, shards, handle: Arc::clone(&handle) };
        store.persist(&store.handle.load())?;
        Ok((store, handle))
    }

    fn persist(&self, snapshot: &ClusterSnapshot) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Applies a mutation: validate, persist, publish. Synchronous, so mutations never interleave.
    pub fn apply(&self, m: MetadataMutation, defaults: &BTreeMap<String, String>) -> MutationResult {
        let current = self.handle.load_full();
        let mut next = (*current).clone();
        let result = match m {
            MetadataMutation::CreateTopic { name, partitions, configs, validate_only } => {
                if !valid_topic_name(&name) {
                    return MutationResult::err(code::INVALID_TOPIC_EXCEPTION, format!("invalid topic name {name:?}"));
                }
                if next.topics.contains_key(&name) {
                    return MutationResult::err(code::TOPIC_ALREADY_EXISTS, format!("topic {name} already exists"));
                }
                if partitions <= 0 {
                    return MutationResult::err(code::INVALID_PARTITIONS, "partition count must be positive");
                }
                for (k, v) in &configs {
                    if let Err(e) = validate_topic_config(k, v) {
                        return MutationResult::err(code::INVALID_CONFIG, e);
                    }
                }
                let owners = place(&next.load_per_shard(self.shards), partitions as usize);
                let topic = Arc::new(TopicMeta {
                    name: name.clone(),
                    id: Uuid::new_v4(),
                    partitions: owners.into_iter().map(|owner| PartitionMeta { owner, leader_epoch: 0 }).collect(),
                    configs,
                });
                if validate_only {
                    return MutationResult::ok(Some(topic));
                }
                next.topics.insert(name, Arc::clone(&topic));
                MutationResult::ok(Some(topic))
            }
            MetadataMutation::DeleteTopic { name } => match next.topics.remove(&name) {
                Some(t) => MutationResult::ok(Some(t)),
                None => return MutationResult::err(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}")),
            },
            MetadataMutation::CreatePartitions { name, count, validate_only } => {
                let Some(t) = next.topics.get(&name) else {
                    return MutationResult::err(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}"));
                };
                let have = t.partitions.len();
                if count as usize <= have || count <= 0 {
                    return MutationResult::err(
                        code::INVALID_PARTITIONS,
                        format!("topic has {have} partitions; the new count must be larger"),
                    );
                }
                let mut t = (**t).clone();
                let owners = place(&next.load_per_shard(self.shards), count as usize - have);
                t.partitions.extend(owners.into_iter().map(|owner| PartitionMeta { owner, leader_epoch: 0 }));
                let t = Arc::new(t);
                if validate_only {
                    return MutationResult::ok(Some(t));
                }
                next.topics.insert(name, Arc::clone(&t));
                MutationResult::ok(Some(t))
            }
            MetadataMutation::AlterConfigs { name, changes, incremental, validate_only } => {
                let Some(t) = next.topics.get(&name) else {
                    return MutationResult::err(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}"));
                };
                let mut t = (**t).clone();
                if !incremental {
                    t.configs.clear();
                }
                for (k, v) in changes {
                    match v {
                        Some(v) => {
                            if let Err(e) = validate_topic_config(&k, &v) {
                                return MutationResult::err(code::INVALID_CONFIG, e);
                            }
                            t.configs.insert(k, v);
                        }
                        None => {
                            t.configs.remove(&k);
                        }
                    }
                }
                let _ = TopicConfig::resolve(defaults, &t.configs);
                let t = Arc::new(t);
                if validate_only {
                    return MutationResult::ok(Some(t));
                }
                next.topics.insert(name, Arc::clone(&t));
                MutationResult::ok(Some(t))
            }
            MetadataMutation::AllocateProducerId => {
                let id = current.next_producer_id;
                next.next_producer_id = id + 1;
                let mut r = MutationResult::ok(None);
                r.producer_id = id;
                // Persist when a block is entered; a restart skips past the whole block.
                if id % PRODUCER_ID_BLOCK != 0 {
                    self.handle.store(Arc::new(next));
                    return r;
                }
                r
            }
        };
        if let Err(e) = self.persist(&next) {
            tracing::error!(error = %e, "metadata write failed");
            return MutationResult::err(code::KAFKA_STORAGE_ERROR, format!("metadata write failed: {e}"));
        }
        self.handle.store(Arc::new(next));
        result
    }
}

/// Picks owners for `count` new partitions: each goes to the least-loaded shard, ties broken by
/// rotating from the previous pick, so a topic's partitions spread over all shards.
pub fn place(load: &[usize], count: usize) -> Vec<ShardId> {
    let mut load = load.to_vec();
    let mut out = Vec::with_capacity(count);
    let mut last = load.len().saturating_sub(1);
    for _ in 0..count {
        let n = load.len();
        let pick = (1..=n)
            .map(|i| (last + i) % n)
            .min_by_key(|&s| load[s])
            .unwrap_or(0);
        load[pick] += 1;
        last = pick;
        out.push(ShardId(pick));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_even() {
        let owners = place(&[0, 0], 8);
        assert_eq!(owners.iter().filter(|s| s.0 == 0).count(), 4);
        assert_eq!(owners.iter().filter(|s| s.0 == 1).count(), 4);
        let owners = place(&[3, 0, 0], 3);
        assert_eq!(owners, vec![ShardId(1), ShardId(2), ShardId(1)]);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.v1_x-2"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("bad/name"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }

    #[test]
    fn store_persists_and_reloads_topics() {
        let dir = std::env::temp_dir().join(format!("ringlog-meta-{}", std::process::id()));
        let (store, handle) = MetadataStore::load(&dir, 2).unwrap();
        let r = store.apply(
            MetadataMutation::CreateTopic { name: "t".into(), partitions: 4, configs: BTreeMap::new(), validate_only: false },
            &BTreeMap::new(),
        );
        assert_eq!(r.error_code, 0);
        let again = store.apply(
            MetadataMutation::CreateTopic { name: "t".into(), partitions: 4, configs: BTreeMap::new(), validate_only: false },
            &BTreeMap::new(),
        );
        assert_eq!(again.error_code, code::TOPIC_ALREADY_EXISTS);
        let id = handle.load().topics["t"].id;
        drop(store);
        let (_, reloaded) = MetadataStore::load(&dir, 2).unwrap();
        assert_eq!(reloaded.load().topics["t"].id, id);
        assert_eq!(reloaded.load().topics["t"].partitions.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
