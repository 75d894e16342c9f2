//! Everything one core may ask another: reading this module tells you all that crosses cores.
//!
//! A [`ShardRequest`] goes to one shard; its [`ShardResponse`] answers its parts in the order
//! they were asked. Record data crosses as `bytes::Bytes`: moved, never copied or re-encoded.
//! A hop that fails becomes [`ShardResponse::Failed`] with a Kafka error code, which the handler
//! puts into every part's answer: a client is never told "success" for work that did not run.
//!
//! Group work carries the group coordinator's own request and reply types ([`GroupCall`],
//! [`GroupReply`]): they are defined in `group` because the coordinator takes and returns them.
//! Transaction work likewise carries [`TxnCall`] and [`TxnReply`] from `txn`.

use std::sync::Arc;

use bytes::Bytes;

use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupReply};
use crate::txn::{TxnCall, TxnReply};
use crate::metadata::{MetadataMutation, MutationResult, PartitionChange, TopicMeta};
use crate::router::{Plane, Routed, RouterError};
use crate::storage::producers::ActiveProducer;
use crate::storage::reader::Located;
use crate::types::{ShardId, TopicPartition, TxnMarker};

/// One partition's records in a produce request.
#[derive(Debug)]
pub struct ProducePart {
    /// The partition.
    pub tp: TopicPartition,
    /// Record batches, as sliced from the request frame.
    pub records: Bytes,
    /// KIP-890: the verification guard the owner handed out for this part's transactional
    /// batches ([`ProducePartResult::verify_txn`]), once the coordinator verified the
    /// partition is in the producer's transaction; `None` on the first try.
    pub txn_guard: Option<u64>,
}

/// The outcome of one [`ProducePart`].
#[derive(Debug, Clone)]
pub struct ProducePartResult {
    /// Kafka error code.
    pub error_code: ErrorCode,
    /// Base offset assigned.
    pub base_offset: i64,
    /// LogAppendTime, or -1.
    pub log_append_time: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Error text.
    pub message: Option<String>,
    /// The refused records, for INVALID_RECORD and INVALID_TIMESTAMP (KIP-467); else empty.
    pub record_errors: Vec<crate::storage::validate::RecordError>,
    /// KIP-890: the part was transactional and not verified (INVALID_TXN_STATE, nothing
    /// written): verify it with the coordinator, then resend it with this guard.
    pub verify_txn: Option<u64>,
}

impl ProducePartResult {
    /// A part that failed with `error_code`, and why.
    pub fn failed(error_code: ErrorCode, message: Option<String>) -> Self {
        ProducePartResult { error_code, base_offset: -1, log_append_time: -1, log_start_offset: -1, message, record_errors: Vec::new(), verify_txn: None }
    }
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
    /// The leader epoch the client believes current, or -1 (KIP-320).
    pub current_leader_epoch: i32,
    /// The follower broker fetching (Fetch's replica id), `None` for a consumer.
    pub replica: Option<i32>,
    /// isolation_level 1: read only below the last stable offset, and list aborted transactions.
    pub read_committed: bool,
}

/// The outcome of one [`FetchPart`].
#[derive(Debug, Default)]
pub struct FetchPartResult {
    /// Kafka error code.
    pub error_code: ErrorCode,
    /// High watermark.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Last stable offset (-1 when unknown).
    pub last_stable_offset: i64,
    /// read_committed only: the aborted transactions (producer id, first offset) that overlap
    /// what may be returned.
    pub aborted: Option<Vec<(i64, i64)>>,
    /// Where the batches are: cached bytes, or a range for the connection's shard to read.
    pub records: Located,
    /// Fires when the partition's high watermark moves: registered on the owner before it read
    /// the partition's state, so a fetch that parks on it misses no append. Only when asked for.
    pub wake: Option<event_listener::EventListener>,
}

impl FetchPartResult {
    /// A part that failed with `error_code`: nothing located, no offsets known.
    pub fn failed(error_code: ErrorCode) -> Self {
        FetchPartResult { error_code, high_watermark: -1, log_start_offset: -1, last_stable_offset: -1, ..Default::default() }
    }
}

/// What ListOffsets asks of one partition.
#[derive(Debug, Clone, Copy)]
pub enum OffsetQuery {
    /// The log start offset (-2, and -4 earliest-local).
    Earliest,
    /// The high watermark, or the last stable offset for read_committed (-1).
    Latest,
    /// The record with the largest timestamp (-3).
    MaxTimestamp,
    /// The first record at or after a timestamp.
    Timestamp(i64),
}

/// One ListOffsets part.
#[derive(Debug, Clone, Copy)]
pub struct ListOffsetsPart {
    /// What is asked.
    pub query: OffsetQuery,
    /// isolation_level 1: nothing at or past the last stable offset is answered (else nothing
    /// at or past the high watermark), as Kafka's `lastFetchableOffset`.
    pub read_committed: bool,
    /// The leader epoch the client believes current, or -1 (KIP-320).
    pub current_leader_epoch: i32,
}

/// One OffsetForLeaderEpoch part.
#[derive(Debug, Clone, Copy)]
pub struct EpochQuery {
    /// The epoch whose end offset is asked.
    pub leader_epoch: i32,
    /// The leader epoch the client believes current, or -1 (KIP-320).
    pub current_leader_epoch: i32,
}

/// The outcome of a ListOffsets, OffsetForLeaderEpoch or DeleteRecords part.
#[derive(Debug, Clone, Copy)]
pub struct OffsetAnswer {
    /// Kafka error code.
    pub error_code: ErrorCode,
    /// The offset found (the end offset, for OffsetForLeaderEpoch; the new log start, for
    /// DeleteRecords), or -1.
    pub offset: i64,
    /// Timestamp of that record (ListOffsets), or -1.
    pub timestamp: i64,
    /// Leader epoch of that offset (ListOffsets) or the epoch found (OffsetForLeaderEpoch), or -1.
    pub leader_epoch: i32,
}

impl OffsetAnswer {
    /// A found offset, with its timestamp and leader epoch (-1 when there is none).
    pub fn found(offset: i64, timestamp: i64, leader_epoch: i32) -> Self {
        OffsetAnswer { error_code: ErrorCode::NONE, offset, timestamp, leader_epoch }
    }

    /// Nothing found, and no error (Kafka answers -1).
    pub fn none() -> Self {
        Self::found(-1, -1, -1)
    }

    /// A part that failed with `error_code`.
    pub fn failed(error_code: ErrorCode) -> Self {
        OffsetAnswer { error_code, offset: -1, timestamp: -1, leader_epoch: -1 }
    }
}

/// One partition's log size on its owner (DescribeLogDirs).
#[derive(Debug, Clone, Copy)]
pub struct LogSize {
    /// Kafka error code: UNKNOWN_TOPIC_OR_PARTITION when the owner holds no log for the partition.
    pub error_code: ErrorCode,
    /// Bytes of whole batches in the log's segments.
    pub size_bytes: u64,
}

impl LogSize {
    /// A partition whose size is not known, and why.
    pub fn failed(error_code: ErrorCode) -> Self {
        LogSize { error_code, size_bytes: 0 }
    }
}

/// A unit of work for one shard.
#[derive(Debug)]
pub enum ShardRequest {
    /// Data plane: append to partitions owned by the target shard.
    Produce {
        /// The shard holding the client connection (for logs).
        conn_shard: ShardId,
        /// 0, 1 or -1.
        acks: i16,
        /// How long `acks=all` may wait for the in-sync replicas (the request's timeout).
        timeout_ms: u64,
        /// Parts for this shard.
        parts: Vec<ProducePart>,
    },
    /// Data plane: locate records in partitions owned by the target shard.
    Fetch {
        /// Parts for this shard.
        parts: Vec<FetchPart>,
        /// Register a wake-up per part: the fetch may park (it has a wait and a minimum).
        listen: bool,
    },
    /// Data plane: ListOffsets parts.
    ListOffsets(Vec<(TopicPartition, ListOffsetsPart)>),
    /// Data plane: OffsetForLeaderEpoch parts.
    EpochEndOffsets(Vec<(TopicPartition, EpochQuery)>),
    /// Data plane: DeleteRecords parts: truncate before the offset (-1 = high watermark).
    DeleteRecords(Vec<(TopicPartition, i64)>),
    /// Data plane: the sizes of partitions' logs (DescribeLogDirs).
    LogSizes(Vec<TopicPartition>),
    /// Data plane: the active producers of partitions led here (DescribeProducers).
    DescribeProducers(Vec<TopicPartition>),
    /// Data plane: transaction markers to append to partitions led here (WriteTxnMarkers).
    TxnMarkers(Vec<(TopicPartition, TxnMarker)>),
    /// Data plane: work for the group coordinator of the target shard (boxed: joins are large).
    Group(Box<GroupCall>),
    /// Data plane: work for the transaction coordinator of the target shard.
    Txn(Box<TxnCall>),
    /// Control plane: a metadata mutation (shard 0 only).
    Mutate(MetadataMutation),
    /// Control plane: open (create) the logs of a topic's partitions owned by the target shard.
    OpenPartitions(Arc<TopicMeta>),
    /// Control plane: delete the logs of a deleted topic.
    RemoveTopic(Arc<TopicMeta>),
    /// Control plane: a topic's configs changed: re-resolve them.
    ReloadConfig(Arc<TopicMeta>),
    /// Control plane (cluster): what an applied metadata change means for this broker's
    /// replicas on the target shard, in order.
    PartitionChanges(Vec<PartitionChange>),
}

impl Routed for ShardRequest {
    fn plane(&self) -> Plane {
        match self {
            ShardRequest::Produce { .. }
            | ShardRequest::Fetch { .. }
            | ShardRequest::ListOffsets(_)
            | ShardRequest::EpochEndOffsets(_)
            | ShardRequest::DeleteRecords(_)
            | ShardRequest::LogSizes(_)
            | ShardRequest::TxnMarkers(_)
            | ShardRequest::DescribeProducers(_)
            | ShardRequest::Group(_)
            | ShardRequest::Txn(_) => Plane::Data,
            ShardRequest::Mutate(_)
            | ShardRequest::OpenPartitions(_)
            | ShardRequest::RemoveTopic(_)
            | ShardRequest::ReloadConfig(_)
            | ShardRequest::PartitionChanges(_) => Plane::Control,
        }
    }
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
    /// Log sizes.
    LogSizes(Vec<LogSize>),
    /// Each transaction marker's outcome.
    TxnMarkers(Vec<ErrorCode>),
    /// Each partition's active producers, or why it has none to tell.
    Producers(Vec<Result<Vec<ActiveProducer>, ErrorCode>>),
    /// Opened, removed or reloaded.
    Done,
    /// A mutation's result.
    Mutated(MutationResult),
    /// A group operation's result.
    Group(GroupReply),
    /// A transaction operation's result.
    Txn(TxnReply),
    /// The request did not run: the hop failed or the shard refused it. Stands for every part.
    Failed(ErrorCode),
}

impl From<RouterError> for ShardResponse {
    fn from(e: RouterError) -> Self {
        ShardResponse::Failed(ErrorCode::from(&e))
    }
}

/// The error code for a response of the wrong kind: a bug, never expected.
fn mismatched(got: &ShardResponse) -> ErrorCode {
    tracing::error!(response = ?got, "a shard answered with the wrong response kind");
    ErrorCode::UNKNOWN_SERVER_ERROR
}

/// Each `into_…` takes a response apart: what its kind carries, or the code that stands for all
/// of its parts when the request did not run (or, a bug, was answered with another kind).
macro_rules! response_parts {
    ($($(#[$doc:meta])* $name:ident: $variant:ident($carried:ty);)*) => {
        impl ShardResponse {
            $(
                $(#[$doc])*
                pub fn $name(self) -> Result<$carried, ErrorCode> {
                    match self {
                        ShardResponse::$variant(r) => Ok(r),
                        ShardResponse::Failed(code) => Err(code),
                        other => Err(mismatched(&other)),
                    }
                }
            )*
        }
    };
}

response_parts! {
    /// The produce results, or the code that stands for all of them.
    into_produce: Produce(Vec<ProducePartResult>);
    /// The fetch results, or the code that stands for all of them.
    into_fetch: Fetch(Vec<FetchPartResult>);
    /// The offset answers, or the code that stands for all of them.
    into_offsets: Offsets(Vec<OffsetAnswer>);
    /// The log sizes, or the code that stands for all of them.
    into_log_sizes: LogSizes(Vec<LogSize>);
    /// The markers' outcomes, or the code that stands for all of them.
    into_txn_markers: TxnMarkers(Vec<ErrorCode>);
    /// The partitions' active producers, or the code that stands for all of them.
    into_producers: Producers(Vec<Result<Vec<ActiveProducer>, ErrorCode>>);
    /// The group reply, or the code that stands for it.
    into_group: Group(GroupReply);
    /// The transaction reply, or the code that stands for it.
    into_txn: Txn(TxnReply);
    /// The mutation's result, or the code that stands for it.
    into_mutated: Mutated(MutationResult);
}
