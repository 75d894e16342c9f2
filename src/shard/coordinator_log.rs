//! What the group and transaction coordinators share about their internal topics
//! (`__consumer_offsets`, `__transaction_state`): the acks=all append of their own records, and
//! a partition's load (wait until the high watermark covers the log, replay it, then serve).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Shard;
use crate::codes::ErrorCode;
use crate::storage::batch::{BatchHeader, BatchProducer};
use crate::storage::{AppendOutcome, PartitionLog, StorageError};
use crate::types::TopicPartition;

/// How often a new leader's load looks whether its high watermark has caught up.
const HIGH_WATERMARK_POLL: Duration = Duration::from_millis(10);

/// The largest read of one replay step.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// No producer: a coordinator's own records.
pub(super) const NO_PRODUCER: BatchProducer = BatchProducer { id: -1, epoch: -1, base_sequence: -1, transactional: false };

/// One internal partition's load, as its coordinator runs it.
pub(super) trait CoordinatorLoad {
    /// What is loaded, for log lines ("groups", "transactions").
    const WHAT: &'static str;
    /// Whether this load is still the partition's current one (the leadership has not moved).
    fn is_current(&self) -> bool;
    /// Applies one stored batch; answers the records applied.
    fn replay_batch(&self, header: &BatchHeader, batch: &[u8]) -> usize;
    /// Serves the partition; false when the load was overtaken meanwhile.
    fn finish(&self) -> bool;
    /// Drops what was loaded after a failure (the partition is not served).
    fn abandon(&self);
}

impl Shard {
    /// Appends `records` as one batch of `producer` to internal partition `tp` as its leader,
    /// with acks=all: answered once the ISR holds them (or after `timeout`, with its code).
    pub(super) async fn append_internal(
        &self,
        tp: &TopicPartition,
        records: &[(Bytes, Option<Bytes>)],
        producer: &BatchProducer,
        timeout: Duration,
    ) -> Result<(), ErrorCode> {
        // Only the leader writes; a follower's copy comes from its fetcher.
        let log = self.led_log(tp)?;
        let refs: Vec<crate::storage::batch::RecordRef<'_>> = records.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = crate::storage::batch::build_for(&refs, crate::types::now_ms(), producer);
        let outcome = log.append(&batch, -1).map_err(|e| ErrorCode::from(&e))?;
        // Registered before any await: the log end is this append's end.
        let replicated = self.ack_after_replication(tp, log.offsets().log_end);
        AppendOutcome::written(outcome.done).await.map_err(|e| ErrorCode::from(&e))?;
        match replicated {
            Some(ack) => self.replicated(tp, ack, timeout).await.map_err(|(code, _)| code),
            None => Ok(()),
        }
    }
}

/// Single node (start-up): replays `log` up to its high watermark, then serves it.
pub(super) async fn load_at_start<L: CoordinatorLoad>(log: &PartitionLog, load: &L) -> Result<(), StorageError> {
    let replayed = replay_partition(log, log.offsets().high_watermark, load).await?.unwrap_or(0);
    load.finish();
    if replayed > 0 {
        tracing::info!(partition = %log.tp, records = replayed, what = L::WHAT, "coordinator state replayed");
    }
    Ok(())
}

/// A new leader's load: waits until its high watermark covers its log as it was when the
/// leadership came (so whatever an earlier leader acknowledged is committed here too), replays
/// up to it, then serves. Gives up as soon as the leadership goes.
pub(super) async fn load_led_partition<L: CoordinatorLoad>(log: Rc<PartitionLog>, load: L) {
    let started = Instant::now();
    let target = log.offsets().log_end;
    while log.offsets().high_watermark < target {
        if !load.is_current() {
            tracing::info!(partition = %log.tp, what = L::WHAT, "coordinator load abandoned: leadership moved");
            return;
        }
        glommio::timer::sleep(HIGH_WATERMARK_POLL).await;
    }
    // No coordinator write happens while loading: the high watermark now is the log's end.
    let until = log.offsets().high_watermark;
    match replay_partition(&log, until, &load).await {
        Ok(Some(records)) if load.finish() => {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::info!(partition = %log.tp, records, until, elapsed_ms, what = L::WHAT, "coordinator loaded");
        }
        Ok(_) => tracing::info!(partition = %log.tp, what = L::WHAT, "coordinator load abandoned: leadership moved"),
        Err(e) => {
            tracing::error!(partition = %log.tp, error = %e, what = L::WHAT, "coordinator load failed; the partition is not served");
            if load.is_current() {
                load.abandon();
            }
        }
    }
}

/// Replays `log` from its start up to `until` into `load`: the records replayed, or `None` when
/// the load was overtaken (the rest is not applied).
async fn replay_partition<L: CoordinatorLoad>(log: &PartitionLog, until: i64, load: &L) -> Result<Option<usize>, StorageError> {
    let mut offset = log.offsets().log_start;
    let mut replayed = 0usize;
    while offset < until {
        let read = log.read(offset, REPLAY_READ_BYTES).await?;
        // The read awaited: the leadership may have moved, and these records are not ours then.
        if !load.is_current() {
            return Ok(None);
        }
        let Some(last) = read.records.last().and_then(|b| BatchHeader::parse(b)) else { break };
        for batch in &read.records {
            if let Some(header) = BatchHeader::parse(batch) {
                replayed += load.replay_batch(&header, batch);
            }
        }
        offset = last.last_offset() + 1;
    }
    Ok(Some(replayed))
}
