//! The fetcher's decisions as pure functions of offsets and epochs, so they are tested without
//! a network or a disk: where KIP-101/KIP-279 truncation stops, what an out-of-range fetch
//! does, and which fetched bytes are whole batches to append.

use bytes::Bytes;

use crate::storage::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};

/// Kafka's `UNDEFINED_EPOCH_OFFSET`: the leader knows no end for the epoch asked about.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;

/// Where one round of truncation leaves the follower (Kafka's `OffsetTruncationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncationPoint {
    /// Truncate the log to this offset when it is below the log end.
    pub offset: i64,
    /// Whether truncation is done; if not, ask the leader again for the (now lower) latest epoch.
    pub complete: bool,
}

/// One round of KIP-279 truncation, as Kafka's `AbstractFetcherThread.getOffsetTruncationState`:
/// the leader answered (`leader_epoch`, `leader_end_offset`) for the follower's latest epoch;
/// `follower_end` is the follower's own `end_offset_for_epoch(leader_epoch)` (the largest local
/// epoch at or below it, and where that epoch ends).
pub fn truncation_point(
    log_end: i64,
    high_watermark: i64,
    leader_epoch: i32,
    leader_end_offset: i64,
    follower_end: Option<(i32, i64)>,
) -> TruncationPoint {
    // The leader knows nothing of that epoch: keep what is known committed.
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET {
        return TruncationPoint { offset: high_watermark.min(log_end), complete: true };
    }
    if leader_epoch == UNDEFINED_EPOCH {
        return TruncationPoint { offset: leader_end_offset.min(log_end), complete: true };
    }
    match follower_end {
        // The follower never had the leader's epoch: cut to where its own earlier epoch ends
        // and ask again with that epoch.
        Some((follower_epoch, follower_end)) if follower_epoch != leader_epoch => {
            TruncationPoint { offset: follower_end.min(log_end), complete: false }
        }
        Some((_, follower_end)) => TruncationPoint { offset: follower_end.min(leader_end_offset).min(log_end), complete: true },
        // The follower has no epoch at or below the leader's: the leader's end is safe.
        None => TruncationPoint { offset: leader_end_offset.min(log_end), complete: true },
    }
}

/// What a follower does when the leader says its fetch offset is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRangeAction {
    /// The leader's log ends below ours (an unclean election): cut our log there.
    TruncateTo(i64),
    /// Our log ends before the leader's log start: drop it all and start at the leader's start.
    ResetTo(i64),
    /// Our end is within the leader's log by now: fetch again.
    Retry,
}

/// Kafka's `fetchOffsetAndTruncate`: compare our log end with the leader's log start and end.
pub fn out_of_range_action(log_end: i64, leader_start: i64, leader_end: i64) -> OutOfRangeAction {
    if leader_end < log_end {
        OutOfRangeAction::TruncateTo(leader_end)
    } else if log_end < leader_start {
        OutOfRangeAction::ResetTo(leader_start)
    } else {
        OutOfRangeAction::Retry
    }
}

/// The whole batches of a fetched records region that start at `fetch_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBatches {
    /// The bytes to append (whole batches, contiguous from `fetch_offset`).
    pub records: Bytes,
    /// Batches in `records`.
    pub count: usize,
    /// The offset after the last record in `records` (`fetch_offset` when empty).
    pub next_offset: i64,
}

/// A fetched region that cannot be appended as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetched records at {fetch_offset}: {reason}")]
pub struct BadFetch {
    /// The offset fetched from.
    pub fetch_offset: i64,
    /// What is wrong.
    pub reason: String,
}

/// Cuts `records` to whole batches that continue the log at `fetch_offset`: batches wholly
/// below it are skipped (a leader may answer from the batch that holds the offset), a partial
/// batch at the end is dropped (a size-limited answer may cut one), a gap forward is taken (a
/// cleaned leader's log has holes, and Kafka's followers take them), and a batch that starts
/// below where the last one ended is an error.
pub fn whole_batches(records: &Bytes, fetch_offset: i64) -> Result<FetchedBatches, BadFetch> {
    let bad = |reason: String| BadFetch { fetch_offset, reason };
    let (mut pos, mut start, mut count, mut next) = (0usize, None, 0usize, fetch_offset);
    while records.len() - pos >= HEADER_LEN {
        let Some(header) = BatchHeader::parse(&records[pos..]) else { break };
        if header.magic != 2 || header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || header.last_offset_delta < 0 {
            return Err(bad(format!("batch at byte {pos} has magic {} and length {}", header.magic, header.batch_length)));
        }
        let end = pos + header.total_len();
        if end > records.len() {
            break;
        }
        if header.last_offset() < next && start.is_none() {
            pos = end;
            continue;
        }
        if header.base_offset < next {
            return Err(bad(format!("batch at offset {} where {next} or later was expected", header.base_offset)));
        }
        start.get_or_insert(pos);
        count += 1;
        next = header.last_offset() + 1;
        pos = end;
    }
    let records = match start {
        Some(start) => records.slice(start..pos),
        None => Bytes::new(),
    };
    Ok(FetchedBatches { records, count, next_offset: next })
}

/// Doubling delays between `min` and `max` for retries after connection errors.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: std::time::Duration,
    max: std::time::Duration,
    next: std::time::Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: std::time::Duration, max: std::time::Duration) -> Backoff {
        Backoff { min, max, next: min }
    }

    /// The delay to wait now; the next one doubles, up to `max`.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
