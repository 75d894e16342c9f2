//! Storage: Kafka's on-disk log format, written with direct I/O on the owner shard.
//!
//! A reader's path: [`batch`] (the record batch format) → [`segment`] (one `.log` file and its
//! sparse indexes) → [`log`] (a partition's segments: its state and open in `log/mod.rs`, then
//! `append`, `flush` (the group-commit flusher and syncer), `recovery`, `read` and `retention`)
//! → [`journal`] (appended batches in shared memory until written) → [`reader`] (zero-copy reads
//! on the connection's shard) → [`cache`] (the shard's hot batch cache) → [`producers`]
//! (idempotent and transactional producer state) → [`txn`] (transaction markers, `.txnindex`).
//! [`cleaner`] compacts logs (`log/compact.rs` is its per-log part); [`compression`] holds the
//! record codecs.

pub mod batch;
pub mod cache;
pub mod cleaner;
pub mod compression;
pub mod journal;
pub mod log;
pub mod producers;
pub mod reader;
pub mod segment;
pub mod txn;
pub mod validate;
pub mod volume;

pub use self::log::{AppendOutcome, CleanOutcome, Cleanable, LogOffsets, PartitionLog, ReadOutcome, ShardLogContext, SyncRounds};

/// Errors of the storage subsystem. `crate::error` maps each to a Kafka code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The disk failed us.
    #[error("i/o error: {0}")]
    Io(String),
    /// A batch failed its length or CRC check.
    #[error("corrupt batch: {0}")]
    CorruptBatch(String),
    /// A batch used a magic other than 2.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// A batch is larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge {
        /// Batch size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A read asked for an offset outside the log.
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// High watermark.
        end: i64,
    },
    /// An idempotent producer skipped or repeated sequence numbers.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// Next expected sequence.
        expected: i32,
        /// Sequence received.
        got: i32,
    },
    /// An idempotent producer used an older epoch than the log has seen.
    #[error("producer epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        /// Epoch received.
        got: i16,
        /// Current epoch.
        current: i16,
    },
    /// The client knows a newer leader epoch than this replica (KIP-320).
    #[error("leader epoch {requested} is newer than this replica's {current}")]
    UnknownLeaderEpoch {
        /// The epoch the client sent.
        requested: i32,
        /// This replica's epoch.
        current: i32,
    },
    /// The client's leader epoch is older than this replica's: its metadata is stale (KIP-320).
    #[error("leader epoch {requested} is older than this replica's {current}")]
    FencedLeaderEpoch {
        /// The epoch the client sent.
        requested: i32,
        /// This replica's epoch.
        current: i32,
    },
    /// Records refused by the produce-side checks ([`validate`]): a keyless record on a
    /// compacted topic (Kafka's `InvalidRecordException` with KIP-467 record errors).
    #[error("One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        .0.len(), .0.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    InvalidRecords(Vec<validate::RecordError>),
    /// Records refused for a timestamp outside `message.timestamp.{before,after}.max.ms`
    /// (Kafka's `InvalidTimestampException`; the record errors may name keyless records too).
    #[error("One or more records have been rejected due to invalid timestamp")]
    InvalidTimestamps(Vec<validate::RecordError>),
    /// A transactional write that does not fit the producer's transaction state here: not
    /// verified with the coordinator (KIP-890), or a plain batch inside an open transaction.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from an older coordinator than the last one seen.
    #[error("coordinator epoch {got} is older than {current}")]
    CoordinatorFenced {
        /// Epoch received.
        got: i32,
        /// The newest seen.
        current: i32,
    },
    /// The partition was deleted or failed.
    #[error("partition is closed")]
    Closed,
    /// A follower's fetched batches do not start at its log end, or leave a gap between them
    /// (Kafka's `UnexpectedAppendOffsetException` / `OffsetsOutOfOrderException`).
    #[error("follower append expected offset {expected}, got a batch at {got}")]
    OffsetMismatch {
        /// The offset the next batch must start at.
        expected: i64,
        /// Where the batch started.
        got: i64,
    },
    /// Retention deleted the segment between the owner locating a fetch and this shard reading
    /// it: the offset is below the log start now.
    #[error("the segment holding offset {offset} was deleted by retention")]
    SegmentDeleted {
        /// The offset the fetch wanted.
        offset: i64,
    },
}

impl StorageError {
    /// The refused records a produce response lists (KIP-467's `record_errors`); empty for an
    /// error about the whole batch.
    pub fn record_errors(&self) -> &[validate::RecordError] {
        match self {
            StorageError::InvalidRecords(errors) | StorageError::InvalidTimestamps(errors) => errors,
            _ => &[],
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        StorageError::Io(e.to_string())
    }
}

/// Works around a glommio 0.9 bug: the first DMA file a thread opens on a disk decides whether
/// polled I/O is used, and an empty file makes it guess wrong (later reads fail with errno 95).
/// Each shard opens this non-empty file first.
pub async fn prime_dma_probe(data_dir: &std::path::Path) -> Result<(), StorageError> {
    let path = data_dir.join(".dma-probe");
    let needs_write = std::fs::metadata(&path).map(|m| m.len() < 4096).unwrap_or(true);
    if needs_write {
        std::fs::write(&path, vec![0u8; 4096])?;
    }
    let file = glommio::io::DmaFile::open(&path).await?;
    let _ = file.read_at(0, 512).await?;
    file.close().await?;
    Ok(())
}

/// Test helpers for code that needs a glommio executor and a data directory.
#[cfg(test)]
pub mod testing {
    use std::path::PathBuf;

    /// Runs `f` on a fresh executor (primed for direct I/O) with an empty directory it may use.
    pub fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce(PathBuf) -> F + Send + 'static) {
        let dir = std::env::temp_dir().join(format!("ringlog-storage-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .io_memory(512 * 1024)
            .spawn(move || async move {
                crate::storage::prime_dma_probe(&d).await.unwrap();
                f(d).await
            })
            .unwrap()
            .join()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
