//! Why a group request failed. `crate::error` maps each variant to the Kafka error code the
//! client acts on (`ErrorCode::from(&err)`); the coordinator writes that code into its responses.

use crate::codes::ErrorCode;

/// A failure the group coordinators (classic and KIP-848) report to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The request names no group.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// The member's session timeout is outside `group.min/max.session.timeout.ms`.
    #[error("session timeout {timeout_ms} ms is outside the broker's range {min_ms}..={max_ms} ms")]
    InvalidSessionTimeout {
        /// What the member asked for.
        timeout_ms: i32,
        /// `group.min.session.timeout.ms`.
        min_ms: i32,
        /// `group.max.session.timeout.ms`.
        max_ms: i32,
    },
    /// The group is being deleted: its coordinator does not serve it now.
    #[error("group {group} is dead")]
    GroupDead {
        /// Group id.
        group: String,
    },
    /// The member's protocol type or protocols do not match the group's.
    #[error("the member's protocols do not match those of group {group}")]
    InconsistentGroupProtocol {
        /// Group id.
        group: String,
    },
    /// A static instance id is held by another member id.
    #[error("instance {instance_id} belongs to another member than {member_id}")]
    FencedInstanceId {
        /// The static instance id.
        instance_id: String,
        /// The member id the request carried.
        member_id: String,
    },
    /// The group has no such member.
    #[error("unknown member {member_id}")]
    UnknownMemberId {
        /// The member id the request carried.
        member_id: String,
    },
    /// A new member must rejoin with the id handed out (KIP-394).
    #[error("the member must rejoin with member id {member_id}")]
    MemberIdRequired {
        /// The id it must rejoin with.
        member_id: String,
    },
    /// The request's generation is not the group's.
    #[error("generation {generation} is not the group's generation {current}")]
    IllegalGeneration {
        /// The generation the request carried.
        generation: i32,
        /// The group's generation.
        current: i32,
    },
    /// The group is rebalancing: the member must rejoin.
    #[error("group {group} is rebalancing")]
    RebalanceInProgress {
        /// Group id.
        group: String,
    },
    /// A committed offset's metadata is over `offset.metadata.max.bytes`.
    #[error("offset metadata of {size} bytes is over the limit of {max} bytes")]
    OffsetMetadataTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An offset commit names a partition that does not exist.
    #[error("unknown partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The group does not exist.
    #[error("group {group} does not exist")]
    GroupIdNotFound {
        /// Group id.
        group: String,
    },
    /// The group still has members, so it cannot be deleted.
    #[error("group {group} still has members")]
    NonEmptyGroup {
        /// Group id.
        group: String,
    },
    /// The group's members still subscribe to the topic whose offsets are to be deleted.
    #[error("the group still subscribes to topic {topic}")]
    GroupSubscribedToTopic {
        /// Topic.
        topic: String,
    },
    /// A KIP-848 member's epoch is neither its current nor its previous one.
    #[error("member {member_id} epoch {epoch} is fenced")]
    FencedMemberEpoch {
        /// Member id.
        member_id: String,
        /// The epoch the request carried.
        epoch: i32,
    },
    /// A KIP-848 member commits offsets with an epoch that is not its current one.
    #[error("member {member_id} epoch {epoch} is stale (current {current})")]
    StaleMemberEpoch {
        /// Member id.
        member_id: String,
        /// The epoch the request carried.
        epoch: i32,
        /// The member's epoch.
        current: i32,
    },
    /// A KIP-848 member asks for a server assignor Ringlog does not serve.
    #[error("assignor {assignor} is not served")]
    UnsupportedAssignor {
        /// The assignor's name.
        assignor: String,
    },
    /// A KIP-848 member joins (epoch 0) without its subscription.
    #[error("a joining member must send its subscription")]
    SubscriptionRequired,
    /// This broker does not lead the group's `__consumer_offsets` partition: the client must find
    /// the coordinator again.
    #[error("not the coordinator of __consumer_offsets-{partition}")]
    NotCoordinator {
        /// The group's `__consumer_offsets` partition.
        partition: i32,
    },
    /// This broker just became the coordinator and is still replaying the group's partition.
    #[error("__consumer_offsets-{partition} is still loading")]
    CoordinatorLoadInProgress {
        /// The group's `__consumer_offsets` partition.
        partition: i32,
    },
    /// Writing the group's state or offsets to `__consumer_offsets` failed, with the log's code.
    #[error("__consumer_offsets write failed: {0}")]
    StateWrite(ErrorCode),
}

/// The code of an outcome: `NONE` for success.
pub(super) fn outcome_code(outcome: &Result<(), GroupError>) -> ErrorCode {
    match outcome {
        Ok(()) => ErrorCode::NONE,
        Err(e) => ErrorCode::from(e),
    }
}
