//! What one core owns, split by concern, and the only code that runs cross-core requests.
//!
//! ```text
//!  protocol handler ─► Router::call / split_join ─► (mesh) ─► Shard::handle ─► produce.rs   appends
//!                                                                            ├► fetch.rs     locate reads
//!                                                                            ├► offsets.rs   ListOffsets, epochs, DeleteRecords
//!                                                                            ├► log_dirs.rs  log sizes (DescribeLogDirs)
//!                                                                            ├► groups.rs    the group coordinator and its log
//!                                                                            ├► markers.rs   transaction markers (WriteTxnMarkers)
//!                                                                            ├► txns.rs      the transaction coordinator, its log and markers
//!                                                                            ├► control.rs   metadata mutations (shard 0)
//!                                                                            └► partitions.rs open, remove, reload, retention
//! ```
//! [`messages`] holds every type that crosses cores. A [`Shard`] is `!Send`: it never leaves its
//! core, and nothing in it is locked.

pub mod cleaning;
pub mod control;
mod coordinator_log;
pub mod fetch;
pub mod groups;
pub mod log_dirs;
pub mod markers;
pub mod messages;
pub mod offsets;
pub mod partitions;
pub mod produce;
pub mod remote_txn;
pub mod replication;
pub mod txns;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::SnapshotHandle;
use crate::router::{self, ShardHandler};
use crate::storage::cache::BatchCache;
use crate::storage::journal::AppendJournal;
use crate::storage::reader::SegmentFiles;
use crate::storage::{PartitionLog, SyncRounds};
use crate::txn::TxnCoordinator;
use crate::types::{ShardId, TopicPartition};
pub use messages::{ShardRequest, ShardResponse};

/// The router of a core running [`Shard`]s: what protocol handlers call through.
pub type Router = router::Router<Shard>;

/// Everything one core owns: its partitions' logs and what they share, its group coordinator,
/// the metadata store on shard 0, and the segment files it reads for the fetches it serves.
pub struct Shard {
    /// This core.
    pub me: ShardId,
    /// Broker configuration.
    pub config: Arc<BrokerConfig>,
    /// Latest metadata snapshot (shared by all cores, read without locking).
    pub metadata: SnapshotHandle,
    /// Shard 0 only: the metadata's writer (this node's store, or the cluster's controller).
    writer: Option<control::MetadataWriter>,
    /// The replicated partitions this core leads or follows.
    replication: replication::Replication,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    opening: RefCell<HashSet<TopicPartition>>,
    next_uid: Cell<u64>,
    /// The core's batch cache, shared by its partitions.
    pub cache: Rc<BatchCache>,
    /// When the core's partitions may start their next fdatasync.
    sync_rounds: Rc<SyncRounds>,
    /// This core's append journal, unless `append_journal_dir` is off or unusable.
    pub journal: Option<Rc<AppendJournal>>,
    /// The consumer groups whose coordinator is this core (shared with its partitions' loads).
    pub groups: Rc<GroupCoordinator>,
    /// The transactional ids whose coordinator is this core (shared with its loads and markers).
    pub txns: Rc<TxnCoordinator>,
    /// Segment files this core reads for the fetches it serves (of any owner).
    pub segment_files: SegmentFiles,
    /// This core's counters.
    pub metrics: Arc<crate::metrics::ShardMetrics>,
}

impl Shard {
    /// Creates the state of core `me`; shard 0 passes the metadata's writer. `splice_reads` says
    /// whether the connection side splices cold reads from the page cache (`cold_read_splice`
    /// with a working splice ring).
    pub fn new(
        me: ShardId,
        config: Arc<BrokerConfig>,
        metadata: SnapshotHandle,
        writer: Option<control::MetadataWriter>,
        metrics: Arc<crate::metrics::ShardMetrics>,
        splice_reads: bool,
    ) -> Self {
        let journal = config.append_journal_dir.as_ref().and_then(|dir| {
            AppendJournal::create(dir, &config.data_dir, me.0, config.append_journal_bytes, Arc::clone(&metrics))
                .map_err(|e| tracing::warn!(shard = me.0, dir = %dir.display(), error = %e,
                    "no append journal: consumers see records once they are written"))
                .ok()
                .map(Rc::new)
        });
        let node_id = config.node_id;
        Shard {
            me,
            cache: Rc::new(BatchCache::new(config.batch_cache_per_shard(), Arc::clone(&metrics))),
            sync_rounds: SyncRounds::new(std::time::Duration::from_micros(config.sync_linger_us)),
            groups: Rc::new(GroupCoordinator::new(config.group.clone())),
            txns: Rc::new(TxnCoordinator::new(config.txn.clone())),
            config,
            metadata,
            writer,
            replication: replication::Replication::new(node_id),
            logs: RefCell::new(HashMap::new()),
            opening: RefCell::new(HashSet::new()),
            next_uid: Cell::new(0),
            journal,
            segment_files: SegmentFiles::new(splice_reads),
            metrics,
        }
    }
}

impl ShardHandler for Shard {
    type Request = ShardRequest;
    type Response = ShardResponse;

    async fn handle(&self, request: ShardRequest, router: &Router) -> ShardResponse {
        match request {
            ShardRequest::Produce { conn_shard, acks, timeout_ms, parts } => {
                ShardResponse::Produce(self.produce(conn_shard, acks, timeout_ms, parts).await)
            }
            ShardRequest::Fetch { parts, listen } => ShardResponse::Fetch(self.locate(parts, listen)),
            ShardRequest::ListOffsets(parts) => ShardResponse::Offsets(self.list_offsets(parts).await),
            ShardRequest::EpochEndOffsets(parts) => ShardResponse::Offsets(self.epoch_end_offsets(parts)),
            ShardRequest::DeleteRecords(parts) => ShardResponse::Offsets(self.delete_records(parts).await),
            ShardRequest::LogSizes(parts) => ShardResponse::LogSizes(self.log_sizes(&parts)),
            ShardRequest::TxnMarkers(markers) => ShardResponse::TxnMarkers(self.write_markers(markers).await),
            ShardRequest::DescribeProducers(parts) => ShardResponse::Producers(self.active_producers(&parts)),
            ShardRequest::Group(call) => ShardResponse::Group(self.groups.handle(*call, self).await),
            ShardRequest::Txn(call) => ShardResponse::Txn(self.txns.handle(*call, router).await),
            ShardRequest::Mutate(m) => ShardResponse::Mutated(self.mutate(m, router).await),
            ShardRequest::OpenPartitions(topic) => {
                if let Err(e) = self.open_topic(&topic).await {
                    tracing::error!(topic = %topic.name, error = %e, "cannot open partitions");
                }
                ShardResponse::Done
            }
            ShardRequest::RemoveTopic(topic) => {
                self.remove_topic(&topic);
                ShardResponse::Done
            }
            ShardRequest::ReloadConfig(topic) => {
                self.reload_config(&topic);
                ShardResponse::Done
            }
            ShardRequest::PartitionChanges(changes) => {
                self.apply_partition_changes(changes).await;
                ShardResponse::Done
            }
        }
    }
}
