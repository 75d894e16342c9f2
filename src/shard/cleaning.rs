//! The shard's log cleaner task: the glue between the core's logs and `storage::cleaner`.
//!
//! One task per shard, in its own low-share task queue, loops: pick the compacted log this core
//! owns that most needs cleaning ([`PartitionLog::cleanable`]), clean it, record the pass's end
//! in the log dir's `cleaner-offset-checkpoint`; sleep `log.cleaner.backoff.ms` when no log
//! needs it. The offset map is allocated on first use and kept for the next passes.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::storage::cleaner::offset_map::OffsetMap;
use crate::storage::cleaner::segment_io::Throttle;
use crate::storage::cleaner::{CleanerConfig, checkpoint};
use crate::storage::{Cleanable, PartitionLog};
use crate::types::{TopicPartition, now_ms};

/// Task-queue shares of the cleaner: a tenth of the default queue's, so produce and fetch work
/// queued on the core runs first.
const CLEANER_SHARES: usize = 100;

/// What the cleaner remembers of each log between passes.
#[derive(Default)]
struct CleanerState {
    /// First dirty offset per log (the checkpoint's entries).
    first_dirty: HashMap<TopicPartition, i64>,
    /// Earliest delete horizon of the tombstones each log keeps.
    horizons: HashMap<TopicPartition, i64>,
}

impl Shard {
    /// Starts this core's cleaner (unless `log.cleaner.enable` is false) in its own task queue;
    /// it ends once `stopping` says so.
    pub fn spawn_cleaner(self: &Rc<Self>, stopping: fn() -> bool) {
        let config = CleanerConfig::from_settings(&self.log_settings());
        if !config.enable {
            tracing::info!(shard = %self.me, "log cleaner disabled (log.cleaner.enable=false)");
            return;
        }
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(CLEANER_SHARES),
            glommio::Latency::NotImportant,
            "log-cleaner",
        );
        let shard = Rc::clone(self);
        match glommio::spawn_local_into(async move { shard.run_cleaner(config, stopping).await }, queue) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => tracing::warn!(shard = %self.me, error = %e, "log cleaner not started"),
        }
    }

    async fn run_cleaner(&self, mut config: CleanerConfig, stopping: fn() -> bool) {
        let shards = self.config.cores.max(1);
        let data_dir = self.config.data_dir.clone();
        let mut state = CleanerState { first_dirty: checkpoint::read(&data_dir).into_iter().collect(), ..Default::default() };
        let mut map: Option<OffsetMap> = None;
        while !stopping() {
            // Dynamic `log.cleaner.*` values (KIP-226) take effect from the next pass; a new map
            // size or load factor means a new offset map.
            let now = CleanerConfig::from_settings(&self.log_settings());
            if (now.dedupe_buffer_size, now.load_factor) != (config.dedupe_buffer_size, config.load_factor) {
                map = None;
            }
            config = now;
            let backoff = Duration::from_millis(config.backoff_ms.max(1));
            let Some((log, plan)) = self.filthiest_log(&state) else {
                glommio::timer::sleep(backoff).await;
                continue;
            };
            let map = map.get_or_insert_with(|| OffsetMap::new(config.dedupe_bytes_per_shard(shards), config.load_factor));
            let mut io = Throttle::new(config.io_rate_per_shard(shards)).with_produce_signal(Rc::clone(&self.sync_rounds));
            let started = std::time::Instant::now();
            tracing::info!(partition = %log.tp, first_dirty = plan.first_dirty, first_uncleanable = plan.first_uncleanable,
                dirty_ratio = format!("{:.2}", plan.dirty_ratio), max_lag_passed = plan.max_lag_passed, "log cleaning started");
            match log.clean(&plan, map, &mut io, config.io_chunk_per_shard(shards), now_ms()).await {
                Ok(done) => {
                    tracing::info!(partition = %log.tp, first_dirty = plan.first_dirty, end = done.end,
                        dirty_ratio = format!("{:.2}", plan.dirty_ratio), bytes_before = done.bytes_before,
                        bytes_after = done.bytes_after, records_removed = done.records_removed, abandoned = done.abandoned,
                        ms = started.elapsed().as_millis() as u64, "log cleaned");
                    let progressed = done.end > plan.first_dirty || done.bytes_after < done.bytes_before;
                    state.first_dirty.insert(log.tp.clone(), done.end);
                    match done.next_horizon {
                        Some(at) => state.horizons.insert(log.tp.clone(), at),
                        None => state.horizons.remove(&log.tp),
                    };
                    // Off the shard's thread: the update syncs a file.
                    let (dir, entry) = (data_dir.clone(), [(log.tp.clone(), done.end)]);
                    if let Err(e) = glommio::executor().spawn_blocking(move || checkpoint::update(&dir, &entry)).await {
                        tracing::warn!(partition = %log.tp, error = %e, "cleaner checkpoint not written");
                    }
                    if !progressed {
                        glommio::timer::sleep(backoff).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = %log.tp, error = %e, "log cleaning failed");
                    glommio::timer::sleep(backoff).await;
                }
            }
        }
    }

    /// The compacted log that most needs cleaning now: due ([`Cleanable::is_due`]), with the
    /// highest dirty ratio (a log past its max lag or tombstone horizon first).
    fn filthiest_log(&self, state: &CleanerState) -> Option<(Rc<PartitionLog>, Cleanable)> {
        let now = now_ms();
        let mut best: Option<(Rc<PartitionLog>, Cleanable, f64)> = None;
        for log in self.all_logs() {
            if !log.is_compacted() {
                continue;
            }
            let mut first_dirty = state.first_dirty.get(&log.tp).copied().unwrap_or(0);
            if first_dirty > log.offsets().log_end {
                // A checkpoint entry of an older log of the same name (deleted and re-created).
                first_dirty = 0;
            }
            let Some(plan) = log.cleanable(first_dirty, now) else { continue };
            let horizon_due = state.horizons.get(&log.tp).is_some_and(|&at| at <= now);
            if !plan.is_due(horizon_due) {
                continue;
            }
            let urgency = if plan.max_lag_passed || horizon_due { 2.0 + plan.dirty_ratio } else { plan.dirty_ratio };
            if best.as_ref().is_none_or(|(_, _, u)| urgency > *u) {
                best = Some((log, plan, urgency));
            }
        }
        best.map(|(log, plan, _)| (log, plan))
    }
}
