//! Compaction of one partition log: what is cleanable now ([`PartitionLog::cleanable`]) and one
//! cleaning pass ([`PartitionLog::clean`]). The pieces (offset map, batch rewrite, chunked I/O,
//! swap) are in `storage::cleaner`; this file holds what needs the log's state.

use std::path::PathBuf;
use std::rc::Rc;

use glommio::io::DmaFile;

use super::{PartitionLog, open_dma};
use crate::storage::StorageError;
use crate::storage::batch::BatchHeader;
use crate::storage::cleaner::offset_map::OffsetMap;
use crate::storage::cleaner::rewrite::{RetainRules, Rewritten, read_records, rewrite_batch};
use crate::storage::cleaner::segment_io::{BatchReader, CleanedWriter, Throttle};
use crate::storage::cleaner::swap;
use crate::storage::cleaner::txns::{CleanedTxns, LastOfProducers, TxnVerdict};
use crate::storage::segment::Segment;
use crate::storage::txn::AbortedTxn;

/// What a log offers the cleaner now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Where the dirty section starts: the checkpoint's offset, at least the log start.
    pub first_dirty: i64,
    /// Where it ends: nothing at or past this is cleaned (a segment base).
    pub first_uncleanable: i64,
    /// Bytes of the segments below the dirty section.
    pub clean_bytes: u64,
    /// Bytes of the segments in the dirty section.
    pub dirty_bytes: u64,
    /// `dirty / (clean + dirty)`.
    pub dirty_ratio: f64,
    /// Whether the log must be cleaned now whatever its ratio: a dirty record is older than
    /// `max.compaction.lag.ms`.
    pub max_lag_passed: bool,
    /// The topic's `min.cleanable.dirty.ratio`.
    pub min_ratio: f64,
}

impl Cleanable {
    /// Whether the cleaner should clean the log now (Kafka: ratio reached, or max lag passed),
    /// or `horizon_due` (a kept tombstone's delete horizon has passed).
    pub fn is_due(&self, horizon_due: bool) -> bool {
        let has_dirty = self.dirty_bytes > 0 && self.first_dirty < self.first_uncleanable;
        (has_dirty && (self.dirty_ratio >= self.min_ratio || self.max_lag_passed)) || (horizon_due && self.clean_bytes + self.dirty_bytes > 0)
    }
}

/// What one cleaning pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CleanOutcome {
    /// The next first dirty offset (the cleaner checkpoint's new value).
    pub end: i64,
    /// Bytes of the segments rewritten, before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Records removed.
    pub records_removed: usize,
    /// The earliest delete horizon of the tombstones kept: the log is due again then.
    pub next_horizon: Option<i64>,
    /// Groups whose swap was abandoned because the log changed under the pass (retention,
    /// truncation, deletion).
    pub abandoned: usize,
}

/// What the pass remembers of a segment it reads.
struct SegmentInfo {
    base: i64,
    id: u64,
    size: u64,
    last_offset: i64,
    created_ms: i64,
    file: Rc<DmaFile>,
    path: PathBuf,
}

impl PartitionLog {
    /// Whether the topic is compacted (`cleanup.policy` includes `compact`).
    pub fn is_compacted(&self) -> bool {
        self.config.borrow().compacted
    }

    /// What is cleanable now, given the cleaner's first dirty offset (`None` when the log is
    /// not compacted or has only its active segment).
    pub fn cleanable(&self, first_dirty: i64, now: i64) -> Option<Cleanable> {
        let cfg = self.config.borrow();
        if !cfg.compacted {
            return None;
        }
        let st = self.state.borrow();
        let active = *st.segments.keys().next_back()?;
        let first_dirty = first_dirty.max(st.log_start_offset);
        let mut first_uncleanable = active;
        // Nothing at or above the last stable offset: an open transaction may yet abort.
        let stable = st.producers.last_stable_offset(st.high_watermark);
        if let Some((&holding_hw, _)) = st.segments.range(..=stable).next_back() {
            first_uncleanable = first_uncleanable.min(holding_hw);
        }
        let dirty = |s: &&Segment| s.last_offset >= first_dirty;
        if cfg.min_compaction_lag_ms > 0 {
            let young = st.segments.values().filter(dirty).find(|s| s.max_timestamp > now.saturating_sub(cfg.min_compaction_lag_ms));
            if let Some(s) = young {
                first_uncleanable = first_uncleanable.min(s.base_offset);
            }
        }
        let below = st.segments.range(..first_uncleanable).map(|(_, s)| s);
        let (mut clean_bytes, mut dirty_bytes, mut first_dirty_ts) = (0, 0, None);
        for s in below {
            if s.last_offset >= first_dirty {
                dirty_bytes += s.size;
                // The first batch's timestamp, as Kafka estimates the earliest dirty record's.
                first_dirty_ts = first_dirty_ts.or(s.time_index.first().map(|&(ts, _)| ts));
            } else {
                clean_bytes += s.size;
            }
        }
        let total = clean_bytes + dirty_bytes;
        let max_lag_passed = cfg.max_compaction_lag_ms < i64::MAX && first_dirty_ts.is_some_and(|ts| now.saturating_sub(ts) > cfg.max_compaction_lag_ms);
        Some(Cleanable {
            first_dirty,
            first_uncleanable,
            clean_bytes,
            dirty_bytes,
            dirty_ratio: if total == 0 { 0.0 } else { dirty_bytes as f64 / total as f64 },
            max_lag_passed,
            min_ratio: cfg.min_cleanable_dirty_ratio,
        })
    }

    fn segment_infos(&self, below: i64) -> Vec<SegmentInfo> {
        let st = self.state.borrow();
        let active = st.segments.keys().next_back().copied().unwrap_or(i64::MAX);
        st.segments
            .range(..below.min(active))
            .map(|(&base, s)| SegmentInfo {
                base,
                id: s.id,
                size: s.size,
                last_offset: s.last_offset,
                created_ms: s.created_ms,
                file: Rc::clone(&s.file),
                path: s.log_path.clone(),
            })
            .collect()
    }

    /// One cleaning pass over `plan` (from [`PartitionLog::cleanable`]), with `map` as the
    /// offset map: builds the map over the dirty section (stopping where it fills), then
    /// rewrites and swaps every segment below the pass's end, in groups up to `segment.bytes`.
    pub async fn clean(&self, plan: &Cleanable, map: &mut OffsetMap, io: &mut Throttle, chunk: usize, now: i64) -> Result<CleanOutcome, StorageError> {
        let end = self.build_offset_map(plan, map, io, chunk).await?;
        let mut outcome = CleanOutcome { end, ..Default::default() };
        let (segment_bytes, delete_retention_ms, interval, delay) = {
            let c = self.config.borrow();
            (c.segment_bytes, c.delete_retention_ms, c.index_interval_bytes, c.file_delete_delay_ms)
        };
        // Every segment below the end (the one holding the end too): older clean segments hold
        // records the new dirty ones supersede.
        // With no dirty progress (a tombstone's horizon is due, or the map filled at once) the
        // pass still drops what the rules drop below the uncleanable part.
        let segments = self.segment_infos(if end > plan.first_dirty { end } else { plan.first_uncleanable });
        let rules = RetainRules { map: &*map, now, delete_retention_ms };
        let last_of_producers = LastOfProducers { last: self.state.borrow().producers.last_entries() };
        let mut txns = CleanedTxns::new(&self.aborted_txns(), segments.first().map_or(0, |s| s.base));
        let mut groups: Vec<Vec<SegmentInfo>> = Vec::new();
        for seg in segments {
            let fits = groups.last().is_some_and(|g| {
                let bytes: u64 = g.iter().map(|s| s.size).sum();
                bytes + seg.size <= segment_bytes && seg.last_offset - g[0].base < i64::from(i32::MAX)
            });
            match groups.last_mut() {
                Some(g) if fits => g.push(seg),
                _ => groups.push(vec![seg]),
            }
        }
        for group in groups {
            let base = group[0].base;
            let final_path = group[0].path.clone();
            let cleaned_path = swap::with_suffix(&final_path, swap::CLEANED_SUFFIX);
            let _ = std::fs::remove_file(&cleaned_path);
            let file = Rc::new(open_dma(&cleaned_path).await?);
            let mut seg = Segment::new(base, Rc::clone(&file), final_path.clone(), group[0].created_ms);
            let mut writer = CleanedWriter::new(Rc::clone(&file), chunk);
            for old in &group {
                outcome.bytes_before += old.size;
                let mut reader = BatchReader::new(Rc::clone(&old.file), old.size, chunk);
                while let Some((h, batch)) = reader.next(io).await? {
                    let verdict = txns.next(&h, &batch);
                    let (rewritten, seen) = rewrite_batch(&batch, &rules, verdict, last_of_producers.holds_state(&h))?;
                    outcome.records_removed += seen.removed;
                    if let Some(at) = seen.horizon {
                        outcome.next_horizon = Some(outcome.next_horizon.map_or(at, |n: i64| n.min(at)));
                    }
                    let kept = match rewritten {
                        Rewritten::Same => Some((h, batch)),
                        Rewritten::Changed(new) => BatchHeader::parse(&new).map(|nh| (nh, new)),
                        Rewritten::Dropped => None,
                    };
                    if let Some((kh, bytes)) = kept {
                        seg.track_batch(&kh, writer.position(), interval);
                        writer.push(&bytes, io).await?;
                    }
                    io.pace().await;
                }
            }
            let size = writer.finish(io).await?;
            outcome.bytes_after += size;
            if !self.swap_in(seg, &group, &txns.take_emptied(), delay).await? {
                outcome.abandoned += 1;
            }
        }
        Ok(outcome)
    }

    /// Fills `map` from the dirty section; returns the pass's end (the first offset not in the
    /// map).
    async fn build_offset_map(&self, plan: &Cleanable, map: &mut OffsetMap, io: &mut Throttle, chunk: usize) -> Result<i64, StorageError> {
        map.clear();
        let mut txns = CleanedTxns::new(&self.aborted_txns(), plan.first_dirty);
        let dirty: Vec<_> = self.segment_infos(plan.first_uncleanable).into_iter().filter(|s| s.last_offset >= plan.first_dirty).collect();
        let mut end = plan.first_dirty;
        for seg in dirty {
            let mut reader = BatchReader::new(Rc::clone(&seg.file), seg.size, chunk);
            while let Some((h, batch)) = reader.next(io).await? {
                if h.last_offset() < plan.first_dirty {
                    continue;
                }
                // Below the last stable offset every transaction has ended: an aborted one's
                // records supersede nothing (they go), a committed one's count as any other.
                let verdict = txns.next(&h, &batch);
                if !h.is_control() && verdict != TxnVerdict::Aborted {
                    let (_, records) = read_records(&batch)?;
                    for r in &records {
                        if let Some(key) = &r.key
                            && !map.put(key, r.offset)
                        {
                            // Full: this batch and what follows wait for the next pass. Its
                            // keys already put point at records that stay (offsets ≥ end).
                            return Ok(end);
                        }
                    }
                }
                end = h.last_offset() + 1;
                io.pace().await;
            }
            end = end.max(seg.last_offset + 1);
        }
        Ok(end.max(plan.first_uncleanable))
    }

    /// Whether the segments of `group` are still in the log as the pass read them (retention,
    /// a follower's truncation or the log's deletion may have changed them during the pass).
    fn group_unchanged(&self, group: &[SegmentInfo]) -> bool {
        let st = self.state.borrow();
        let active = st.segments.keys().next_back().copied();
        !st.failed
            && group.iter().all(|old| Some(old.base) != active && st.segments.get(&old.base).is_some_and(|s| s.id == old.id && s.size == old.size))
    }

    /// Swaps the cleaned `seg` in for `group`, unless the log changed under the pass; then the
    /// cleaned file is dropped and false returned. The directory syncs run off the shard's
    /// thread; between the last check and the swap of the in-memory segments nothing awaits, so
    /// no fetch sees a half-done swap.
    /// `emptied` are the abort entries of the group whose transaction has no batch left: they
    /// leave the aborted list, and the cleaned segment's `.txnindex` holds the rest.
    async fn swap_in(&self, seg: Segment, group: &[SegmentInfo], emptied: &[AbortedTxn], delay_ms: i64) -> Result<bool, StorageError> {
        let final_path = seg.log_path.clone();
        let base = seg.base_offset;
        let abandon = |suffix: &str| {
            let _ = std::fs::remove_file(swap::with_suffix(&final_path, suffix));
            tracing::info!(partition = %self.tp, base_offset = base, "cleaning abandoned: the log changed under it");
            Ok(false)
        };
        if !self.group_unchanged(group) {
            return abandon(swap::CLEANED_SUFFIX);
        }
        swap::commit(&final_path)?;
        let dir = self.dir.clone();
        glommio::executor().spawn_blocking(move || swap::sync_dir(&dir)).await?;
        if !self.group_unchanged(group) {
            return abandon(swap::SWAP_SUFFIX);
        }
        let replaced: Vec<PathBuf> = group.iter().map(|s| s.path.clone()).collect();
        let group_end = group.last().map_or(base, |s| s.last_offset + 1);
        {
            let mut st = self.state.borrow_mut();
            for old in group {
                st.segments.remove(&old.base);
            }
            st.segments.insert(base, seg);
            st.aborted.retain(|a| !emptied.contains(a));
        }
        let deleted = swap::finish(&final_path, &replaced)?;
        // Batches cached from the old segments may hold records the cleaned one dropped.
        let next_base = self.state.borrow().segments.range(base + 1..).next().map(|(&b, _)| b).unwrap_or(group_end);
        self.cache.drop_below(self.uid, next_base);
        let dir = self.dir.clone();
        glommio::executor().spawn_blocking(move || swap::sync_dir(&dir)).await?;
        {
            let st = self.state.borrow();
            if let Some(s) = st.segments.get(&base).filter(|s| s.log_path == final_path) {
                s.write_index_files()?;
                super::txn::write_txn_index(s, &st.aborted)?;
            }
        }
        glommio::spawn_local(async move {
            glommio::timer::sleep(std::time::Duration::from_millis(delay_ms.max(0) as u64)).await;
            for path in deleted {
                let _ = std::fs::remove_file(path);
            }
        })
        .detach();
        tracing::info!(partition = %self.tp, base_offset = base, segments = group.len(), "swapped in a cleaned segment");
        Ok(true)
    }
}
