//! Kafka's error codes as one type, [`ErrorCode`]: a leaf every module may use.
//!
//! The table itself (every code Kafka 4 defines, its name and whether a client retries it) is
//! kafka-protocol's [`ResponseError`], generated from Kafka's `Errors.java`; it is not written
//! out again here. [`ErrorCode`] adds Kafka's `NONE` and the names Ringlog uses, spelled as in
//! Kafka (`ErrorCode::UNKNOWN_TOPIC_OR_PARTITION` is `Errors.UNKNOWN_TOPIC_OR_PARTITION`).
//!
//! Subsystems return their own error enums; `crate::error` maps each of them to an
//! [`ErrorCode`]. The `i16` appears only at the codec boundary, through [`ErrorCode::code`].

use std::fmt;

pub use kafka_protocol::ResponseError;

/// A Kafka error code: `NONE`, or one of Kafka's errors.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorCode(Option<ResponseError>);

macro_rules! kafka_codes {
    ($($name:ident => $variant:ident),* $(,)?) => {
        impl ErrorCode {
            $(
                #[doc = concat!("Kafka's `", stringify!($name), "`.")]
                pub const $name: ErrorCode = ErrorCode(Some(ResponseError::$variant));
            )*
        }
    };
}

kafka_codes! {
    UNKNOWN_SERVER_ERROR => UnknownServerError,
    OFFSET_OUT_OF_RANGE => OffsetOutOfRange,
    CORRUPT_MESSAGE => CorruptMessage,
    UNKNOWN_TOPIC_OR_PARTITION => UnknownTopicOrPartition,
    INVALID_FETCH_SIZE => InvalidFetchSize,
    LEADER_NOT_AVAILABLE => LeaderNotAvailable,
    NOT_LEADER_OR_FOLLOWER => NotLeaderOrFollower,
    REQUEST_TIMED_OUT => RequestTimedOut,
    MESSAGE_TOO_LARGE => MessageTooLarge,
    OFFSET_METADATA_TOO_LARGE => OffsetMetadataTooLarge,
    COORDINATOR_LOAD_IN_PROGRESS => CoordinatorLoadInProgress,
    COORDINATOR_NOT_AVAILABLE => CoordinatorNotAvailable,
    NOT_COORDINATOR => NotCoordinator,
    INVALID_TOPIC_EXCEPTION => InvalidTopicException,
    RECORD_LIST_TOO_LARGE => RecordListTooLarge,
    NOT_ENOUGH_REPLICAS => NotEnoughReplicas,
    NOT_ENOUGH_REPLICAS_AFTER_APPEND => NotEnoughReplicasAfterAppend,
    INVALID_REQUIRED_ACKS => InvalidRequiredAcks,
    ILLEGAL_GENERATION => IllegalGeneration,
    INCONSISTENT_GROUP_PROTOCOL => InconsistentGroupProtocol,
    INVALID_GROUP_ID => InvalidGroupId,
    UNKNOWN_MEMBER_ID => UnknownMemberId,
    INVALID_SESSION_TIMEOUT => InvalidSessionTimeout,
    REBALANCE_IN_PROGRESS => RebalanceInProgress,
    INVALID_TIMESTAMP => InvalidTimestamp,
    UNSUPPORTED_VERSION => UnsupportedVersion,
    TOPIC_ALREADY_EXISTS => TopicAlreadyExists,
    INVALID_PARTITIONS => InvalidPartitions,
    INVALID_REPLICATION_FACTOR => InvalidReplicationFactor,
    INVALID_REPLICA_ASSIGNMENT => InvalidReplicaAssignment,
    INVALID_CONFIG => InvalidConfig,
    NOT_CONTROLLER => NotController,
    INVALID_REQUEST => InvalidRequest,
    UNSUPPORTED_FOR_MESSAGE_FORMAT => UnsupportedForMessageFormat,
    POLICY_VIOLATION => PolicyViolation,
    OUT_OF_ORDER_SEQUENCE_NUMBER => OutOfOrderSequenceNumber,
    DUPLICATE_SEQUENCE_NUMBER => DuplicateSequenceNumber,
    INVALID_PRODUCER_EPOCH => InvalidProducerEpoch,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED => TransactionalIdAuthorizationFailed,
    KAFKA_STORAGE_ERROR => KafkaStorageError,
    UNKNOWN_PRODUCER_ID => UnknownProducerId,
    NON_EMPTY_GROUP => NonEmptyGroup,
    GROUP_ID_NOT_FOUND => GroupIdNotFound,
    FENCED_LEADER_EPOCH => FencedLeaderEpoch,
    UNKNOWN_LEADER_EPOCH => UnknownLeaderEpoch,
    MEMBER_ID_REQUIRED => MemberIdRequired,
    GROUP_MAX_SIZE_REACHED => GroupMaxSizeReached,
    FENCED_INSTANCE_ID => FencedInstanceId,
    GROUP_SUBSCRIBED_TO_TOPIC => GroupSubscribedToTopic,
    INVALID_RECORD => InvalidRecord,
    UNKNOWN_TOPIC_ID => UnknownTopicId,
    FENCED_MEMBER_EPOCH => FencedMemberEpoch,
    UNRELEASED_INSTANCE_ID => UnreleasedInstanceId,
    UNSUPPORTED_ASSIGNOR => UnsupportedAssignor,
    STALE_MEMBER_EPOCH => StaleMemberEpoch,
    INVALID_UPDATE_VERSION => InvalidUpdateVersion,
    BROKER_ID_NOT_REGISTERED => BrokerIdNotRegistered,
    INELIGIBLE_REPLICA => IneligibleReplica,
    // ElectLeaders and KIP-455 reassignments.
    PREFERRED_LEADER_NOT_AVAILABLE => PreferredLeaderNotAvailable,
    ELIGIBLE_LEADERS_NOT_AVAILABLE => EligibleLeadersNotAvailable,
    ELECTION_NOT_NEEDED => ElectionNotNeeded,
    NO_REASSIGNMENT_IN_PROGRESS => NoReassignmentInProgress,
    // TxnOffsetCommit and OffsetFetch's require_stable (KIP-447).
    UNSTABLE_OFFSET_COMMIT => UnstableOffsetCommit,
}

// The transaction coordinator's codes (txn, issue 18).
kafka_codes! {
    INVALID_TXN_STATE => InvalidTxnState,
    INVALID_PRODUCER_ID_MAPPING => InvalidProducerIdMapping,
    INVALID_TRANSACTION_TIMEOUT => InvalidTransactionTimeout,
    CONCURRENT_TRANSACTIONS => ConcurrentTransactions,
    TRANSACTION_COORDINATOR_FENCED => TransactionCoordinatorFenced,
    PRODUCER_FENCED => ProducerFenced,
    TRANSACTIONAL_ID_NOT_FOUND => TransactionalIdNotFound,
    OPERATION_NOT_ATTEMPTED => OperationNotAttempted,
}

impl ErrorCode {
    /// Kafka's `NONE`: success.
    pub const NONE: ErrorCode = ErrorCode(None);

    /// The code as it goes on the wire: the codec boundary.
    pub const fn code(self) -> i16 {
        match self.0 {
            None => 0,
            Some(e) => e.code(),
        }
    }

    /// The code a response carried (tests and clients of other brokers); unknown numbers are kept.
    pub const fn from_code(code: i16) -> Self {
        ErrorCode(ResponseError::try_from_code(code))
    }

    /// Whether this is `NONE`.
    pub const fn is_none(self) -> bool {
        self.0.is_none()
    }

    /// Whether this is an error.
    pub const fn is_err(self) -> bool {
        self.0.is_some()
    }

    /// Whether a client may retry the request that got this code, as Kafka defines it.
    pub const fn is_retriable(self) -> bool {
        match self.0 {
            None => false,
            Some(e) => e.is_retriable(),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("NONE"),
            Some(e) => e.fmt(f),
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}({})", self.code())
    }
}

impl From<ResponseError> for ErrorCode {
    fn from(e: ResponseError) -> Self {
        ErrorCode(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kafkas_numbers() {
        assert_eq!(ErrorCode::NONE.code(), 0);
        assert_eq!(ErrorCode::UNKNOWN_SERVER_ERROR.code(), -1);
        assert_eq!(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), 3);
        assert_eq!(ErrorCode::NOT_LEADER_OR_FOLLOWER.code(), 6);
        assert_eq!(ErrorCode::KAFKA_STORAGE_ERROR.code(), 56);
        assert_eq!(ErrorCode::FENCED_LEADER_EPOCH.code(), 74);
        assert_eq!(ErrorCode::UNKNOWN_LEADER_EPOCH.code(), 75);
        assert_eq!(ErrorCode::STALE_MEMBER_EPOCH.code(), 113);
        assert_eq!(ErrorCode::from_code(25), ErrorCode::UNKNOWN_MEMBER_ID);
        assert_eq!(ErrorCode::from_code(0), ErrorCode::NONE);
        assert!(ErrorCode::NOT_LEADER_OR_FOLLOWER.is_retriable());
        assert!(!ErrorCode::INVALID_CONFIG.is_retriable());
        assert_eq!(format!("{:?}", ErrorCode::UNKNOWN_MEMBER_ID), "UnknownMemberId(25)");
    }
}
