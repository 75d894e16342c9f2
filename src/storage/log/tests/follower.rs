//! The replica's side of the log: follower appends and KIP-101 truncation.

use bytes::Bytes;

use super::{config, open, shard_context, open_in, start_hw_end, summary};
use crate::storage::batch::{BatchHeader, stamp, testing::make_batch};
use crate::storage::producers::SequenceCheck;
use crate::storage::testing::run;
use crate::storage::{PartitionLog, StorageError};

/// A batch as a leader stores it: `n` records of `value` at `offset`, stamped with `epoch`,
/// timestamps from `ts0`, from producer `pid` (or -1) at sequence `seq`.
fn leader_batch(offset: i64, epoch: i32, n: usize, value: &str, ts0: i64, pid: i64, seq: i32) -> Bytes {
    let values: Vec<&[u8]> = vec![value.as_bytes(); n];
    stamp(&make_batch(&values, ts0, pid, seq), offset, epoch, None).to_bytes()
}

/// One-record batches at `offsets` with their `epochs`, values "v{offset}", concatenated.
fn run_of(offsets: std::ops::Range<i64>, epochs: &[i32], tag: &str) -> Bytes {
    let mut out = Vec::new();
    for (o, e) in offsets.zip(epochs) {
        out.extend_from_slice(&leader_batch(o, *e, 1, &format!("{tag}{o}"), 1_000 + o, -1, -1));
    }
    Bytes::from(out)
}

async fn append_follower(log: &PartitionLog, records: &Bytes) {
    let out = log.append_as_follower(records).unwrap();
    out.done.expect("a follower append waits for its fdatasync").await.unwrap().unwrap();
}

/// Every batch from `offset` to the log end as (base offset, leader epoch, first value).
async fn batches_from(log: &PartitionLog, offset: i64) -> Vec<(i64, i32, String)> {
    let end = log.offsets().log_end;
    log.set_high_watermark(end);
    let mut out = Vec::new();
    let mut at = offset;
    while at < end {
        let read = log.read(at, 1 << 20).await.unwrap();
        for b in &read.records {
            let h = BatchHeader::parse(b).unwrap();
            let records = crate::storage::batch::records(b).unwrap();
            let value = String::from_utf8(records[0].value.clone().unwrap().to_vec()).unwrap();
            out.push((h.base_offset, h.leader_epoch, value));
            at = h.last_offset() + 1;
        }
    }
    out
}

fn checkpoint(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("t-0").join("leader-epoch-checkpoint")).unwrap()
}

#[test]
fn a_follower_append_keeps_the_leaders_offsets_epochs_and_bytes_and_drops_a_partial_last_batch() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        let a = leader_batch(0, 1, 2, "a", 5_000, 7, 0);
        let b = leader_batch(2, 1, 1, "b", 6_000, 7, 2);
        let c = leader_batch(3, 4, 1, "c", 7_000, -1, -1);
        let d = leader_batch(4, 4, 1, "d", 8_000, -1, -1);
        // A fetch response cut at max_bytes: d arrives in part.
        let records = Bytes::from([&a[..], &b[..], &c[..], &d[..d.len() - 10]].concat());
        let out = log.append_as_follower(&records).unwrap();
        assert_eq!(out.base_offset, 0);
        out.done.unwrap().await.unwrap().unwrap();
        let o = log.offsets();
        assert_eq!((o.log_end, o.visible_end, o.high_watermark), (4, 4, 0), "the append does not move the high watermark");
        log.set_high_watermark(10);
        assert_eq!(log.offsets().high_watermark, 4, "set from the leader, held to the follower's own end");
        let read = log.read(0, 1 << 20).await.unwrap();
        assert_eq!(read.records, vec![a.clone(), b.clone(), c.clone()], "stored byte for byte as the leader had them");
        assert_eq!(log.leader_epoch(), 4);
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 3)));
        assert_eq!([log.epoch_at(0), log.epoch_at(2), log.epoch_at(3)], [1, 1, 4]);
        assert_eq!(checkpoint(&dir), "0\n2\n1 0\n4 3\n", "each new epoch at its first offset, the open's epoch 0 replaced");
        // Producer 7's batches are known: a leader retry of sequence 2 is a duplicate, 3 is next.
        {
            let st = log.state.borrow();
            let h = |seq| {
                let mut h = BatchHeader::parse(&make_batch(&[b"x"], 0, 7, seq)).unwrap();
                h.producer_epoch = 0;
                h
            };
            assert_eq!(st.producers.check(&h(2)).unwrap(), SequenceCheck::Duplicate(2));
            assert_eq!(st.producers.check(&h(3)).unwrap(), SequenceCheck::Append);
        }
        // The rest of d, fetched again whole.
        append_follower(&log, &d).await;
        assert_eq!(log.offsets().log_end, 5);
        // Nothing whole: nothing to do.
        let none = log.append_as_follower(&d.slice(..30)).unwrap();
        assert!(none.done.is_none());
        assert_eq!((none.base_offset, log.offsets().log_end), (5, 5));
    });
}

#[test]
fn a_follower_of_a_compacted_topic_takes_the_holes_the_cleaner_left() {
    run(|dir| async move {
        let mut cfg = config(1 << 20);
        cfg.compacted = true;
        let log = open(&dir, cfg).await;
        append_follower(&log, &run_of(0..2, &[1, 1], "v")).await;
        let behind = log.append_as_follower(&run_of(1..2, &[1], "v"));
        assert!(matches!(behind, Err(StorageError::OffsetMismatch { expected: 2, got: 1 })), "never before the end");
        append_follower(&log, &Bytes::from([run_of(5..6, &[1], "v"), run_of(8..9, &[1], "v")].concat())).await;
        assert_eq!(log.offsets().log_end, 9);
    });
}

#[test]
fn a_follower_append_that_goes_back_is_refused_and_a_hole_is_taken() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        append_follower(&log, &run_of(0..2, &[1, 1], "v")).await;
        let behind = log.append_as_follower(&run_of(1..2, &[1], "v"));
        assert!(matches!(behind, Err(StorageError::OffsetMismatch { expected: 2, got: 1 })));
        let back_inside = Bytes::from([run_of(2..4, &[1, 1], "v"), run_of(3..4, &[1], "v")].concat());
        assert!(matches!(log.append_as_follower(&back_inside), Err(StorageError::OffsetMismatch { expected: 4, got: 3 })));
        let mut corrupt = run_of(2..3, &[1], "v").to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(log.append_as_follower(&Bytes::from(corrupt)), Err(StorageError::CorruptBatch(_))));
        assert_eq!(log.offsets().log_end, 2, "nothing of a refused append is kept");
        append_follower(&log, &run_of(2..3, &[1], "v")).await;
        assert_eq!(log.offsets().log_end, 3);
        append_follower(&log, &run_of(6..7, &[1], "v")).await;
        assert_eq!(log.offsets().log_end, 7, "a hole is taken whatever the topic's config says");
    });
}

#[test]
fn truncation_in_the_active_segment_cuts_batches_epochs_and_high_watermark_and_appends_follow() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        append_follower(&log, &run_of(0..5, &[1, 1, 2, 2, 3], "old")).await;
        log.set_high_watermark(4);
        log.truncate_to(3).await.unwrap();
        let o = log.offsets();
        assert_eq!((o.log_end, o.visible_end, o.high_watermark), (3, 3, 3), "the high watermark above the cut comes down");
        assert_eq!(log.leader_epoch(), 2, "epoch 3 started past the cut");
        assert_eq!(checkpoint(&dir), "0\n2\n1 0\n2 2\n");
        assert!(log.read(3, 100).await.unwrap().records.is_empty(), "nothing at the cut");
        assert!(log.read(4, 100).await.is_err(), "past the end");
        // A cut inside a batch takes the whole batch.
        append_follower(&log, &leader_batch(3, 5, 3, "three", 9_000, -1, -1)).await;
        log.truncate_to(4).await.unwrap();
        assert_eq!(log.offsets().log_end, 3, "the batch 3..6 that holds 4 is cut whole");
        // At or past the log end, nothing changes.
        log.truncate_to(3).await.unwrap();
        log.truncate_to(99).await.unwrap();
        assert_eq!(log.offsets().log_end, 3);
        append_follower(&log, &run_of(3..5, &[5, 5], "new")).await;
        assert_eq!(
            batches_from(&log, 0).await,
            vec![
                (0, 1, "old0".into()),
                (1, 1, "old1".into()),
                (2, 2, "old2".into()),
                (3, 5, "new3".into()),
                (4, 5, "new4".into())
            ]
        );
        assert_eq!(log.end_offset_for_epoch(2), Some((2, 3)));
        assert_eq!(log.end_offset_for_epoch(3), Some((2, 3)), "epoch 3 is gone: epoch 2 ends where 5 starts");
    });
}

#[test]
fn truncation_across_segments_deletes_later_segments_and_a_reopen_recovers_what_it_left() {
    run(|dir| async move {
        let mut cfg = config(300);
        cfg.index_interval_bytes = 1;
        let log = open(&dir, cfg.clone()).await;
        // Each ~90-byte batch; a segment holds three.
        let epochs = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3];
        append_follower(&log, &run_of(0..10, &epochs, "old")).await;
        let bases: Vec<i64> = log.state.borrow().segments.keys().copied().collect();
        assert!(bases.len() >= 3, "several segments: {bases:?}");
        let cut = bases[1] + 1;
        log.truncate_to(cut).await.unwrap();
        assert_eq!(log.offsets().log_end, cut);
        assert_eq!(log.state.borrow().segments.keys().copied().collect::<Vec<_>>(), bases[..2].to_vec());
        let part = dir.join("t-0");
        for base in &bases[2..] {
            assert!(!part.join(format!("{}.log", crate::storage::segment::file_stem(*base))).exists(), "segment {base} deleted");
        }
        append_follower(&log, &run_of(cut..cut + 4, &[7, 7, 7, 7], "new")).await;
        let expected = batches_from(&log, 0).await;
        assert_eq!(expected.len(), (cut + 4) as usize);
        assert!(expected[..cut as usize].iter().all(|(o, e, v)| *v == format!("old{o}") && *e == epochs[*o as usize]));
        assert!(expected[cut as usize..].iter().all(|(o, e, v)| *v == format!("new{o}") && *e == 7));
        let segments = summary(&log.state.borrow().segments);
        let end_for = |log: &PartitionLog| (1..=7).map(|e| log.end_offset_for_epoch(e)).collect::<Vec<_>>();
        let epochs_before = end_for(&log);
        drop(log);

        // A crash (no clean close): recovery scans the segments and must agree.
        let log = open_in(&dir, cfg.clone(), 0, 0, shard_context(1)).await;
        assert_eq!(start_hw_end(&log).2, cut + 4);
        assert_eq!(summary(&log.state.borrow().segments), segments, "recovery finds the segments truncation left");
        assert_eq!(batches_from(&log, 0).await, expected);
        assert_eq!(end_for(&log), epochs_before, "the checkpoint agrees with the batches");
        log.close().await.unwrap();
        drop(log);

        // And after a clean close, from the index files.
        let log = open_in(&dir, cfg, 0, 0, shard_context(1)).await;
        assert_eq!(summary(&log.state.borrow().segments), segments);
        assert_eq!(batches_from(&log, 0).await, expected);
        assert_eq!(end_for(&log), epochs_before);
    });
}

#[test]
fn truncation_to_the_start_of_a_segment_keeps_it_empty_and_appends_go_there() {
    run(|dir| async move {
        let log = open(&dir, config(300)).await;
        append_follower(&log, &run_of(0..9, &[1; 9], "old")).await;
        let bases: Vec<i64> = log.state.borrow().segments.keys().copied().collect();
        log.truncate_to(bases[1]).await.unwrap();
        assert_eq!(log.state.borrow().segments.keys().copied().collect::<Vec<_>>(), bases[..2].to_vec());
        assert_eq!(log.state.borrow().segments[&bases[1]].size, 0);
        append_follower(&log, &run_of(bases[1]..bases[1] + 1, &[2], "new")).await;
        let last = batches_from(&log, bases[1]).await;
        assert_eq!(last, vec![(bases[1], 2, format!("new{}", bases[1]))]);
    });
}

#[test]
fn truncation_below_the_log_start_empties_the_log_and_starts_it_at_the_offset() {
    run(|dir| async move {
        let log = open(&dir, config(300)).await;
        append_follower(&log, &run_of(0..9, &[1; 9], "old")).await;
        log.set_high_watermark(9);
        let start = log.delete_records_before(6).await.unwrap();
        assert_eq!(start, 6);
        log.truncate_to(4).await.unwrap();
        assert_eq!(start_hw_end(&log), (4, 4, 4));
        assert_eq!(log.leader_epoch(), -1, "no epoch is known");
        assert_eq!(log.state.borrow().segments.keys().copied().collect::<Vec<_>>(), vec![4]);
        append_follower(&log, &run_of(4..6, &[3, 3], "new")).await;
        assert_eq!(batches_from(&log, 4).await, vec![(4, 3, "new4".into()), (5, 3, "new5".into())]);
        assert_eq!(checkpoint(&dir), "0\n1\n3 4\n");
        drop(log);
        let log = open(&dir, config(300)).await;
        assert_eq!(start_hw_end(&log).0, 4);
        assert_eq!(batches_from(&log, 4).await, vec![(4, 3, "new4".into()), (5, 3, "new5".into())]);
    });
}

#[test]
fn truncation_reads_back_the_state_of_a_producer_whose_kept_batches_were_all_cut() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        // Producer 7: seven batches, sequences 0..7; the state keeps the last five (offsets 2..7).
        let mut records = Vec::new();
        for seq in 0..7 {
            records.extend_from_slice(&leader_batch(i64::from(seq), 1, 1, "p", 1_000, 7, seq));
        }
        append_follower(&log, &Bytes::from(records)).await;
        log.truncate_to(2).await.unwrap();
        // As leader now: sequence 1 is a retry of offset 1, and 2 is next.
        log.set_leader_epoch(2).unwrap();
        let retry = log.append(&make_batch(&[b"p"], 2_000, 7, 1), 1).unwrap();
        assert_eq!((retry.base_offset, retry.done.is_none()), (1, true), "a duplicate of offset 1");
        let next = log.append(&make_batch(&[b"p"], 2_000, 7, 2), 1).unwrap();
        assert_eq!(next.base_offset, 2);
        next.done.unwrap().await.unwrap().unwrap();
        assert!(log.append(&make_batch(&[b"p"], 2_000, 7, 5), 1).is_err(), "the old sequences 3..7 are gone");
    });
}
