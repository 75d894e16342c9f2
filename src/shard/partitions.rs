//! The partitions a core owns: opening their logs (at start-up and when a topic is created or
//! grows), removing them with their topic, re-resolving their configs (topic overrides over the
//! dynamic and static broker defaults), and retention.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::codes::ErrorCode;
use super::Shard;
use crate::config::TopicConfig;
use crate::config::dynamic::{effective_log_settings, effective_topic_defaults};
use crate::metadata::TopicMeta;
use crate::storage::{PartitionLog, ShardLogContext, StorageError};
use crate::types::TopicPartition;

impl Shard {
    /// The log of a partition this core owns.
    pub fn log(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(tp).cloned()
    }

    /// The log of a partition this broker leads: NOT_LEADER_OR_FOLLOWER when the metadata names
    /// another leader (or none), or knows the partition but this broker holds no replica of it
    /// (Kafka's rule: a client with stale metadata, say after a reassignment, re-routes on it);
    /// UNKNOWN_TOPIC_OR_PARTITION for a partition the metadata does not know, or one whose log
    /// this core has not opened yet.
    /// Produce, consumer fetches and offset queries go to the leader only, as in Kafka.
    pub fn led_log(&self, tp: &TopicPartition) -> Result<Rc<PartitionLog>, ErrorCode> {
        let snapshot = self.metadata.load();
        let meta = snapshot.partition(&tp.topic, tp.partition);
        let leader = meta.map(|p| p.leader);
        let Some(log) = self.log(tp) else {
            // A replica of ours whose log is not open yet is not ready (UNKNOWN, retriable too).
            let elsewhere = meta.is_some_and(|p| !p.replicas.contains(&self.config.node_id));
            return Err(if elsewhere { ErrorCode::NOT_LEADER_OR_FOLLOWER } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION });
        };
        match leader {
            Some(leader) if leader != self.config.node_id => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
            // A replicated partition is led only once this core has taken the leadership (its
            // epoch set, its ISR tracked): before that an acks=all would wait for nobody.
            _ if meta.is_some_and(|p| p.replicas.len() > 1) && !self.leads_replicated(tp) => {
                Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
            }
            _ => Ok(log),
        }
    }

    /// The broker-wide topic config defaults in effect on this broker: the config file's, under
    /// the dynamic `log.*` values of the metadata (this broker's own over the cluster default).
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        let snapshot = self.metadata.load();
        effective_topic_defaults(&self.config.topic_defaults, snapshot.dynamic_configs(self.config.node_id))
    }

    /// The `log.cleaner.*` and other stored broker settings in effect (file, then dynamic).
    pub fn log_settings(&self) -> BTreeMap<String, String> {
        let snapshot = self.metadata.load();
        effective_log_settings(&self.config.log_settings, snapshot.dynamic_configs(self.config.node_id))
    }

    /// Every log this core owns.
    pub fn all_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.logs.borrow().values().cloned().collect()
    }

    /// Opens the logs of every partition in the snapshot that this core owns, then rebuilds
    /// the state of the groups it coordinates (start-up).
    ///
    /// On a cluster node nothing is opened here: the metadata this shard sees at start-up may
    /// be a replay in progress, naming this broker leader at an epoch long gone. Its replicas
    /// open once the metadata has caught up (`control::publish_metadata`).
    pub async fn open_owned(&self) -> Result<(), StorageError> {
        if self.config.cluster.is_multi_node(self.config.node_id) {
            return Ok(());
        }
        let topics: Vec<Arc<TopicMeta>> = self.metadata.load().topics.values().cloned().collect();
        for topic in topics {
            self.open_topic(&topic).await?;
        }
        self.load_groups().await?;
        self.load_txns().await
    }

    /// Opens the logs of `topic`'s partitions that this core owns and has not opened yet (on a
    /// cluster, those this broker holds a replica of).
    pub(super) async fn open_topic(&self, topic: &TopicMeta) -> Result<(), StorageError> {
        let config = TopicConfig::resolve(&self.topic_defaults(), &topic.configs);
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.owner != self.me || !p.replicas.contains(&self.config.node_id) {
                continue;
            }
            let tp = TopicPartition::new(topic.name.clone(), i as i32);
            self.open_log(tp, p.leader_epoch, config.clone()).await?;
        }
        Ok(())
    }

    /// Opens the log of one cluster replica of the current metadata, if it is not open yet.
    pub(super) async fn open_partition(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let found = {
            let snapshot = self.metadata.load();
            snapshot.topics.get(&tp.topic).and_then(|t| {
                t.partitions.get(usize::try_from(tp.partition).ok()?)?;
                Some(TopicConfig::resolve(&self.topic_defaults(), &t.configs))
            })
        };
        // A cluster replica opens with its role unknown (epoch -1): become_leader or the
        // fetcher sets what the log needs (see storage's EpochCache::open).
        match found {
            Some(config) => self.open_log(tp.clone(), -1, config).await,
            None => Ok(()),
        }
    }

    async fn open_log(&self, tp: TopicPartition, leader_epoch: i32, config: TopicConfig) -> Result<(), StorageError> {
        {
            if self.logs.borrow().contains_key(&tp) || !self.opening.borrow_mut().insert(tp.clone()) {
                return Ok(());
            }
            let uid = self.next_uid.get();
            self.next_uid.set(uid + 1);
            let opened = PartitionLog::open(
                tp.clone(),
                uid,
                &self.config.data_dir,
                leader_epoch,
                config,
                ShardLogContext {
                    cache: Rc::clone(&self.cache),
                    sync_rounds: Rc::clone(&self.sync_rounds),
                    visible_on_append: self.config.visible_on_append,
                    journal: self.journal.clone(),
                    write_delay: std::time::Duration::from_millis(self.config.fault_injection_write_delay_ms),
                },
            )
            .await;
            self.opening.borrow_mut().remove(&tp);
            let log = opened?;
            tracing::info!(topic = %tp.topic, partition = tp.partition, shard = %self.me, "partition ready");
            self.logs.borrow_mut().insert(tp, log);
        }
        Ok(())
    }

    /// Closes and deletes the log of one partition (its topic is deleted, or the replica moved).
    pub(super) fn remove_partition(&self, tp: &TopicPartition) {
        let removed = self.logs.borrow_mut().remove(tp);
        if let Some(log) = removed
            && let Err(e) = log.remove_files()
        {
            tracing::warn!(partition = %log.tp, error = %e, "cannot remove partition files");
        }
    }

    /// Closes and deletes the logs of a deleted topic's partitions on this core.
    pub(super) fn remove_topic(&self, topic: &TopicMeta) {
        let removed: Vec<_> = {
            let mut logs = self.logs.borrow_mut();
            (0..topic.partitions.len())
                .filter_map(|i| logs.remove(&TopicPartition::new(topic.name.clone(), i as i32)))
                .collect()
        };
        for log in removed {
            if let Err(e) = log.remove_files() {
                tracing::warn!(partition = %log.tp, error = %e, "cannot remove partition files");
            }
        }
    }

    /// Re-resolves the configs of `topic`'s partitions on this core after an AlterConfigs of the topic
    /// or of a dynamic broker default.
    pub(super) fn reload_config(&self, topic: &TopicMeta) {
        let config = TopicConfig::resolve(&self.topic_defaults(), &topic.configs);
        for (tp, log) in self.logs.borrow().iter() {
            if tp.topic == topic.name {
                log.set_config(config.clone());
            }
        }
    }

    /// Periodic work: retention, and the expiry of idle producers' state
    /// (`producer.id.expiration.ms`). (The core's loop applies the `flush.ms` policy every second.)
    pub fn housekeeping(&self) {
        let settings = self.log_settings();
        let producer_expiry_ms = crate::config::described::broker_setting_or_default(&settings, "producer.id.expiration.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        for log in self.all_logs() {
            if let Err(e) = log.enforce_retention() {
                tracing::warn!(partition = %log.tp, error = %e, "retention failed");
            }
            let expired = log.expire_producers(producer_expiry_ms);
            if expired > 0 {
                tracing::info!(partition = %log.tp, producers = expired, "idle producers expired");
            }
        }
    }
}
