//! Small newtypes that keep distinct numbers apart.

use std::fmt;

/// Index of a shard (one pinned executor per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ShardId(pub usize);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A byte position inside a segment's `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilePos(pub u64);

/// A topic name and partition index: the key of every partition-scoped operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index inside the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a key from its parts.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// The partition's directory name, as Kafka lays it out: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A transaction marker for one partition, as WriteTxnMarkers carries it: it ends one producer's
/// transaction there, as a control batch in the partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// The producer whose transaction ends.
    pub producer_id: i64,
    /// The producer's epoch the coordinator ends it with (older epochs are fenced).
    pub producer_epoch: i16,
    /// The epoch of the `__transaction_state` partition's leader that wrote it (zombie coordinators are refused).
    pub coordinator_epoch: i32,
    /// Commit (true) or abort (false).
    pub commit: bool,
}
