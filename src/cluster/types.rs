//! What the nodes of a cluster say to each other about metadata: the Raft type configuration of
//! the controller quorum, the command its log carries, and the controller RPCs.
//!
//! Every node of a multi-node cluster runs openraft on its controller shard (shard 0). The Raft
//! leader is the active controller: it plans each mutation against its image and writes the
//! records as one log entry ([`ControllerCommand`]); every node applies committed entries to its
//! own [`crate::metadata::ClusterSnapshot`] with `metadata::image::apply_all`, so every broker
//! sees the same metadata. A node that is not the leader forwards mutations and heartbeats to it
//! ([`AppRequest`]). All of it travels as JSON in length-prefixed frames on the controller
//! listener (`cluster::rpc`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};

use super::runtime::GlommioRuntime;
use crate::metadata::{MetadataMutation, MetadataRecord, TopicMeta};

openraft::declare_raft_types!(
    /// The controller quorum's types: metadata records in, the applied position out. Node ids
    /// are Kafka's `node.id`s; a node's address is its controller listener (`host:port`).
    pub ControllerRaft:
        D = ControllerCommand,
        R = ControllerReply,
        AsyncRuntime = GlommioRuntime,
);

/// One Raft log entry: the records of one metadata mutation, applied whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerCommand {
    /// The records, in order.
    pub records: Vec<MetadataRecord>,
}

/// What applying a [`ControllerCommand`] gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerReply {
    /// Why the records did not apply, if they did not (the snapshot is then unchanged). The
    /// leader validates before it writes, so this means a bug; it is reported, not hidden.
    pub rejected: Option<String>,
}

/// A Raft RPC between controller voters, and the answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<ControllerRaft>),
    /// A candidate asks for a vote.
    Vote(VoteRequest<ControllerRaft>),
    /// A node that lost its leader asks whether it would win an election, before it bumps its
    /// term (Raft's pre-vote, answered with [`RaftResponse::Vote`]): a node cut off from the
    /// quorum then cannot depose a healthy leader when it comes back.
    PreVote(VoteRequest<ControllerRaft>),
    /// The leader sends a whole snapshot (a metadata checkpoint's bytes) to a lagging node.
    Snapshot {
        /// The leader's vote.
        vote: VoteOf<ControllerRaft>,
        /// What the snapshot covers.
        meta: SnapshotMetaOf<ControllerRaft>,
        /// The checkpoint bytes (`metadata::log::encode_checkpoint`).
        data: Vec<u8>,
    },
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// To AppendEntries.
    AppendEntries(AppendEntriesResponse<ControllerRaft>),
    /// To Vote and PreVote.
    Vote(VoteResponse<ControllerRaft>),
    /// To Snapshot.
    Snapshot(SnapshotResponse<ControllerRaft>),
}

/// What a broker asks the active controller for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AppRequest {
    /// Run a metadata mutation (CreateTopics, AlterPartition, RegisterBroker, ...).
    Mutate(MetadataMutation),
    /// A broker is alive (`broker.heartbeat.interval.ms`).
    Heartbeat(BrokerHeartbeat),
    /// A broker-only node asks to follow the quorum's log as an openraft learner, reached at
    /// `addr` (its controller RPC listener). Asking again is harmless.
    AddLearner {
        /// Its `node.id`.
        node_id: i32,
        /// Its controller RPC listener, `host:port`.
        addr: String,
    },
}

/// The answer to an [`AppRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AppResponse {
    /// The mutation's result.
    Mutated(Result<RemoteOutcome, RemoteError>),
    /// The heartbeat's answer.
    Heartbeat(HeartbeatReply),
    /// The node is a learner of the quorum at the address it gave (or a refusal's reason).
    LearnerAdded(Result<(), RemoteError>),
    /// This node is not the active controller; `leader` is, when known.
    NotController {
        /// The Raft leader's node id.
        leader: Option<u64>,
    },
}

/// A mutation's outcome as it crosses nodes (`metadata::MutationOutcome`, by value).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteOutcome {
    /// The topic after the change (before it, for a delete).
    pub topic: Option<TopicMeta>,
    /// A reserved producer id.
    pub producer_id: Option<i64>,
    /// The Raft log index of the entry that made the change: the forwarding node waits until
    /// it has applied that far before it answers its client, so it reads its own write.
    pub log_index: Option<u64>,
}

/// A refused mutation as it crosses nodes: the Kafka error code and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Kafka's error code (`ErrorCode::code()`).
    pub code: i16,
    /// What the controller said.
    pub message: String,
}

/// KIP-631's BrokerHeartbeat, in the part Ringlog uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    /// `node.id` of the broker.
    pub broker_id: i32,
    /// Its current registration's incarnation.
    pub incarnation_id: Uuid,
    /// The Raft log index the broker has applied: it is unfenced once it has caught up.
    pub applied_index: u64,
}

/// The controller's answer to a [`BrokerHeartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The broker is fenced: it leads nothing and must not be elected.
    pub fenced: bool,
    /// The broker is not registered (or under an older incarnation): register again.
    pub unknown: bool,
}

impl std::fmt::Display for ControllerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata record(s)", self.records.len())
    }
}

impl std::fmt::Display for ControllerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rejected {
            None => f.write_str("applied"),
            Some(why) => write!(f, "rejected: {why}"),
        }
    }
}
