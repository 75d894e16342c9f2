//! The one place where each subsystem's error enum becomes a Kafka error code.
//!
//! Every subsystem returns its own typed error; each gets an exhaustive `From<&…> for
//! ErrorCode` here, so a new variant without a code is a compile error, not a silent
//! UNKNOWN_SERVER_ERROR. Trait impls are global: a subsystem converts with `ErrorCode::from(&e)`
//! without importing this module (which imports them all, so none of them may import it).

use crate::cluster::isr::AckError;
use crate::codes::ErrorCode;
use crate::router::RouterError;
use crate::group::GroupError;
use crate::cluster::client::ClientError;
use crate::metadata::MetadataError;
use crate::storage::StorageError;
use crate::cluster::rpc::RpcError;

// Storage errors -------------------------------------------------------------------------------

impl From<&StorageError> for ErrorCode {
    fn from(e: &StorageError) -> Self {
        match e {
            StorageError::Io(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            StorageError::CorruptBatch(_) => ErrorCode::CORRUPT_MESSAGE,
            StorageError::UnsupportedMagic(_) => ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            StorageError::MessageTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            StorageError::OffsetOutOfRange { .. } | StorageError::SegmentDeleted { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            StorageError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            StorageError::InvalidProducerEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
            StorageError::UnknownLeaderEpoch { .. } => ErrorCode::UNKNOWN_LEADER_EPOCH,
            StorageError::FencedLeaderEpoch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
            StorageError::Closed => ErrorCode::NOT_LEADER_OR_FOLLOWER,
            // Follower appends (issue 17): the fetcher's position and the leader's batches
            // disagree. Kafka's fetcher answers OFFSET_OUT_OF_RANGE by asking the leader for its
            // offsets again and truncating, which is what this needs; the code is retriable and
            // never reaches a client.
            StorageError::OffsetMismatch { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            // Issue 18, produce-side record checks (storage::validate, KIP-467): Kafka's
            // InvalidRecordException and InvalidTimestampException.
            StorageError::InvalidRecords(_) => ErrorCode::INVALID_RECORD,
            StorageError::InvalidTimestamps(_) => ErrorCode::INVALID_TIMESTAMP,
            // Issue 18, the partition side of transactions (storage::producers): KIP-890's
            // unverified transactional write, and a marker from a zombie coordinator.
            StorageError::InvalidTxnState(_) => ErrorCode::INVALID_TXN_STATE,
            StorageError::CoordinatorFenced { .. } => ErrorCode::TRANSACTION_COORDINATOR_FENCED,
        }
    }
}

// Replication (ISR) errors ----------------------------------------------------------------------
// Issue 17: an `acks=all` produce on a replicated partition (`cluster::isr`).

impl From<&AckError> for ErrorCode {
    fn from(e: &AckError) -> Self {
        match e {
            AckError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
            AckError::NotEnoughReplicasAfterAppend { .. } => ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            AckError::NotLeaderOrFollower => ErrorCode::NOT_LEADER_OR_FOLLOWER,
        }
    }
}

// Router (cross-core transport) errors ---------------------------------------------------------

impl From<&RouterError> for ErrorCode {
    /// The partition's owner core on this broker cannot be reached: to a client that is what
    /// an offline log directory is in Kafka, a retriable KAFKA_STORAGE_ERROR that makes it
    /// refresh metadata and retry (Java's consumer and producer, and librdkafka, all do).
    fn from(e: &RouterError) -> Self {
        match e {
            RouterError::SendFailed { .. } | RouterError::Unanswered { .. } => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

// Group errors ---------------------------------------------------------------------------------
// The one mapping of the group coordinators' failures to Kafka codes (KIP-848 ones included).

impl From<&GroupError> for ErrorCode {
    fn from(err: &GroupError) -> Self {
        match err {
            GroupError::InvalidGroupId => ErrorCode::INVALID_GROUP_ID,
            GroupError::InvalidSessionTimeout { .. } => ErrorCode::INVALID_SESSION_TIMEOUT,
            GroupError::GroupDead { .. } => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            GroupError::InconsistentGroupProtocol { .. } => ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
            GroupError::FencedInstanceId { .. } => ErrorCode::FENCED_INSTANCE_ID,
            GroupError::UnknownMemberId { .. } => ErrorCode::UNKNOWN_MEMBER_ID,
            GroupError::MemberIdRequired { .. } => ErrorCode::MEMBER_ID_REQUIRED,
            GroupError::IllegalGeneration { .. } => ErrorCode::ILLEGAL_GENERATION,
            GroupError::RebalanceInProgress { .. } => ErrorCode::REBALANCE_IN_PROGRESS,
            GroupError::OffsetMetadataTooLarge { .. } => ErrorCode::OFFSET_METADATA_TOO_LARGE,
            GroupError::UnknownTopicOrPartition { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            GroupError::GroupIdNotFound { .. } => ErrorCode::GROUP_ID_NOT_FOUND,
            GroupError::NonEmptyGroup { .. } => ErrorCode::NON_EMPTY_GROUP,
            GroupError::GroupSubscribedToTopic { .. } => ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC,
            GroupError::FencedMemberEpoch { .. } => ErrorCode::FENCED_MEMBER_EPOCH,
            GroupError::StaleMemberEpoch { .. } => ErrorCode::STALE_MEMBER_EPOCH,
            GroupError::UnsupportedAssignor { .. } => ErrorCode::UNSUPPORTED_ASSIGNOR,
            GroupError::SubscriptionRequired => ErrorCode::INVALID_REQUEST,
            // Issue 17: group coordination moves with `__consumer_offsets` leadership.
            GroupError::NotCoordinator { .. } => ErrorCode::NOT_COORDINATOR,
            GroupError::CoordinatorLoadInProgress { .. } => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            GroupError::StateWrite(code) => group_write_code(*code),
        }
    }
}

/// What a client sees when a group write to `__consumer_offsets` fails with the log's `code`:
/// Kafka 4's `GroupCoordinatorService.normalizeException`. A lost leadership (or a broken log)
/// means "find the coordinator again"; a missing partition, too few in-sync replicas or a
/// replication timeout mean "retry later"; an oversized write is a server-side fault.
fn group_write_code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => ErrorCode::NOT_COORDINATOR,
        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE | ErrorCode::INVALID_FETCH_SIZE => {
            ErrorCode::UNKNOWN_SERVER_ERROR
        }
        other => other,
    }
}

// Metadata errors ------------------------------------------------------------------------------

/// The Kafka error code a client sees for a refused or failed metadata change. The codes are the
/// ones the JSON store returned as raw numbers.
impl From<&MetadataError> for ErrorCode {
    fn from(err: &MetadataError) -> Self {
        match err {
            MetadataError::InvalidTopic { .. } => ErrorCode::INVALID_TOPIC_EXCEPTION,
            MetadataError::TopicAlreadyExists { .. } => ErrorCode::TOPIC_ALREADY_EXISTS,
            MetadataError::UnknownTopic { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            MetadataError::UnknownTopicId { .. } => ErrorCode::UNKNOWN_TOPIC_ID,
            MetadataError::InvalidPartitions { .. } => ErrorCode::INVALID_PARTITIONS,
            MetadataError::InvalidReplicationFactor { .. } => ErrorCode::INVALID_REPLICATION_FACTOR,
            MetadataError::InvalidConfig { .. } => ErrorCode::INVALID_CONFIG,
            MetadataError::InvalidReplicaAssignment { .. } => ErrorCode::INVALID_REPLICA_ASSIGNMENT,
            MetadataError::InvalidRequest { .. } => ErrorCode::INVALID_REQUEST,
            MetadataError::InvalidRecord { .. } | MetadataError::ControllerUnavailable => ErrorCode::UNKNOWN_SERVER_ERROR,
            MetadataError::NotController => ErrorCode::NOT_LEADER_OR_FOLLOWER,
            MetadataError::Io(_) | MetadataError::LogFailed | MetadataError::Corrupt { .. } => ErrorCode::KAFKA_STORAGE_ERROR,
            // The controller's partition decisions (AlterPartition, fencing): Kafka's codes.
            MetadataError::UnknownPartition { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            MetadataError::UnknownBroker { .. } => ErrorCode::BROKER_ID_NOT_REGISTERED,
            MetadataError::FencedLeaderEpoch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
            MetadataError::NotLeader { .. } => ErrorCode::NOT_LEADER_OR_FOLLOWER,
            MetadataError::InvalidUpdateVersion { .. } => ErrorCode::INVALID_UPDATE_VERSION,
            MetadataError::IneligibleReplica { .. } => ErrorCode::INELIGIBLE_REPLICA,
            // ElectLeaders and KIP-455 reassignments (metadata::reassignment): Kafka's codes.
            MetadataError::ElectionNotNeeded { .. } => ErrorCode::ELECTION_NOT_NEEDED,
            MetadataError::PreferredLeaderNotAvailable { .. } => ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
            MetadataError::EligibleLeadersNotAvailable { .. } => ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            MetadataError::NoReassignmentInProgress { .. } => ErrorCode::NO_REASSIGNMENT_IN_PROGRESS,
            // Mapped on the controller that refused it; carried over the wire as the number.
            MetadataError::Remote { code, .. } => ErrorCode::from_code(*code),
        }
    }
}

// Controller RPC errors -----------------------------------------------------------------------
// A broker's call to the active controller failed (cluster::rpc). What its client sees: a
// controller that cannot be reached is NOT_CONTROLLER (retriable: clients refresh metadata and
// retry, as they do while KRaft elects a controller); a deadline is REQUEST_TIMED_OUT; a reply
// that makes no sense is a bug, UNKNOWN_SERVER_ERROR.

impl From<&RpcError> for ErrorCode {
    fn from(err: &RpcError) -> Self {
        match err {
            RpcError::Resolve { .. } | RpcError::Connect { .. } | RpcError::Io { .. } | RpcError::Remote { .. } => ErrorCode::NOT_CONTROLLER,
            RpcError::Timeout { .. } => ErrorCode::REQUEST_TIMED_OUT,
            RpcError::Request { .. } | RpcError::BadReply { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod rpc_error_tests {
    use super::*;
    use crate::cluster::rpc::FrameError;

    /// Every controller RPC error against Kafka's number for it (Errors.java).
    #[test]
    fn rpc_errors_map_to_kafka_codes() {
        let addr = || "c1:9093".to_string();
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases: Vec<(RpcError, i16)> = vec![
            (RpcError::Resolve { addr: addr(), source: io() }, 41),
            (RpcError::Connect { addr: addr(), source: io() }, 41),
            (RpcError::Timeout { addr: addr(), after: std::time::Duration::from_secs(1) }, 7),
            (RpcError::Io { addr: addr(), source: io() }, 41),
            (RpcError::Request { addr: addr(), source: FrameError::TooLarge { len: 1 << 30 } }, -1),
            (RpcError::BadReply { addr: addr(), source: FrameError::UnknownKind(9) }, -1),
            (RpcError::Remote { addr: addr(), message: "raft stopped".into() }, 41),
        ];
        for (err, wire) in &cases {
            // The exhaustive match below fails to compile when a variant is added without a case here.
            match err {
                RpcError::Resolve { .. }
                | RpcError::Connect { .. }
                | RpcError::Timeout { .. }
                | RpcError::Io { .. }
                | RpcError::Request { .. }
                | RpcError::BadReply { .. }
                | RpcError::Remote { .. } => {}
            }
            assert_eq!(ErrorCode::from(err).code(), *wire, "{err:?}");
        }
        assert_eq!(cases.len(), 7, "one case per RpcError variant");
    }
}

// Inter-broker client errors (cluster::client) ---------------------------------------------------
// What a broker answers when a call it made to another broker on a client's behalf failed:
// network failures are Kafka's retriable NETWORK_EXCEPTION and REQUEST_TIMED_OUT.

impl From<&ClientError> for ErrorCode {
    fn from(err: &ClientError) -> Self {
        match err {
            ClientError::Connect { .. } | ClientError::Closed { .. } => {
                ErrorCode::from(crate::codes::ResponseError::NetworkException)
            }
            ClientError::Timeout { .. } => ErrorCode::REQUEST_TIMED_OUT,
            // Brokers that cannot parse each other's frames: a bug, not a retriable state.
            ClientError::Codec { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ShardId;

    /// Every storage and router error, with the code a Kafka client must see for it.
    #[test]
    fn storage_and_router_errors_map_to_kafka_codes() {
        let storage = [
            (StorageError::Io("disk".into()), 56),
            (StorageError::CorruptBatch("crc".into()), 2),
            (StorageError::UnsupportedMagic(1), 43),
            (StorageError::MessageTooLarge { size: 10, max: 5 }, 10),
            (StorageError::OffsetOutOfRange { offset: 9, start: 0, end: 1 }, 1),
            (StorageError::SegmentDeleted { offset: 9 }, 1),
            (StorageError::OutOfOrderSequence { expected: 1, got: 3 }, 45),
            (StorageError::InvalidProducerEpoch { got: 1, current: 2 }, 47),
            (StorageError::UnknownLeaderEpoch { requested: 2, current: 1 }, 75),
            (StorageError::FencedLeaderEpoch { requested: 0, current: 1 }, 74),
            (StorageError::Closed, 6),
            (StorageError::OffsetMismatch { expected: 4, got: 7 }, 1),
            (StorageError::InvalidRecords(vec![]), 87),
            (StorageError::InvalidTimestamps(vec![]), 32),
            (StorageError::InvalidTxnState("unverified".into()), 48),
            (StorageError::CoordinatorFenced { got: 1, current: 2 }, 52),
        ];
        // Exhaustive: a new variant does not compile until it is listed here and in `storage`.
        let ordinal = |e: &StorageError| match e {
            StorageError::Io(_) => 0,
            StorageError::CorruptBatch(_) => 1,
            StorageError::UnsupportedMagic(_) => 2,
            StorageError::MessageTooLarge { .. } => 3,
            StorageError::OffsetOutOfRange { .. } => 4,
            StorageError::SegmentDeleted { .. } => 5,
            StorageError::OutOfOrderSequence { .. } => 6,
            StorageError::InvalidProducerEpoch { .. } => 7,
            StorageError::Closed => 8,
            StorageError::UnknownLeaderEpoch { .. } => 9,
            StorageError::FencedLeaderEpoch { .. } => 10,
            StorageError::OffsetMismatch { .. } => 11,
            StorageError::InvalidRecords(_) => 12,
            StorageError::InvalidTimestamps(_) => 13,
            StorageError::InvalidTxnState(_) => 14,
            StorageError::CoordinatorFenced { .. } => 15,
        };
        assert_eq!(storage.iter().map(|(e, _)| ordinal(e)).collect::<std::collections::BTreeSet<_>>().len(), 16);
        for (e, code) in &storage {
            assert_eq!(ErrorCode::from(e).code(), *code, "{e}");
        }
        let router = [
            (RouterError::SendFailed { shard: ShardId(1) }, 56),
            (RouterError::Unanswered { shard: ShardId(1) }, 56),
        ];
        let ordinal = |e: &RouterError| match e {
            RouterError::SendFailed { .. } => 0,
            RouterError::Unanswered { .. } => 1,
        };
        assert_eq!(router.iter().map(|(e, _)| ordinal(e)).collect::<std::collections::BTreeSet<_>>().len(), 2);
        for (e, code) in &router {
            assert_eq!(ErrorCode::from(e).code(), *code, "{e}");
        }
    }

    /// Every group error against Kafka's number for it (Errors.java).
    #[test]
    fn group_errors_map_to_kafka_codes() {
        let s = String::new;
        let cases: Vec<(GroupError, i16)> = vec![
            (GroupError::InvalidGroupId, 24),
            (GroupError::InvalidSessionTimeout { timeout_ms: 1, min_ms: 6000, max_ms: 1_800_000 }, 26),
            (GroupError::GroupDead { group: s() }, 15),
            (GroupError::InconsistentGroupProtocol { group: s() }, 23),
            (GroupError::FencedInstanceId { instance_id: s(), member_id: s() }, 82),
            (GroupError::UnknownMemberId { member_id: s() }, 25),
            (GroupError::MemberIdRequired { member_id: s() }, 79),
            (GroupError::IllegalGeneration { generation: 1, current: 2 }, 22),
            (GroupError::RebalanceInProgress { group: s() }, 27),
            (GroupError::OffsetMetadataTooLarge { size: 5000, max: 4096 }, 12),
            (GroupError::UnknownTopicOrPartition { topic: s(), partition: 0 }, 3),
            (GroupError::GroupIdNotFound { group: s() }, 69),
            (GroupError::NonEmptyGroup { group: s() }, 68),
            (GroupError::GroupSubscribedToTopic { topic: s() }, 86),
            (GroupError::FencedMemberEpoch { member_id: s(), epoch: 3 }, 110),
            (GroupError::StaleMemberEpoch { member_id: s(), epoch: 3, current: 4 }, 113),
            (GroupError::UnsupportedAssignor { assignor: s() }, 112),
            (GroupError::SubscriptionRequired, 42),
            (GroupError::NotCoordinator { partition: 0 }, 16),
            (GroupError::CoordinatorLoadInProgress { partition: 0 }, 14),
            // A failed write: Kafka 4's normalization of the log's code.
            (GroupError::StateWrite(ErrorCode::NOT_LEADER_OR_FOLLOWER), 16),
            (GroupError::StateWrite(ErrorCode::KAFKA_STORAGE_ERROR), 16),
            (GroupError::StateWrite(ErrorCode::NOT_ENOUGH_REPLICAS), 15),
            (GroupError::StateWrite(ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND), 15),
            (GroupError::StateWrite(ErrorCode::REQUEST_TIMED_OUT), 15),
            (GroupError::StateWrite(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), 15),
            (GroupError::StateWrite(ErrorCode::MESSAGE_TOO_LARGE), -1),
            (GroupError::StateWrite(ErrorCode::CORRUPT_MESSAGE), 2),
        ];
        // Exhaustive: a new variant does not compile until it is listed here and in `cases`.
        let ordinal = |e: &GroupError| match e {
            GroupError::InvalidGroupId => 0,
            GroupError::InvalidSessionTimeout { .. } => 1,
            GroupError::GroupDead { .. } => 2,
            GroupError::InconsistentGroupProtocol { .. } => 3,
            GroupError::FencedInstanceId { .. } => 4,
            GroupError::UnknownMemberId { .. } => 5,
            GroupError::MemberIdRequired { .. } => 6,
            GroupError::IllegalGeneration { .. } => 7,
            GroupError::RebalanceInProgress { .. } => 8,
            GroupError::OffsetMetadataTooLarge { .. } => 9,
            GroupError::UnknownTopicOrPartition { .. } => 10,
            GroupError::GroupIdNotFound { .. } => 11,
            GroupError::NonEmptyGroup { .. } => 12,
            GroupError::GroupSubscribedToTopic { .. } => 13,
            GroupError::FencedMemberEpoch { .. } => 14,
            GroupError::StaleMemberEpoch { .. } => 15,
            GroupError::UnsupportedAssignor { .. } => 16,
            GroupError::SubscriptionRequired => 17,
            GroupError::StateWrite(_) => 18,
            GroupError::NotCoordinator { .. } => 19,
            GroupError::CoordinatorLoadInProgress { .. } => 20,
        };
        let listed: std::collections::BTreeSet<i32> = cases.iter().map(|(e, _)| ordinal(e)).collect();
        assert_eq!(listed.len(), 21, "every variant has a case");
        for (err, kafka) in &cases {
            assert_eq!(ErrorCode::from(err).code(), *kafka, "{err:?}");
        }
    }

    #[test]
    fn metadata_errors_map_to_kafka_codes() {
        use crate::metadata::MetadataError as E;
        let name = || "t".to_string();
        let cases: Vec<(E, i16)> = vec![
            (E::InvalidTopic { name: name() }, 17),
            (E::TopicAlreadyExists { name: name() }, 36),
            (E::UnknownTopic { name: name() }, 3),
            (E::UnknownTopicId { id: uuid::Uuid::nil() }, 100),
            (E::InvalidPartitions { reason: name() }, 37),
            (E::InvalidReplicationFactor { factor: 3, brokers: 1 }, 38),
            (E::InvalidConfig { reason: name() }, 40),
            (E::InvalidReplicaAssignment { reason: name() }, 39),
            (E::InvalidRequest { reason: name() }, 42),
            (E::InvalidRecord { reason: name() }, -1),
            (E::NotController, 6),
            (E::ControllerUnavailable, -1),
            (E::Io(std::io::Error::other("disk")), 56),
            (E::LogFailed, 56),
            (E::Corrupt { path: "m".into(), reason: name() }, 56),
            (E::UnknownPartition { topic: name(), partition: 9 }, 3),
            (E::UnknownBroker { broker_id: 4 }, 102),
            (E::FencedLeaderEpoch { current: 2, requested: 1 }, 74),
            (E::NotLeader { broker_id: 2, leader: 1 }, 6),
            (E::InvalidUpdateVersion { current: 2, requested: 1 }, 95),
            (E::IneligibleReplica { broker_id: 3, reason: name() }, 107),
            (E::Remote { code: 36, message: name() }, 36),
            (E::ElectionNotNeeded { topic: name(), partition: 0 }, 84),
            (E::PreferredLeaderNotAvailable { topic: name(), partition: 0, preferred: 1 }, 80),
            (E::EligibleLeadersNotAvailable { topic: name(), partition: 0 }, 83),
            (E::NoReassignmentInProgress { topic: name(), partition: 0 }, 85),
        ];
        for (err, wire) in &cases {
            // The exhaustive match below fails to compile when a variant is added without a case here.
            match err {
                E::InvalidTopic { .. }
                | E::TopicAlreadyExists { .. }
                | E::UnknownTopic { .. }
                | E::UnknownTopicId { .. }
                | E::InvalidPartitions { .. }
                | E::InvalidReplicationFactor { .. }
                | E::InvalidConfig { .. }
                | E::InvalidReplicaAssignment { .. }
                | E::InvalidRequest { .. }
                | E::InvalidRecord { .. }
                | E::NotController
                | E::ControllerUnavailable
                | E::Io(_)
                | E::LogFailed
                | E::Corrupt { .. }
                | E::UnknownPartition { .. }
                | E::UnknownBroker { .. }
                | E::FencedLeaderEpoch { .. }
                | E::NotLeader { .. }
                | E::InvalidUpdateVersion { .. }
                | E::IneligibleReplica { .. }
                | E::ElectionNotNeeded { .. }
                | E::PreferredLeaderNotAvailable { .. }
                | E::EligibleLeadersNotAvailable { .. }
                | E::NoReassignmentInProgress { .. }
                | E::Remote { .. } => {}
            }
            assert_eq!(ErrorCode::from(err).code(), *wire, "{err:?}");
        }
        assert_eq!(cases.len(), 26, "one case per MetadataError variant");
    }

    /// Every replication (ISR) error, with the code a producer must see for it.
    #[test]
    fn replication_errors_map_to_kafka_codes() {
        let cases = [
            (AckError::NotEnoughReplicas { isr: 1, min_isr: 2 }, 19),
            (AckError::NotEnoughReplicasAfterAppend { required: 5, isr: 1, min_isr: 2 }, 20),
            (AckError::NotLeaderOrFollower, 6),
        ];
        // Exhaustive: a new variant does not compile until it is listed here and in `cases`.
        let ordinal = |e: &AckError| match e {
            AckError::NotEnoughReplicas { .. } => 0,
            AckError::NotEnoughReplicasAfterAppend { .. } => 1,
            AckError::NotLeaderOrFollower => 2,
        };
        assert_eq!(cases.iter().map(|(e, _)| ordinal(e)).collect::<std::collections::BTreeSet<_>>().len(), 3);
        for (e, code) in &cases {
            assert_eq!(ErrorCode::from(e).code(), *code, "{e}");
        }
    }

    /// Every inter-broker client error, with its code.
    #[test]
    fn client_errors_map_to_kafka_codes() {
        use kafka_protocol::messages::ApiKey;
        let cases = [
            (ClientError::Connect { broker_id: 1, addr: "h:1".into(), reason: "refused".into() }, 13),
            (ClientError::Closed { broker_id: 1, reason: "eof".into() }, 13),
            (ClientError::Timeout { broker_id: 1, api: ApiKey::Fetch, after: std::time::Duration::from_secs(1) }, 7),
            (ClientError::Codec { broker_id: 1, api: ApiKey::Fetch, version: 17, reason: "short".into() }, -1),
        ];
        // Exhaustive: a new variant does not compile until it is listed here.
        let ordinal = |e: &ClientError| match e {
            ClientError::Connect { .. } => 0,
            ClientError::Closed { .. } => 1,
            ClientError::Timeout { .. } => 2,
            ClientError::Codec { .. } => 3,
        };
        for (i, (err, code)) in cases.iter().enumerate() {
            assert_eq!(ordinal(err), i);
            assert_eq!(ErrorCode::from(err).code(), *code, "{err}");
        }
    }
}

// Transaction coordinator errors (txn) ---------------------------------------------------------
// The one mapping of the transaction coordinator's failures to Kafka codes.

impl From<&crate::txn::TxnError> for ErrorCode {
    fn from(err: &crate::txn::TxnError) -> Self {
        use crate::txn::TxnError;
        match err {
            // Kafka: an empty transactional id is an INVALID_REQUEST.
            TxnError::InvalidTransactionalId => ErrorCode::INVALID_REQUEST,
            TxnError::InvalidTransactionTimeout { .. } => ErrorCode::INVALID_TRANSACTION_TIMEOUT,
            TxnError::InvalidProducerIdMapping { .. } => ErrorCode::INVALID_PRODUCER_ID_MAPPING,
            TxnError::ProducerFenced { .. } => ErrorCode::PRODUCER_FENCED,
            TxnError::ConcurrentTransactions { .. } => ErrorCode::CONCURRENT_TRANSACTIONS,
            TxnError::InvalidTxnState { .. } => ErrorCode::INVALID_TXN_STATE,
            TxnError::TransactionalIdNotFound { .. } => ErrorCode::TRANSACTIONAL_ID_NOT_FOUND,
            TxnError::UnknownTopicOrPartition { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            TxnError::OperationNotAttempted => ErrorCode::OPERATION_NOT_ATTEMPTED,
            TxnError::NotCoordinator { .. } => ErrorCode::NOT_COORDINATOR,
            TxnError::CoordinatorLoadInProgress { .. } => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            TxnError::ProducerIdAllocation(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            // As Kafka's coordinator maps its log's append errors: the leader moved → find the
            // coordinator again; anything else → retry at the same coordinator.
            TxnError::StateWrite(code) => {
                if *code == ErrorCode::NOT_LEADER_OR_FOLLOWER || *code == ErrorCode::KAFKA_STORAGE_ERROR {
                    ErrorCode::NOT_COORDINATOR
                } else {
                    ErrorCode::COORDINATOR_NOT_AVAILABLE
                }
            }
        }
    }
}

#[cfg(test)]
mod txn_tests {
    use crate::codes::ErrorCode;
    use crate::txn::TxnError;

    /// Every transaction coordinator error, with the code a Kafka client must see for it.
    #[test]
    fn txn_errors_map_to_kafka_codes() {
        let cases = [
            (TxnError::InvalidTransactionalId, 42),
            (TxnError::InvalidTransactionTimeout { timeout_ms: 0, max_ms: 900_000 }, 50),
            (TxnError::InvalidProducerIdMapping { transactional_id: "t".into(), producer_id: 1 }, 49),
            (TxnError::ProducerFenced { epoch: 1, current: 2 }, 90),
            (TxnError::ConcurrentTransactions { transactional_id: "t".into() }, 51),
            (TxnError::InvalidTxnState { operation: "commit", state: "Empty" }, 48),
            (TxnError::TransactionalIdNotFound { transactional_id: "t".into() }, 105),
            (TxnError::UnknownTopicOrPartition { topic: "t".into(), partition: 0 }, 3),
            (TxnError::OperationNotAttempted, 55),
            (TxnError::NotCoordinator { partition: 1 }, 16),
            (TxnError::CoordinatorLoadInProgress { partition: 1 }, 14),
            (TxnError::ProducerIdAllocation(ErrorCode::NOT_CONTROLLER), 15),
            (TxnError::StateWrite(ErrorCode::NOT_ENOUGH_REPLICAS), 15),
            (TxnError::StateWrite(ErrorCode::NOT_LEADER_OR_FOLLOWER), 16),
        ];
        // Exhaustive: a new variant does not compile until it is listed here.
        let ordinal = |e: &TxnError| match e {
            TxnError::InvalidTransactionalId => 0,
            TxnError::InvalidTransactionTimeout { .. } => 1,
            TxnError::InvalidProducerIdMapping { .. } => 2,
            TxnError::ProducerFenced { .. } => 3,
            TxnError::ConcurrentTransactions { .. } => 4,
            TxnError::InvalidTxnState { .. } => 5,
            TxnError::TransactionalIdNotFound { .. } => 6,
            TxnError::UnknownTopicOrPartition { .. } => 7,
            TxnError::OperationNotAttempted => 8,
            TxnError::NotCoordinator { .. } => 9,
            TxnError::CoordinatorLoadInProgress { .. } => 10,
            TxnError::ProducerIdAllocation(_) => 11,
            TxnError::StateWrite(_) => 12,
        };
        assert_eq!(cases.iter().map(|(e, _)| ordinal(e)).collect::<std::collections::BTreeSet<_>>().len(), 13);
        for (e, code) in &cases {
            assert_eq!(ErrorCode::from(e).code(), *code, "{e}");
        }
    }
}

// Dynamic broker config errors (config::dynamic) ---------------------------------------------------
// Issue 18, KIP-226: what Kafka 4.4 answers an AlterConfigs or IncrementalAlterConfigs of a BROKER
// resource. Kafka's broker checks the change before it forwards it (`ConfigAdminManager`), and
// answers a non-dynamic key or a bad value with INVALID_REQUEST (its `ConfigException` there),
// but APPEND/SUBTRACT on a non-list key with INVALID_CONFIG (checked by the controller).

impl From<&crate::config::dynamic::DynamicConfigError> for ErrorCode {
    fn from(err: &crate::config::dynamic::DynamicConfigError) -> Self {
        use crate::config::dynamic::DynamicConfigError;
        match err {
            DynamicConfigError::NotDynamic { .. } => ErrorCode::INVALID_REQUEST,
            DynamicConfigError::InvalidValue { .. } => ErrorCode::INVALID_REQUEST,
            DynamicConfigError::NotAList { .. } => ErrorCode::INVALID_CONFIG,
            DynamicConfigError::WrongBroker { .. } => ErrorCode::INVALID_REQUEST,
        }
    }
}

#[cfg(test)]
mod dynamic_config_tests {
    use crate::codes::ErrorCode;
    use crate::config::dynamic::DynamicConfigError;

    /// Every dynamic broker config error, with the code Kafka 4.4 answers (checked against it).
    #[test]
    fn dynamic_config_errors_map_to_kafka_codes() {
        let cases = [
            (DynamicConfigError::NotDynamic { key: "num.partitions".into() }, 42),
            (DynamicConfigError::InvalidValue { key: "log.retention.ms".into(), reason: "x".into() }, 42),
            (DynamicConfigError::NotAList { key: "log.retention.ms".into(), op: "append" }, 40),
            (DynamicConfigError::WrongBroker { reason: "x".into() }, 42),
        ];
        for (err, code) in cases {
            assert_eq!(ErrorCode::from(&err).code(), code, "{err:?}");
        }
    }
}
