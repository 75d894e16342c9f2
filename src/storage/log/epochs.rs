//! The leader epoch cache: where each leader epoch starts in the log, kept in Kafka's
//! `leader-epoch-checkpoint` file. OffsetForLeaderEpoch reads it, and follower truncation will.

use std::path::Path;

use super::PartitionLog;
use crate::storage::StorageError;

/// The checkpoint's file name and format version, as Kafka has them.
const CHECKPOINT: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: &str = "0";

/// (epoch, start offset) pairs, ascending in both. The last is the current epoch. Empty only
/// when a follower's truncation removed every entry (Kafka's cache may be empty too).
pub(super) struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Loads `dir`'s checkpoint and fits it to a log that ends at `log_end`: entries past the
    /// end (cut off by recovery) are dropped, and `epoch` starts at the log end when it is newer
    /// than the checkpoint's last. Without a checkpoint, `epoch` covers the whole log. The file
    /// is rewritten when it changed.
    ///
    /// A negative `epoch` (a cluster replica whose role is not known yet) assigns nothing: a
    /// follower learns its epochs from the leader's batches, and only a leader starts one
    /// (`set_leader_epoch`). An entry made up here would make KIP-101 truncation keep a
    /// divergent tail.
    pub(super) fn open(dir: &Path, epoch: i32, log_end: i64) -> Result<Self, StorageError> {
        let read = read_checkpoint(&dir.join(CHECKPOINT));
        let mut changed = read.is_none() && epoch >= 0;
        let mut entries = read.unwrap_or_default();
        let before = entries.len();
        entries.retain(|&(_, start)| start <= log_end);
        changed |= entries.len() != before;
        if entries.is_empty() && epoch >= 0 {
            entries.push((epoch, 0));
        }
        let mut cache = EpochCache { entries };
        if epoch >= 0 {
            changed |= cache.assign(epoch, log_end);
        }
        if changed {
            cache.write(dir)?;
        }
        Ok(cache)
    }

    /// The current leader epoch; -1 (Kafka's undefined epoch) when no epoch is known.
    pub(super) fn latest(&self) -> i32 {
        self.entries.last().map_or(-1, |&(epoch, _)| epoch)
    }

    /// Records the epoch of a batch a follower appends at `start`, as Kafka's
    /// `LeaderEpochFileCache.assign` does: needed when the epoch differs from the latest or
    /// starts before it, and then every entry at or after `epoch` or `start` goes first. So an
    /// epoch recorded ahead of its batches (an older leader's batches still arriving) is
    /// corrected by the batches themselves. Returns whether the cache changed.
    pub(super) fn assign_from_batch(&mut self, epoch: i32, start: i64) -> bool {
        if epoch < 0 || self.entries.last().is_some_and(|&(e, s)| e == epoch && s <= start) {
            return false;
        }
        self.entries.retain(|&(e, s)| e < epoch && s < start);
        self.entries.push((epoch, start));
        true
    }

    /// Removes the epochs that start at or after `end` (Kafka's `truncateFromEnd`): a
    /// truncation cut their batches. Returns whether any went.
    pub(super) fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        self.entries.len() != before
    }

    /// Records that `epoch` starts at `start`, when it is newer than the current one; returns
    /// whether it was. An epoch that had no batch (it starts at or past `start`) is replaced.
    pub(super) fn assign(&mut self, epoch: i32, start: i64) -> bool {
        if epoch <= self.latest() {
            return false;
        }
        while self.entries.last().is_some_and(|&(_, s)| s >= start) {
            self.entries.pop();
        }
        self.entries.push((epoch, start));
        true
    }

    /// The epoch of the batch holding `offset`: the last epoch that starts at or before it;
    /// `None` before the first known epoch.
    pub(super) fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|&&(_, start)| start <= offset).map(|&(epoch, _)| epoch)
    }

    /// OffsetForLeaderEpoch: (the largest epoch at or below `requested`, the start of the epoch
    /// after it), or (the current epoch, `current_end`) when `requested` is the current epoch;
    /// `None` past it. An undefined (negative) epoch asks about epoch 0, as it did before epochs
    /// could change.
    pub(super) fn end_offset_for(&self, requested: i32, current_end: i64) -> Option<(i32, i64)> {
        let requested = requested.max(0);
        let latest = self.latest();
        if requested > latest {
            return None;
        }
        if requested == latest {
            return Some((latest, current_end));
        }
        let next = self.entries.iter().position(|&(epoch, _)| epoch > requested)?;
        let end = self.entries[next].1;
        Some(match next.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, end),
            // Older than any epoch this log knows: it ended where the first known one starts.
            None => (requested, end),
        })
    }

    /// Rewrites the checkpoint (a new file renamed over the old, so a crash leaves one whole).
    pub(super) fn write(&self, dir: &Path) -> Result<(), StorageError> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let tmp = dir.join(format!("{CHECKPOINT}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT))?;
        Ok(())
    }
}

impl PartitionLog {
    /// The partition's leader epoch: appended batches are stamped with it.
    pub fn leader_epoch(&self) -> i32 {
        self.state.borrow().epochs.latest()
    }

    /// The leader epoch of the batch holding `offset` (ListOffsets answers it), or -1.
    pub fn epoch_at(&self, offset: i64) -> i32 {
        if offset < 0 {
            return -1;
        }
        self.state.borrow().epochs.epoch_at(offset).unwrap_or(-1)
    }

    /// Checks the leader epoch a client sent with a request (KIP-320): -1 asks for no check; an
    /// older one is fenced, a newer one unknown to this replica.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), StorageError> {
        let current = self.leader_epoch();
        match requested {
            -1 => Ok(()),
            r if r < current => Err(StorageError::FencedLeaderEpoch { requested, current }),
            r if r > current => Err(StorageError::UnknownLeaderEpoch { requested, current }),
            _ => Ok(()),
        }
    }

    /// Makes `epoch` the leader epoch from the log end on: later appends are stamped with it, and
    /// the epoch cache, with its `leader-epoch-checkpoint` file, records where it starts. An
    /// epoch at or below the current one changes nothing. Fails only when the file cannot be
    /// written; the epoch is in force all the same.
    pub fn set_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let mut st = self.state.borrow_mut();
        let (current, start) = (st.epochs.latest(), st.log_end);
        if !st.epochs.assign(epoch, start) {
            if epoch < current {
                tracing::warn!(partition = %self.tp, leader_epoch = epoch, current_epoch = current, "older leader epoch ignored");
            }
            return Ok(());
        }
        tracing::info!(partition = %self.tp, leader_epoch = epoch, start_offset = start, "leader epoch changed");
        st.epochs.write(&self.dir)
    }
}

/// The checkpoint's entries, or `None` when it is missing or does not parse.
fn read_checkpoint(path: &Path) -> Option<Vec<(i32, i64)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<(i32, i64)> = lines
        .map(|line| {
            let (epoch, start) = line.trim().split_once(' ')?;
            Some((epoch.parse().ok()?, start.parse().ok()?))
        })
        .collect::<Option<_>>()?;
    let ascending = entries.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    (entries.len() == count && ascending).then_some(entries)
}
