//! The messages a group coordinator serves: what a handler on any shard sends to the group's
//! coordinator shard ([`GroupCall`]) and what comes back ([`GroupReply`]). Failures cross as
//! Kafka codes: the coordinator turns each [`GroupError`](super::GroupError) into its code.

use crate::codes::ErrorCode;

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
    /// An open transaction holds a newer offset for this partition (TxnOffsetCommit).
    pub unstable: bool,
}

/// The transactional producer of a TxnOffsetCommit: its offsets count once its transaction
/// commits (a commit marker on the group's `__consumer_offsets` partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
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
        /// The transaction the offsets belong to (TxnOffsetCommit), `None` for OffsetCommit.
        txn: Option<TxnProducer>,
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
    Code(ErrorCode),
    /// LeaveGroup: top-level code and one per member.
    Leave(ErrorCode, Vec<ErrorCode>),
    /// OffsetCommit: one code per part.
    Committed(Vec<ErrorCode>),
    /// OffsetFetch entries.
    Offsets(Vec<OffsetEntry>),
    /// OffsetDelete: top-level code and one per partition (none when the top-level one is an error).
    Deleted(ErrorCode, Vec<ErrorCode>),
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
    /// The coordinator does not serve the group now: NOT_COORDINATOR (another broker leads its
    /// partition) or COORDINATOR_LOAD_IN_PROGRESS (its partition is being loaded).
    Refused(ErrorCode),
}

impl GroupReply {
    /// The code a handler answers when the reply is not the one it asked for: the refusal's
    /// code, else COORDINATOR_NOT_AVAILABLE (no coordinator answered).
    pub fn refusal_code(&self) -> ErrorCode {
        match self {
            GroupReply::Refused(code) => *code,
            _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        }
    }
}

impl GroupCall {
    /// The group the call is about (`None`: ListGroups, which spans the shard's groups).
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupCall::Join { req, .. } => Some(req.group_id.0.as_str()),
            GroupCall::Sync { req, .. } => Some(req.group_id.0.as_str()),
            GroupCall::ConsumerHeartbeat { req, .. } => Some(req.group_id.0.as_str()),
            GroupCall::Heartbeat { group, .. }
            | GroupCall::Leave { group, .. }
            | GroupCall::Commit { group, .. }
            | GroupCall::FetchOffsets { group, .. }
            | GroupCall::DeleteOffsets { group, .. }
            | GroupCall::Describe { group }
            | GroupCall::Delete { group }
            | GroupCall::ConsumerDescribe { group } => Some(group),
            GroupCall::List => None,
        }
    }
}

