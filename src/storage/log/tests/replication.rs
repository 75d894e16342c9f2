//! What the replication layer relies on: the log end, the visible end and the high watermark
//! kept apart, a leader epoch that changes at run time, and a fetch wake-up per partition.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{config, open_in, shard_context};
use crate::storage::batch::BatchHeader;
use crate::storage::{PartitionLog, ShardLogContext, StorageError};
use crate::storage::batch::testing::make_batch;
use crate::storage::journal::AppendJournal;
use crate::storage::log::LogOffsets;
use crate::storage::testing::run;

fn offsets(log_end: i64, visible_end: i64, high_watermark: i64) -> LogOffsets {
    LogOffsets { log_start: 0, log_end, high_watermark, visible_end }
}

#[test]
fn a_delayed_write_leaves_the_log_end_ahead_of_the_visible_end_and_the_high_watermark() {
    run(|dir| async move {
        for visible_on_append in [false, true] {
            let dir = dir.join(format!("visible-on-append-{visible_on_append}"));
            std::fs::create_dir_all(&dir).unwrap();
            let shard = ShardLogContext { visible_on_append, write_delay: Duration::from_millis(100), ..shard_context(1 << 20) };
            let log = open_in(&dir, config(1 << 20), 0, 0, shard).await;
            let out = log.append(&make_batch(&[b"a", b"b"], 1_000, -1, -1), 1).unwrap();
            if visible_on_append {
                assert_eq!(log.offsets(), offsets(2, 2, 2), "visible from the append");
            } else {
                assert_eq!(log.offsets(), offsets(2, 0, 0), "appended but not written: only the log end moved");
                assert_eq!(log.locate(0, 1 << 20).unwrap().records.available(), 0, "consumers stop at the high watermark");
                assert_eq!(log.locate(1, 1 << 20).unwrap().records.available(), 0, "past the high watermark, within the log: nothing yet");
                assert!(log.locate(3, 1 << 20).is_err(), "past the log end: out of range");
            }
            out.done.unwrap().await.unwrap().unwrap();
            assert_eq!(log.offsets(), offsets(2, 2, 2), "written");
        }
    });
}

#[test]
fn an_unjournaled_append_hides_later_batches_but_never_what_was_visible() {
    run(|dir| async move {
        let metrics = Arc::new(crate::metrics::ShardMetrics::new());
        let journal = AppendJournal::create(&dir, &dir, 0, 4096 + crate::storage::journal::MIN_BYTES, Arc::clone(&metrics)).unwrap();
        let shard = ShardLogContext { journal: Some(Rc::new(journal)), ..shard_context(1 << 20) };
        let log = open_in(&dir, config(1 << 20), 0, 0, shard).await;
        // A consumer at the log end: appends are journaled while they fit.
        assert_eq!(log.locate(0, 1 << 20).unwrap().records.available(), 0);
        let small = log.append(&make_batch(&[b"small"], 1_000, -1, -1), 1).unwrap();
        assert_eq!(log.offsets(), offsets(1, 1, 1), "journaled: visible before its write");
        let big = log.append(&make_batch(&[&[7u8; 100_000]], 1_001, -1, -1), 1).unwrap();
        assert_eq!(metrics.journal_full.load(std::sync::atomic::Ordering::Relaxed), 1, "the big batch found no room");
        assert_eq!(log.offsets(), offsets(2, 1, 1), "the unjournaled batch waits for its write; offset 0 stays visible");
        small.done.unwrap().await.unwrap().unwrap();
        big.done.unwrap().await.unwrap().unwrap();
        assert_eq!(log.offsets(), offsets(2, 2, 2));
    });
}

#[test]
fn a_replicated_log_moves_its_high_watermark_only_when_told_and_never_past_the_visible_end() {
    run(|dir| async move {
        let log = open_in(&dir, config(1 << 20), 0, 0, shard_context(1 << 20)).await;
        log.set_replicated(true);
        let append = |value: &'static [u8]| log.append(&make_batch(&[value, value], 1_000, -1, -1), 1).unwrap().done.unwrap();
        append(b"one").await.unwrap().unwrap();
        assert_eq!(log.offsets(), offsets(2, 2, 0), "written, but no replica said so");
        assert_eq!(log.locate(0, 1 << 20).unwrap().records.available(), 0, "consumers read below the high watermark only");
        log.set_high_watermark(5);
        assert_eq!(log.offsets().high_watermark, 2, "held to the visible end");
        log.set_high_watermark(1);
        assert_eq!(log.offsets().high_watermark, 2, "never moves back");
        append(b"two").await.unwrap().unwrap();
        assert_eq!(log.offsets(), offsets(4, 4, 2));
        log.set_high_watermark(3);
        assert_eq!(log.offsets().high_watermark, 3);
        assert_eq!(log.locate(4, 1 << 20).unwrap().records.available(), 0, "past the high watermark, at the log end: nothing yet");
        assert!(log.locate(5, 1 << 20).is_err(), "past the log end: out of range");
        log.set_replicated(false);
        assert_eq!(log.offsets(), offsets(4, 4, 4), "not replicated: the high watermark is the visible end again");
    });
}

/// The leader epoch stamped into each batch from `offset` on.
async fn stamped_epochs(log: &PartitionLog, offset: i64) -> Vec<i32> {
    let read = log.read(offset, 1 << 20).await.unwrap();
    read.records.iter().map(|b| BatchHeader::parse(b).unwrap().leader_epoch).collect()
}

async fn append_two(log: &PartitionLog) {
    log.append(&make_batch(&[b"x", b"y"], 1_000, -1, -1), 1).unwrap().done.unwrap().await.unwrap().unwrap();
}

#[test]
fn a_new_leader_epoch_stamps_later_batches_and_ends_the_one_before_also_after_reopen() {
    run(|dir| async move {
        let log = open_in(&dir, config(1 << 20), 0, 0, shard_context(1 << 20)).await;
        append_two(&log).await;
        log.set_leader_epoch(3).unwrap();
        assert_eq!(log.leader_epoch(), 3);
        append_two(&log).await;
        assert_eq!(stamped_epochs(&log, 0).await, [0, 3]);
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 2)));
        assert_eq!(log.end_offset_for_epoch(2), Some((0, 2)), "epochs 1 and 2 had no batch: epoch 0's end");
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)), "the current epoch ends at the log end");
        assert_eq!(log.end_offset_for_epoch(4), None);
        log.set_leader_epoch(2).unwrap();
        assert_eq!(log.leader_epoch(), 3, "an older epoch is ignored");
        // ListOffsets answers the epoch of the batch holding an offset.
        assert_eq!([log.epoch_at(0), log.epoch_at(1), log.epoch_at(2), log.epoch_at(3), log.epoch_at(-1)], [0, 0, 3, 3, -1]);
        // KIP-320: a client's current epoch is checked against the replica's.
        assert!(log.check_leader_epoch(-1).is_ok() && log.check_leader_epoch(3).is_ok());
        assert!(matches!(log.check_leader_epoch(2), Err(StorageError::FencedLeaderEpoch { requested: 2, current: 3 })));
        assert!(matches!(log.check_leader_epoch(4), Err(StorageError::UnknownLeaderEpoch { requested: 4, current: 3 })));
        let checkpoint = dir.join("t-0").join("leader-epoch-checkpoint");
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n2\n0 0\n3 2\n");
        log.close().await.unwrap();
        drop(log);

        // Reopened with the metadata's older epoch: the checkpoint's newer one stands.
        let log = open_in(&dir, config(1 << 20), 0, 0, shard_context(1)).await;
        assert_eq!(log.leader_epoch(), 3);
        assert_eq!(log.end_offset_for_epoch(1), Some((0, 2)));
        append_two(&log).await;
        assert_eq!(stamped_epochs(&log, 0).await, [0, 3, 3], "read back from the segment file");
        log.close().await.unwrap();
        drop(log);

        // A newer epoch at open starts at the log end.
        let log = open_in(&dir, config(1 << 20), 0, 5, shard_context(1)).await;
        assert_eq!(log.leader_epoch(), 5);
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 6)));
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n3\n0 0\n3 2\n5 6\n");
    });
}

#[test]
fn an_epoch_that_starts_past_the_recovered_log_end_is_dropped_at_open() {
    run(|dir| async move {
        let part = dir.join("t-0");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("leader-epoch-checkpoint"), "0\n2\n0 0\n7 100\n").unwrap();
        let log = open_in(&dir, config(1 << 20), 0, 0, shard_context(1)).await;
        assert_eq!(log.leader_epoch(), 0, "epoch 7 started at offset 100, past the empty log's end");
        assert_eq!(std::fs::read_to_string(part.join("leader-epoch-checkpoint")).unwrap(), "0\n1\n0 0\n");
        append_two(&log).await;
        assert_eq!(stamped_epochs(&log, 0).await, [0]);
    });
}

#[test]
fn an_append_wakes_the_fetches_parked_on_its_own_partition_only() {
    run(|dir| async move {
        let shard = shard_context(1 << 20);
        let a = open_in(&dir, config(1 << 20), 0, 0, shard.clone()).await;
        let b = open_in(&dir, config(1 << 20), 1, 0, shard).await;
        let mut on_a = a.data_event().listen();
        let mut on_b = b.data_event().listen();
        append_two(&a).await;
        assert!(futures::poll!(&mut on_a).is_ready(), "a fetch parked on A wakes");
        assert!(futures::poll!(&mut on_b).is_pending(), "a fetch parked on B sleeps on");

        // A replicated partition's fetches wake when the high watermark is set forward, not
        // when it stays.
        b.set_replicated(true);
        append_two(&b).await;
        let mut on_b = b.data_event().listen();
        b.set_high_watermark(0);
        assert!(futures::poll!(&mut on_b).is_pending(), "the high watermark stayed");
        b.set_high_watermark(2);
        assert!(futures::poll!(&mut on_b).is_ready(), "the high watermark moved");
    });
}
