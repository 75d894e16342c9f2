//! Kafka error codes, and the one place where subsystem errors become them.

use crate::codes::ErrorCode;
use crate::metadata::MetadataError;
use crate::storage::StorageError;

/// Kafka's numeric error codes that Ringlog returns (names as in Kafka's `Errors` enum).
#[allow(missing_docs)]
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_FETCH_SIZE: i16 = 4;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_CONFIG: i16 = 40;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 76;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INVALID_RECORD: i16 = 87;
}

/// Maps a storage error onto the Kafka error code a client acts on.
pub fn storage_error_code(err: &StorageError) -> i16 {
    match err {
        StorageError::Io(_) => code::KAFKA_STORAGE_ERROR,
        StorageError::CorruptBatch(_) => code::CORRUPT_MESSAGE,
        StorageError::UnsupportedMagic(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        StorageError::MessageTooLarge { .. } => code::MESSAGE_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } | StorageError::SegmentDeleted { .. } => code::OFFSET_OUT_OF_RANGE,
        StorageError::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        StorageError::InvalidProducerEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
        StorageError::Closed => code::NOT_LEADER_OR_FOLLOWER,
    }
}

// ---- metadata: MetadataError -> ErrorCode ------------------------------------------------------

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
            MetadataError::InvalidRecord { .. } | MetadataError::ControllerUnavailable => ErrorCode::UNKNOWN_SERVER_ERROR,
            MetadataError::NotController => ErrorCode::NOT_LEADER_OR_FOLLOWER,
            MetadataError::Io(_) | MetadataError::LogFailed | MetadataError::Corrupt { .. } => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

// ---- end of metadata --------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        assert_eq!(storage_error_code(&StorageError::CorruptBatch("crc".into())), 2);
        assert_eq!(storage_error_code(&StorageError::MessageTooLarge { size: 10, max: 5 }), 10);
        assert_eq!(storage_error_code(&StorageError::OffsetOutOfRange { offset: 9, start: 0, end: 1 }), 1);
        assert_eq!(storage_error_code(&StorageError::SegmentDeleted { offset: 9 }), 1);
        assert_eq!(storage_error_code(&StorageError::OutOfOrderSequence { expected: 1, got: 3 }), 45);
        assert_eq!(storage_error_code(&StorageError::UnsupportedMagic(1)), 43);
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
            (E::InvalidRecord { reason: name() }, -1),
            (E::NotController, 6),
            (E::ControllerUnavailable, -1),
            (E::Io(std::io::Error::other("disk")), 56),
            (E::LogFailed, 56),
            (E::Corrupt { path: "m".into(), reason: name() }, 56),
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
                | E::InvalidRecord { .. }
                | E::NotController
                | E::ControllerUnavailable
                | E::Io(_)
                | E::LogFailed
                | E::Corrupt { .. } => {}
            }
            assert_eq!(ErrorCode::from(err).code(), *wire, "{err:?}");
        }
        assert_eq!(cases.len(), 13, "one case per MetadataError variant");
    }
}
