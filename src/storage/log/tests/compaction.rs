//! A whole cleaning pass over a real log: offset map, rewrite, swap, reads and recovery after.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::storage::cleaner::offset_map::OffsetMap;
use crate::storage::cleaner::segment_io::Throttle;
use crate::types::now_ms;

fn compacted(segment_bytes: u64) -> TopicConfig {
    let mut c = config(segment_bytes);
    c.compacted = true;
    c.delete_retention = false;
    c.delete_retention_ms = 0;
    c.file_delete_delay_ms = 0;
    c
}

async fn put(log: &PartitionLog, key: &str, value: Option<&str>) {
    let padded = value.map(|v| format!("{v}-{}", "p".repeat(200)));
    let batch = batch::build(&[(Some(key.as_bytes()), padded.as_deref().map(str::as_bytes))], now_ms(), -1, -1);
    let out = log.append(&batch, -1).unwrap();
    out.done.unwrap().await.unwrap().unwrap();
}

/// Every record from the log start: (offset, key, value without its padding).
async fn read_all(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let (mut offset, end) = (log.offsets().log_start, log.offsets().high_watermark);
    while offset < end {
        let r = log.read(offset, 1 << 20).await.unwrap();
        assert!(!r.records.is_empty(), "a read below the high watermark at {offset} finds a batch; segments {:?}", log.state.borrow().segments.values().map(|s| (s.base_offset, s.last_offset, s.size)).collect::<Vec<_>>());
        for b in &r.records {
            let h = batch::validate(b).unwrap();
            for rec in batch::records(b).unwrap() {
                let key = String::from_utf8(rec.key.unwrap().to_vec()).unwrap();
                let value = rec.value.map(|v: Bytes| String::from_utf8(v.to_vec()).unwrap().split('-').next().unwrap().to_string());
                out.push((rec.offset, key, value));
            }
            offset = h.last_offset() + 1;
        }
    }
    out
}

async fn clean_once(log: &PartitionLog, first_dirty: i64, now: i64) -> crate::storage::CleanOutcome {
    let plan = log.cleanable(first_dirty, now).unwrap();
    let mut map = OffsetMap::new(1 << 20, 0.9);
    log.clean(&plan, &mut map, &mut Throttle::new(f64::MAX), 64 << 10, now).await.unwrap()
}

#[test]
fn a_pass_keeps_the_latest_record_per_key_in_order() {
    run(|dir| async move {
        let log = open(&dir, compacted(4096)).await;
        for i in 0..120 {
            put(&log, &format!("k{}", i % 6), Some(&format!("v{i}"))).await;
        }
        put(&log, "k0", None).await; // a tombstone at offset 120
        for i in 0..30 {
            put(&log, "filler", Some(&format!("f{i}"))).await; // pushes the tombstone out of the active segment
        }
        let before = read_all(&log).await;
        let segments_before = log.state.borrow().segments.len();
        let plan = log.cleanable(0, now_ms()).unwrap();
        assert!(plan.is_due(false) && plan.dirty_ratio > 0.9, "{plan:?}");

        let done = clean_once(&log, 0, now_ms()).await;
        assert_eq!(done.end, plan.first_uncleanable);
        assert!(done.bytes_after * 4 < done.bytes_before, "{done:?}");
        assert!(done.next_horizon.is_some(), "the tombstone is kept with a horizon");

        let after = read_all(&log).await;
        // Below the end: one record per key, each the latest; above it, everything as before.
        let latest: BTreeMap<&str, (i64, Option<String>)> =
            before.iter().filter(|r| r.0 < done.end).map(|r| (r.1.as_str(), (r.0, r.2.clone()))).collect();
        let cleaned: Vec<_> = after.iter().filter(|r| r.0 < done.end).cloned().collect();
        let mut expected: Vec<_> = latest.iter().map(|(k, (o, v))| (*o, k.to_string(), v.clone())).collect();
        expected.sort();
        assert_eq!(cleaned, expected, "latest per key, in offset order");
        assert!(cleaned.iter().any(|r| r.1 == "k0" && r.2.is_none()), "the tombstone stays until its horizon");
        let tail_before: Vec<_> = before.iter().filter(|r| r.0 >= done.end).collect();
        let tail_after: Vec<_> = after.iter().filter(|r| r.0 >= done.end).collect();
        assert_eq!(tail_before, tail_after);
        assert_eq!(log.offsets().log_end, 151, "offsets are kept");

        // After the horizon (delete.retention.ms = 0), the next pass drops the tombstone.
        let done2 = clean_once(&log, done.end, now_ms() + 1).await;
        assert_eq!(done2.next_horizon, None);
        let again = read_all(&log).await;
        assert!(!again.iter().any(|r| r.1 == "k0"), "the tombstone is gone: {again:?}");
        assert_eq!(again.len() + 1, after.len());
        // Groups are sized by the segments' bytes before cleaning (as Kafka's): the first pass
        // kept one cleaned segment per old one, the second merged the now small ones.
        assert!(log.state.borrow().segments.len() < segments_before / 2, "small segments were merged");

        // A restart reads the cleaned segments back.
        log.close().await.unwrap();
        drop(log);
        let log = open(&dir, compacted(4096)).await;
        assert_eq!(read_all(&log).await, again);
        assert_eq!(log.offsets().log_end, 151);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.ends_with(".deleted") || n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    });
}

#[test]
fn a_small_offset_map_cleans_up_to_where_it_fills() {
    run(|dir| async move {
        let log = open(&dir, compacted(4096)).await;
        for i in 0..100 {
            put(&log, &format!("key{i}"), Some("a")).await; // 100 distinct keys
        }
        for i in 0..20 {
            put(&log, "filler", Some(&format!("f{i}"))).await;
        }
        let plan = log.cleanable(0, now_ms()).unwrap();
        let mut map = OffsetMap::new(crate::storage::cleaner::offset_map::SLOT_BYTES * 40, 0.9); // 36 keys
        let done = log.clean(&plan, &mut map, &mut Throttle::new(f64::MAX), 64 << 10, now_ms()).await.unwrap();
        assert!(done.end > 0 && done.end < plan.first_uncleanable, "{done:?} {plan:?}");
        assert_eq!(done.end, 36);
        // Nothing was lost: every key is distinct.
        assert_eq!(read_all(&log).await.len(), 120);
    });
}

/// Every batch header from the log start.
async fn headers(log: &PartitionLog) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let (mut offset, end) = (log.offsets().log_start, log.offsets().high_watermark);
    while offset < end {
        let r = log.read(offset, 1 << 20).await.unwrap();
        assert!(!r.records.is_empty(), "a batch at {offset}");
        for b in &r.records {
            let h = batch::validate(b).unwrap();
            offset = h.last_offset() + 1;
            out.push(h);
        }
    }
    out
}

#[test]
fn markers_go_once_their_transactions_have_no_batch_left_and_their_horizon_passed() {
    use crate::storage::txn::{AbortedTxn, ControlMarker, read_txn_index, testing::txn_records};
    run(|dir| async move {
        let log = open(&dir, compacted(4096)).await;
        let end_txn = |producer_id: i64, producer_epoch: i16, commit: bool| {
            let out = log.append_marker(&crate::types::TxnMarker { producer_id, producer_epoch, coordinator_epoch: 0, commit }).unwrap();
            out.done.unwrap()
        };
        let append = |b: Bytes| log.append(&b, -1).unwrap().done.unwrap();
        // Producer 7 aborts [0, 1] then commits k3 [4, 5]; producer 8 commits k2 [2, 3], superseded
        // later; producer 9 commits k4 with a version 2 marker (epoch 0 → 1) [6, 7], superseded.
        append(txn_records(&[(Some(b"k1"), Some(b"aborted"))], 7, 0, 0)).await.unwrap().unwrap();
        end_txn(7, 0, false).await.unwrap().unwrap();
        append(txn_records(&[(Some(b"k2"), Some(b"old"))], 8, 0, 0)).await.unwrap().unwrap();
        end_txn(8, 0, true).await.unwrap().unwrap();
        append(txn_records(&[(Some(b"k3"), Some(b"t"))], 7, 0, 1)).await.unwrap().unwrap();
        end_txn(7, 0, true).await.unwrap().unwrap();
        append(txn_records(&[(Some(b"k4"), Some(b"old"))], 9, 0, 0)).await.unwrap().unwrap();
        end_txn(9, 1, true).await.unwrap().unwrap();
        put(&log, "k2", Some("new")).await;
        put(&log, "k4", Some("new")).await;
        for i in 0..30 {
            put(&log, "filler", Some(&format!("f{i}"))).await;
        }
        let abort = AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 1, last_stable_offset: 2 };
        assert_eq!(log.aborted_txns(), vec![abort]);
        let markers = |hs: &[BatchHeader]| hs.iter().filter(|h| h.is_control()).map(|h| h.base_offset).collect::<Vec<_>>();
        let t = now_ms();

        // Pass 1: the aborted and superseded records go; every marker stays, as each still had
        // a batch of its transaction in the log when the pass read it.
        let first = clean_once(&log, 0, t).await;
        let hs = headers(&log).await;
        assert_eq!(markers(&hs), vec![1, 3, 5, 7]);
        assert!(!hs.iter().any(|h| h.base_offset == 0), "the aborted batch is gone");
        let empty_of_8 = hs.iter().find(|h| h.base_offset == 2).expect("producer 8's last batch holds its sequence");
        assert_eq!(empty_of_8.records_count, 0);
        assert!(!hs.iter().any(|h| h.base_offset == 6), "producer 9's superseded batch is gone (its marker holds its epoch)");
        assert_eq!(log.aborted_txns(), vec![abort], "the abort marker stays, and its entry");

        // Pass 2: the abort marker and producer 9's commit marker end transactions with no batch
        // left: they get a delete horizon (delete.retention.ms = 0: now) and the abort entry goes.
        let second = clean_once(&log, first.end, t + 10).await;
        assert_eq!(second.next_horizon, Some(t + 10));
        let hs = headers(&log).await;
        assert_eq!(markers(&hs), vec![1, 3, 5, 7]);
        let horizon = |o: i64| hs.iter().find(|h| h.base_offset == o).and_then(crate::storage::cleaner::rewrite::delete_horizon);
        assert_eq!((horizon(1), horizon(3), horizon(5), horizon(7)), (Some(t + 10), None, None, Some(t + 10)));
        assert!(log.aborted_txns().is_empty());
        let seg0 = log.state.borrow().segments.values().next().unwrap().log_path.clone();
        assert_eq!(read_txn_index(&seg0), Some(vec![]), "the cleaned segment's .txnindex lost the entry too");

        // Pass 3, after the horizon: the abort marker goes; producer 9's marker holds its epoch
        // and stays; producer 8's and 7's commit markers still have their batches.
        let third = clean_once(&log, second.end, t + 20).await;
        assert_eq!(third.next_horizon, None, "nothing is due any more");
        let hs = headers(&log).await;
        assert_eq!(markers(&hs), vec![3, 5, 7]);
        let kept_marker = log.read(7, 1 << 20).await.unwrap().records.into_iter().next().unwrap();
        assert_eq!(ControlMarker::parse(&kept_marker).map(|m| m.commit), Some(true));
        let values: Vec<_> = read_all(&log).await.into_iter().filter(|r| r.1.starts_with('k')).map(|r| (r.1, r.2)).collect();
        assert!(values.contains(&("k3".into(), Some("t".into()))) && values.contains(&("k2".into(), Some("new".into()))), "{values:?}");
        assert!(!values.iter().any(|v| v.0 == "k1"), "{values:?}");

        // A restart agrees: no aborted entry, the same batches.
        log.close().await.unwrap();
        drop(log);
        let log = open(&dir, compacted(4096)).await;
        assert!(log.aborted_txns().is_empty());
        assert_eq!(markers(&headers(&log).await), vec![3, 5, 7]);
    });
}
