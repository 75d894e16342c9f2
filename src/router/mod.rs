//! Everything that crosses cores. A handler splits a request by owner shard, runs its own part
//! inline, and sends the rest as [`ShardRequest`]s over glommio's `channel_mesh`, each with a
//! one-shot reply. Record data crosses as `bytes::Bytes`: moved, never re-encoded.
//!
//! Data plane: partition work goes to the partition's owner shard ([`Router::call`]).
//! Control plane: metadata mutations always go to shard 0 ([`Router::mutate`]).

pub mod owner;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::channels::channel_mesh::Senders;

pub use owner::OwnerShard;

use crate::config::BrokerConfig;
use crate::metadata::{MetadataMutation, MutationResult, SnapshotHandle, TopicMeta};
use crate::types::{ShardId, TopicPartition};

/// Capacity of each mesh channel (cross-core round trips must never block on it).
pub const MESH_CAPACITY: usize = 1024;

/// One partition's records in a produce request.
#[derive(Debug)]
pub struct ProducePart {
    /// The partition.
    pub tp: TopicPartition,
    /// Record batches, as sliced from the request frame.
    pub records: Bytes,
}

/// The outcome of one [`ProducePart`].
#[derive(Debug, Clone, Default)]
pub struct ProducePartResult {
    /// Kafka error code.
    pub error_code: i16,
    /// Base offset assigned.
    pub base_offset: i64,
    /// LogAppendTime, or -1.
    pub log_append_time: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Error text.
    pub message: Option<String>,
}

/// One partition of a fetch request.
#[derive(Debug, Clone)]
pub struct FetchPart {
    /// The partition.
    pub tp: TopicPartition,
    /// First offset wanted.
    pub offset: i64,
    /// Byte limit for this partition.
    pub max_bytes: usize,
}

/// The outcome of one [`FetchPart`].
#[derive(Debug, Clone, Default)]
pub struct FetchPartResult {
    /// Kafka error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Where the batches are: cached bytes, or a range for the connection's shard to read.
    pub records: crate::storage::reader::Located,
}

/// What ListOffsets asks of one partition.
#[derive(Debug, Clone, Copy)]
pub enum OffsetQuery {
    /// The log start offset (-2, and -4 earliest-local).
    Earliest,
    /// The high watermark (-1).
    Latest,
    /// The record with the largest timestamp (-3).
    MaxTimestamp,
    /// The first record at or after a timestamp.
    Timestamp(i64),
}

/// The outcome of a ListOffsets or OffsetForLeaderEpoch query.
#[derive(Debug, Clone, Default)]
pub struct OffsetAnswer {
    /// Kafka error code.
    pub error_code: i16,
    /// The offset found, or -1.
    pub offset: i64,
    /// Timestamp of that record, or -1 (ListOffsets); the epoch (OffsetForLeaderEpoch).
    pub timestamp_or_epoch: i64,
}

/// A unit of work for one shard.
#[derive(Debug)]
pub enum ShardRequest {
    /// Append to partitions owned by the target shard.
    Produce {
        /// The shard holding the client connection (for logs).
        conn_shard: ShardId,
        /// 0, 1 or -1.
        acks: i16,
        /// Parts for this shard.
        parts: Vec<ProducePart>,
    },
    /// Read from partitions owned by the target shard.
    Fetch(Vec<FetchPart>),
    /// ListOffsets parts.
    ListOffsets(Vec<(TopicPartition, OffsetQuery)>),
    /// OffsetForLeaderEpoch parts.
    EpochEndOffsets(Vec<(TopicPartition, i32)>),
    /// DeleteRecords parts: truncate before the offset (-1 = high watermark).
    DeleteRecords(Vec<(TopicPartition, i64)>),
    /// Open (create) the logs of a topic's partitions owned by the target shard.
    OpenPartitions(Arc<TopicMeta>),
    /// Delete the logs of a deleted topic.
    RemoveTopic(Arc<TopicMeta>),
    /// A topic's configs changed: re-resolve them.
    ReloadConfig(Arc<TopicMeta>),
    /// A metadata mutation (shard 0 only).
    Mutate(MetadataMutation),
    /// Work for the group coordinator of the target shard (boxed: join requests are large).
    Group(Box<GroupCall>),
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPart {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of that offset, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// A committed offset, as OffsetFetch reports it (-1 when none).
#[derive(Debug, Clone)]
pub struct OffsetEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset, or -1.
    pub offset: i64,
    /// Its leader epoch, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
}

/// A consumer-group operation, run on the group's coordinator shard.
#[derive(Debug)]
pub enum GroupCall {
    /// JoinGroup.
    Join {
        /// The request.
        req: kafka_protocol::messages::JoinGroupRequest,
        /// Its version.
        version: i16,
        /// Client id from the request header.
        client_id: String,
        /// Client address.
        client_host: String,
    },
    /// SyncGroup.
    Sync {
        /// The request.
        req: kafka_protocol::messages::SyncGroupRequest,
        /// Its version.
        version: i16,
    },
    /// Heartbeat.
    Heartbeat {
        /// Group id.
        group: String,
        /// Generation.
        generation: i32,
        /// Member id.
        member_id: String,
        /// Static instance id.
        instance_id: Option<String>,
    },
    /// LeaveGroup: (member id, instance id) pairs.
    Leave {
        /// Group id.
        group: String,
        /// Members leaving.
        members: Vec<(String, Option<String>)>,
    },
    /// OffsetCommit.
    Commit {
        /// Group id.
        group: String,
        /// Generation (-1: a simple commit).
        generation: i32,
        /// Member id.
        member_id: String,
        /// Static instance id.
        instance_id: Option<String>,
        /// Offsets.
        parts: Vec<CommitPart>,
    },
    /// OffsetFetch; `None` means every committed partition.
    FetchOffsets {
        /// Group id.
        group: String,
        /// Partitions asked for.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// OffsetDelete.
    DeleteOffsets {
        /// Group id.
        group: String,
        /// Partitions.
        partitions: Vec<(String, i32)>,
    },
    /// DescribeGroups, one group.
    Describe {
        /// Group id.
        group: String,
    },
    /// ListGroups: this shard's groups.
    List,
    /// DeleteGroups, one group.
    Delete {
        /// Group id.
        group: String,
    },
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat {
        /// The request.
        req: kafka_protocol::messages::ConsumerGroupHeartbeatRequest,
        /// Client id from the request header.
        client_id: String,
        /// Client address.
        client_host: String,
    },
    /// ConsumerGroupDescribe, one group.
    ConsumerDescribe {
        /// Group id.
        group: String,
    },
}

/// The answer to a [`GroupCall`].
#[derive(Debug)]
pub enum GroupReply {
    /// JoinGroup answer.
    Join(kafka_protocol::messages::JoinGroupResponse),
    /// SyncGroup answer.
    Sync(kafka_protocol::messages::SyncGroupResponse),
    /// A single error code (Heartbeat, DeleteGroups).
    Code(i16),
    /// LeaveGroup: top-level code and one per member.
    Leave(i16, Vec<i16>),
    /// OffsetCommit: one code per part.
    Committed(Vec<i16>),
    /// OffsetFetch entries.
    Offsets(Vec<OffsetEntry>),
    /// OffsetDelete: top-level code and one per partition.
    Deleted(i16, Vec<i16>),
    /// DescribeGroups entry.
    Described(kafka_protocol::messages::describe_groups_response::DescribedGroup),
    /// ListGroups entries.
    Listed(Vec<kafka_protocol::messages::list_groups_response::ListedGroup>),
    /// ConsumerGroupHeartbeat answer.
    ConsumerHeartbeat(kafka_protocol::messages::ConsumerGroupHeartbeatResponse),
    /// ConsumerGroupDescribe entry.
    ConsumerDescribed(kafka_protocol::messages::consumer_group_describe_response::DescribedGroup),
    /// The coordinator is not there (its `__consumer_offsets` partition is unknown).
    Unavailable,
}

/// The answer to a [`ShardRequest`], in the same order as its parts.
#[derive(Debug)]
pub enum ShardResponse {
    /// Produce results.
    Produce(Vec<ProducePartResult>),
    /// Fetch results.
    Fetch(Vec<FetchPartResult>),
    /// ListOffsets, OffsetForLeaderEpoch or DeleteRecords results.
    Offsets(Vec<OffsetAnswer>),
    /// Opened, removed or reloaded.
    Done,
    /// A mutation's result.
    Mutated(MutationResult),
    /// A group operation's result.
    Group(GroupReply),
}

/// A request with its reply channel: the message type of the mesh.
pub struct Envelope {
    /// The work.
    pub request: ShardRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ShardResponse>,
}

/// An item of a split request: its position in the request, its partition, and the item.
pub type Indexed<T> = (usize, TopicPartition, T);

/// Items grouped by owner shard.
pub type ByOwner<T> = BTreeMap<ShardId, Vec<Indexed<T>>>;

/// A shard's view of the world: its own partitions, the mesh to the others, and metadata.
pub struct Router {
    /// This shard.
    pub me: ShardId,
    /// Number of shards.
    pub nr_shards: usize,
    /// Broker configuration.
    pub config: Arc<BrokerConfig>,
    /// Latest metadata snapshot (shared, lock-free).
    pub metadata: SnapshotHandle,
    /// The partitions this shard owns.
    pub local: Rc<OwnerShard>,
    /// Per-shard "high watermark moved" events, for long-polling fetches on any shard.
    pub data_events: Arc<Vec<Arc<event_listener::Event>>>,
    /// This shard's counters.
    pub metrics: Arc<crate::metrics::ShardMetrics>,
    senders: Senders<Envelope>,
}

impl Router {
    /// Builds a shard's router.
    pub fn new(
        me: ShardId,
        config: Arc<BrokerConfig>,
        metadata: SnapshotHandle,
        local: Rc<OwnerShard>,
        data_events: Arc<Vec<Arc<event_listener::Event>>>,
        senders: Senders<Envelope>,
        metrics: Arc<crate::metrics::ShardMetrics>,
    ) -> Self {
        Router { me, nr_shards: senders.nr_consumers(), config, metadata, local, data_events, metrics, senders }
    }

    /// Data plane: runs `request` on `shard`, inline when it is this one.
    pub async fn call(&self, shard: ShardId, request: ShardRequest) -> ShardResponse {
        if shard == self.me {
            return self.local.handle(request, self).await;
        }
        let started = std::time::Instant::now();
        let (tx, rx) = oneshot::channel();
        let envelope = Envelope { request, reply: tx };
        if self.senders.send_to(shard.0, envelope).await.is_err() {
            tracing::error!(shard = %shard, "mesh send failed");
            return ShardResponse::Done;
        }
        let answer = rx.await.unwrap_or(ShardResponse::Done);
        crate::metrics::ShardMetrics::add(&self.metrics.hops, 1);
        self.metrics.hop_latency.record(started.elapsed());
        answer
    }

    /// Control plane: runs a metadata mutation on shard 0.
    pub async fn mutate(&self, m: MetadataMutation) -> MutationResult {
        match self.call(ShardId(0), ShardRequest::Mutate(m)).await {
            ShardResponse::Mutated(r) => r,
            _ => Err(crate::metadata::MetadataError::ControllerUnavailable),
        }
    }

    /// Runs a group operation on the group's coordinator: the owner of its
    /// `__consumer_offsets` partition.
    pub async fn group_call(&self, group: &str, call: GroupCall) -> GroupReply {
        let partition = crate::group::partition_for(group, self.config.group.offsets_topic_partitions);
        let Some(shard) = self.metadata.load().owner(crate::group::OFFSETS_TOPIC, partition) else {
            return GroupReply::Unavailable;
        };
        match self.call(shard, ShardRequest::Group(Box::new(call))).await {
            ShardResponse::Group(reply) => reply,
            _ => GroupReply::Unavailable,
        }
    }

    /// Runs `make()` on every shard and collects the answers (ListGroups).
    pub async fn group_call_all(&self, make: fn() -> GroupCall) -> Vec<GroupReply> {
        let calls = (0..self.nr_shards).map(|s| self.call(ShardId(s), ShardRequest::Group(Box::new(make()))));
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| match r {
                ShardResponse::Group(reply) => reply,
                _ => GroupReply::Unavailable,
            })
            .collect()
    }

    /// Sends `request(shard)` to every shard that owns one of `topic`'s partitions, and waits.
    pub async fn broadcast_topic(&self, topic: &Arc<TopicMeta>, make: fn(Arc<TopicMeta>) -> ShardRequest) {
        let mut owners: Vec<ShardId> = topic.partitions.iter().map(|p| p.owner).collect();
        owners.sort();
        owners.dedup();
        let calls = owners.into_iter().map(|s| self.call(s, make(Arc::clone(topic))));
        futures::future::join_all(calls).await;
    }

    /// Groups items by the owner shard of their partition, keeping each item's position.
    /// Items whose partition is unknown come back in the second list.
    pub fn split_by_owner<T>(
        &self,
        items: Vec<(TopicPartition, T)>,
    ) -> (ByOwner<T>, Vec<Indexed<T>>) {
        let snapshot = self.metadata.load();
        let mut by_shard: BTreeMap<ShardId, Vec<_>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (i, (tp, item)) in items.into_iter().enumerate() {
            match snapshot.owner(&tp.topic, tp.partition) {
                Some(owner) => by_shard.entry(owner).or_default().push((i, tp, item)),
                None => unknown.push((i, tp, item)),
            }
        }
        (by_shard, unknown)
    }

    /// Serves the mesh inbox from peer shards until the mesh closes. Each message runs in its
    /// own task; tasks start in arrival order, so appends keep their order.
    pub async fn serve_inbox(self: Rc<Self>, mut receivers: glommio::channels::channel_mesh::Receivers<Envelope>) {
        let streams = receivers.streams();
        let mut loops = Vec::new();
        for (_, receiver) in streams {
            let router = Rc::clone(&self);
            loops.push(glommio::spawn_local(async move {
                while let Some(envelope) = receiver.recv().await {
                    let router = Rc::clone(&router);
                    glommio::spawn_local(async move {
                        let answer = router.local.handle(envelope.request, &router).await;
                        let _ = envelope.reply.send(answer);
                    })
                    .detach();
                }
            }));
        }
        futures::future::join_all(loops).await;
    }
}
