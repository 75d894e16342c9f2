//! The owner shard: executes partition work for the partitions this core owns, whichever shard
//! the request came from. On shard 0 it also applies metadata mutations.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;

use super::{
    FetchPart, FetchPartResult, OffsetAnswer, OffsetQuery, ProducePart, ProducePartResult, Router, ShardRequest,
    ShardResponse,
};
use crate::config::{BrokerConfig, TopicConfig};
use crate::error::{code, storage_error_code};
use crate::metadata::{MetadataMutation, MetadataStore, SnapshotHandle, TopicMeta};
use crate::group::{GroupCoordinator, GroupLog, OFFSETS_TOPIC};
use crate::net::splice::SpliceRing;
use crate::storage::batch::BatchHeader;
use crate::storage::cache::BatchCache;
use crate::storage::journal::AppendJournal;
use crate::storage::reader::{Located, SegmentFiles};
use crate::storage::{PartitionLog, ShardLogContext, StorageError, SyncRounds};
use crate::types::{ShardId, TopicPartition};

/// Per-shard owner of partition logs. `!Send`: it never leaves its core.
pub struct OwnerShard {
    me: ShardId,
    config: Arc<BrokerConfig>,
    metadata: SnapshotHandle,
    store: Option<MetadataStore>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    opening: RefCell<HashSet<TopicPartition>>,
    /// The shard's batch cache, shared by its partitions.
    pub cache: Rc<BatchCache>,
    /// When the shard's partitions may start their next fdatasync.
    sync_rounds: Rc<SyncRounds>,
    data_event: Arc<event_listener::Event>,
    next_uid: Cell<u64>,
    /// The consumer groups whose coordinator is this shard.
    pub groups: GroupCoordinator,
    /// Segment files this shard reads for the fetches it serves (of any owner).
    pub segment_files: SegmentFiles,
    /// This shard's append journal, unless `append_journal_dir` is off or unusable.
    pub journal: Option<Rc<AppendJournal>>,
    /// This shard's splice ring for cold reads, when `cold_read_splice` is on and io_uring splice
    /// is available.
    pub splice: Option<Rc<SpliceRing>>,
}

impl OwnerShard {
    /// Creates the owner state of shard `me`; shard 0 passes the metadata store.
    pub fn new(
        me: ShardId,
        config: Arc<BrokerConfig>,
        metadata: SnapshotHandle,
        store: Option<MetadataStore>,
        data_event: Arc<event_listener::Event>,
        metrics: Arc<crate::metrics::ShardMetrics>,
    ) -> Self {
        let journal = config.append_journal_dir.as_ref().and_then(|dir| {
            AppendJournal::create(dir, &config.data_dir, me.0, config.append_journal_bytes, Arc::clone(&metrics))
                .map_err(|e| tracing::warn!(shard = me.0, dir = %dir.display(), error = %e,
                    "no append journal: consumers see records once they are written"))
                .ok()
                .map(Rc::new)
        });
        let cache = Rc::new(BatchCache::new(config.batch_cache_per_shard(), metrics));
        let sync_rounds = SyncRounds::new(std::time::Duration::from_micros(config.sync_linger_us));
        let groups = GroupCoordinator::new(config.group.clone());
        let splice = match config.cold_read_splice.then(SpliceRing::new) {
            Some(Ok(ring)) => Some(ring),
            Some(Err(e)) => {
                tracing::warn!(shard = me.0, error = %e, "no io_uring splice: cold reads use DMA reads");
                None
            }
            None => None,
        };
        OwnerShard {
            me,
            config,
            metadata,
            store,
            logs: RefCell::new(HashMap::new()),
            opening: RefCell::new(HashSet::new()),
            cache,
            sync_rounds,
            data_event,
            next_uid: Cell::new(0),
            groups,
            segment_files: SegmentFiles::new(splice.is_some()),
            journal,
            splice,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// The log of a partition this shard owns.
    pub fn log(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(tp).cloned()
    }

    /// Every log this shard owns.
    pub fn all_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.logs.borrow().values().cloned().collect()
    }

    /// Opens the logs of every partition in the snapshot that this shard owns (start-up).
    pub async fn open_owned(&self) -> Result<(), StorageError> {
        let topics: Vec<Arc<TopicMeta>> = self.metadata.load().topics.values().cloned().collect();
        for topic in topics {
            self.open_topic(&topic).await?;
        }
        self.load_groups().await
    }

    /// Replays the `__consumer_offsets` partitions this shard owns into the group coordinator.
    async fn load_groups(&self) -> Result<(), StorageError> {
        let logs: Vec<_> = self.logs.borrow().iter().filter(|(tp, _)| tp.topic == OFFSETS_TOPIC).map(|(_, l)| Rc::clone(l)).collect();
        for log in logs {
            let (mut offset, hw, _) = log.offsets();
            let mut replayed = 0usize;
            while offset < hw {
                let read = log.read(offset, 1 << 20).await?;
                let Some(last) = read.records.last().and_then(|b| BatchHeader::parse(b)) else { break };
                for batch in &read.records {
                    for r in crate::storage::batch::records(batch).unwrap_or_default() {
                        if let Some(key) = &r.key {
                            self.groups.replay(key, r.value.as_deref());
                            replayed += 1;
                        }
                    }
                }
                offset = last.last_offset() + 1;
            }
            if replayed > 0 {
                tracing::info!(partition = %log.tp, records = replayed, "group state replayed");
            }
        }
        Ok(())
    }

    async fn open_topic(&self, topic: &TopicMeta) -> Result<(), StorageError> {
        let config = TopicConfig::resolve(&self.config.topic_defaults, &topic.configs);
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.owner != self.me {
                continue;
            }
            let tp = TopicPartition::new(topic.name.clone(), i as i32);
            if self.logs.borrow().contains_key(&tp) || !self.opening.borrow_mut().insert(tp.clone()) {
                continue;
            }
            let uid = self.next_uid.get();
            self.next_uid.set(uid + 1);
            let opened = PartitionLog::open(
                tp.clone(),
                uid,
                &self.data_dir(),
                p.leader_epoch,
                config.clone(),
                ShardLogContext {
                    cache: Rc::clone(&self.cache),
                    data_event: Arc::clone(&self.data_event),
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

    /// Executes one request for partitions this shard owns.
    pub async fn handle(&self, request: ShardRequest, router: &Router) -> ShardResponse {
        match request {
            ShardRequest::Produce { conn_shard, acks, parts } => {
                ShardResponse::Produce(self.produce(conn_shard, acks, parts).await)
            }
            ShardRequest::Fetch(parts) => ShardResponse::Fetch(self.fetch(parts)),
            ShardRequest::ListOffsets(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for (tp, q) in parts {
                    out.push(self.list_offset(&tp, q).await);
                }
                ShardResponse::Offsets(out)
            }
            ShardRequest::EpochEndOffsets(parts) => ShardResponse::Offsets(
                parts
                    .into_iter()
                    .map(|(tp, epoch)| match self.log(&tp) {
                        None => answer_err(code::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(log) => match log.end_offset_for_epoch(epoch) {
                            Some((e, end)) => OffsetAnswer { error_code: 0, offset: end, timestamp_or_epoch: i64::from(e) },
                            None => OffsetAnswer { error_code: 0, offset: -1, timestamp_or_epoch: -1 },
                        },
                    })
                    .collect(),
            ),
            ShardRequest::DeleteRecords(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for (tp, before) in parts {
                    out.push(match self.log(&tp) {
                        None => answer_err(code::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(log) => match log.delete_records_before(before).await {
                            Ok(low) => OffsetAnswer { error_code: 0, offset: low, timestamp_or_epoch: -1 },
                            Err(e) => answer_err(storage_error_code(&e)),
                        },
                    });
                }
                ShardResponse::Offsets(out)
            }
            ShardRequest::OpenPartitions(topic) => {
                if let Err(e) = self.open_topic(&topic).await {
                    tracing::error!(topic = %topic.name, error = %e, "cannot open partitions");
                }
                ShardResponse::Done
            }
            ShardRequest::RemoveTopic(topic) => {
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
                ShardResponse::Done
            }
            ShardRequest::ReloadConfig(topic) => {
                let config = TopicConfig::resolve(&self.config.topic_defaults, &topic.configs);
                for (tp, log) in self.logs.borrow().iter() {
                    if tp.topic == topic.name {
                        log.set_config(config.clone());
                    }
                }
                ShardResponse::Done
            }
            ShardRequest::Mutate(m) => ShardResponse::Mutated(self.mutate(m, router).await),
            ShardRequest::Group(call) => ShardResponse::Group(self.groups.handle(*call, self).await),
        }
    }

    async fn mutate(&self, m: MetadataMutation, router: &Router) -> crate::metadata::MutationResult {
        let Some(store) = &self.store else {
            return Err(crate::metadata::MetadataError::NotController);
        };
        let follow_up: Option<fn(Arc<TopicMeta>) -> ShardRequest> = match &m {
            MetadataMutation::CreateTopic { validate_only: false, .. }
            | MetadataMutation::CreatePartitions { validate_only: false, .. } => Some(ShardRequest::OpenPartitions),
            MetadataMutation::DeleteTopic { .. } => Some(ShardRequest::RemoveTopic),
            MetadataMutation::AlterConfigs { validate_only: false, .. } => Some(ShardRequest::ReloadConfig),
            _ => None,
        };
        let result = store.apply(m, &self.config.topic_defaults).await;
        if let (Some(make), Ok(crate::metadata::MutationOutcome { topic: Some(topic), .. })) = (follow_up, &result) {
            router.broadcast_topic(topic, make).await;
        }
        result
    }

    async fn produce(&self, conn_shard: ShardId, acks: i16, parts: Vec<ProducePart>) -> Vec<ProducePartResult> {
        // Appends are queued synchronously, in arrival order, before the first await.
        let mut pending = Vec::with_capacity(parts.len());
        for part in parts {
            let Some(log) = self.log(&part.tp) else {
                pending.push((Err((code::UNKNOWN_TOPIC_OR_PARTITION, None)), 0, None));
                continue;
            };
            let (start, _, _) = log.offsets();
            match log.append(&part.records, acks) {
                Ok(outcome) => {
                    tracing::debug!(topic = %part.tp.topic, partition = part.tp.partition, shard = %self.me,
                        conn_shard = %conn_shard, base_offset = outcome.base_offset, bytes = part.records.len(), "append");
                    pending.push((Ok((outcome.base_offset, outcome.log_append_time)), start, outcome.done));
                }
                Err(e) => {
                    tracing::debug!(partition = %part.tp, error = %e, "produce rejected");
                    pending.push((Err((storage_error_code(&e), Some(e.to_string()))), start, None));
                }
            }
        }
        let waits = pending.into_iter().map(|(res, start, done)| async move {
            let res = match (res, done) {
                (Ok(v), Some(rx)) => match rx.await {
                    Ok(Ok(())) => Ok(v),
                    Ok(Err(e)) => Err((storage_error_code(&e), Some(e.to_string()))),
                    Err(_) => Err((code::KAFKA_STORAGE_ERROR, Some("append abandoned".into()))),
                },
                (Ok(v), None) => Ok(v),
                (Err(e), _) => Err(e),
            };
            match res {
                Ok((base_offset, log_append_time)) => ProducePartResult {
                    error_code: code::NONE,
                    base_offset,
                    log_append_time,
                    log_start_offset: start,
                    message: None,
                },
                Err((error_code, message)) => ProducePartResult {
                    error_code,
                    base_offset: -1,
                    log_append_time: -1,
                    log_start_offset: -1,
                    message,
                },
            }
        });
        join_all(waits).await
    }

    fn fetch(&self, parts: Vec<FetchPart>) -> Vec<FetchPartResult> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let Some(log) = self.log(&part.tp) else {
                out.push(FetchPartResult { error_code: code::UNKNOWN_TOPIC_OR_PARTITION, high_watermark: -1, log_start_offset: -1, records: Located::default() });
                continue;
            };
            out.push(match log.locate(part.offset, part.max_bytes) {
                Ok(r) => FetchPartResult {
                    error_code: code::NONE,
                    high_watermark: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                    records: r.records,
                },
                Err(e) => {
                    let (start, hw, _) = log.offsets();
                    FetchPartResult { error_code: storage_error_code(&e), high_watermark: hw, log_start_offset: start, records: Located::default() }
                }
            });
        }
        out
    }

    async fn list_offset(&self, tp: &TopicPartition, q: OffsetQuery) -> OffsetAnswer {
        let Some(log) = self.log(tp) else { return answer_err(code::UNKNOWN_TOPIC_OR_PARTITION) };
        let (start, hw, _) = log.offsets();
        let found = match q {
            OffsetQuery::Earliest => Ok(Some((start, -1))),
            OffsetQuery::Latest => Ok(Some((hw, -1))),
            OffsetQuery::MaxTimestamp => log.max_timestamp_offset().await,
            OffsetQuery::Timestamp(ts) => log.offset_for_timestamp(ts).await,
        };
        match found {
            Ok(Some((offset, ts))) => OffsetAnswer { error_code: 0, offset, timestamp_or_epoch: ts },
            Ok(None) => OffsetAnswer { error_code: 0, offset: -1, timestamp_or_epoch: -1 },
            Err(e) => answer_err(storage_error_code(&e)),
        }
    }

    /// Periodic work: retention. (The shard's loop applies the `flush.ms` policy every second.)
    pub fn housekeeping(&self) {
        for log in self.all_logs() {
            if let Err(e) = log.enforce_retention() {
                tracing::warn!(partition = %log.tp, error = %e, "retention failed");
            }
        }
    }
}

impl GroupLog for OwnerShard {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), i16> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let log = self.log(&tp).ok_or(code::NOT_LEADER_OR_FOLLOWER)?;
        let refs: Vec<crate::storage::batch::RecordRef<'_>> = records.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = crate::storage::batch::build(&refs, crate::types::now_ms(), -1, -1);
        let outcome = log.append(&batch, -1).map_err(|e| storage_error_code(&e))?;
        match outcome.done {
            Some(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(storage_error_code(&e)),
                Err(_) => Err(code::KAFKA_STORAGE_ERROR),
            },
            None => Ok(()),
        }
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.metadata.load().owner(topic, partition).is_some()
    }

    fn topics(&self) -> crate::group::consumer::TopicInfo {
        self.metadata
            .load()
            .topics
            .values()
            .filter(|t| !t.name.starts_with("__"))
            .map(|t| (t.name.clone(), (t.id, t.partitions.len() as i32)))
            .collect()
    }
}

fn answer_err(error_code: i16) -> OffsetAnswer {
    OffsetAnswer { error_code, offset: -1, timestamp_or_epoch: -1 }
}
