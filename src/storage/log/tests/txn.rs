//! Transactions in the partition log: the last stable offset, markers, `.txnindex`, recovery.

use super::*;
use crate::storage::producers::TxnVerification;
use crate::storage::txn::{AbortedTxn, read_txn_index, testing::txn_batch};
use crate::types::TxnMarker;

async fn appended(log: &PartitionLog, records: &bytes::Bytes) -> i64 {
    let out = log.append(records, -1).unwrap();
    let base = out.base_offset;
    out.done.unwrap().await.unwrap().unwrap();
    base
}

async fn marker(log: &PartitionLog, producer_id: i64, epoch: i16, commit: bool) -> i64 {
    let m = TxnMarker { producer_id, producer_epoch: epoch, coordinator_epoch: 0, commit };
    let out = log.append_marker(&m).unwrap();
    let base = out.base_offset;
    out.done.unwrap().await.unwrap().unwrap();
    base
}

fn located_offsets(located: &Located) -> Vec<i64> {
    match located {
        Located::Cached(b) => b.iter().map(|b| BatchHeader::parse(b.header()).unwrap().base_offset).collect(),
        Located::OnDisk(r) => vec![r.offset],
    }
}

#[test]
fn open_transactions_hold_the_last_stable_offset_and_aborts_are_indexed() {
    run(|dir| async move {
        let log = open_with(&dir, config(1 << 20), 0, SyncRounds::new(std::time::Duration::ZERO), 1 << 20, false, None).await;
        assert_eq!(appended(&log, &txn_batch(&[b"a", b"b"], 7, 0, 0)).await, 0);
        assert_eq!(appended(&log, &make_batch(&[b"plain"], 1, -1, -1)).await, 2);
        assert_eq!(appended(&log, &txn_batch(&[b"c"], 8, 0, 0)).await, 3);
        assert_eq!(log.offsets().high_watermark, 4);
        assert_eq!(log.last_stable_offset(), 0, "held at the first open transaction");
        let (found, aborted) = log.locate_committed(0, 1 << 20).unwrap();
        assert!(located_offsets(&found.records).is_empty(), "nothing is stable yet");
        assert!(aborted.is_empty());

        assert_eq!(marker(&log, 7, 0, false).await, 4);
        assert_eq!(log.last_stable_offset(), 3, "producer 8's transaction still holds it");
        assert_eq!(log.aborted_txns(), vec![AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 4, last_stable_offset: 3 }]);
        assert!(matches!(log.append_marker(&TxnMarker { producer_id: 7, producer_epoch: -1, coordinator_epoch: 0, commit: true }),
            Err(StorageError::InvalidProducerEpoch { .. })), "an older epoch's marker is fenced");
        assert_eq!(marker(&log, 8, 0, true).await, 5);
        assert_eq!(log.last_stable_offset(), 6);
        let (found, aborted) = log.locate_committed(0, 1 << 20).unwrap();
        assert_eq!(found.last_stable_offset, 6);
        assert_eq!(located_offsets(&found.records), vec![0, 2, 3, 4, 5]);
        assert_eq!(aborted, vec![(7, 0)]);
        let (_, aborted) = log.locate_committed(5, 1 << 20).unwrap();
        assert!(aborted.is_empty(), "an abort whose marker is before the fetch is not listed");
        let (found, aborted) = log.locate_committed(2, 1).unwrap();
        assert_eq!(located_offsets(&found.records), vec![2]);
        assert_eq!(aborted, vec![(7, 0)], "the read [2, 3) lies inside the aborted transaction [0, 4]");

        // A transaction left open across a clean close holds the last stable offset after it.
        assert_eq!(appended(&log, &txn_batch(&[b"d"], 7, 0, 2)).await, 6);
        log.close().await.unwrap();
        drop(log);
        let seg = dir.join("t-0").join(format!("{}.log", segment::file_stem(0)));
        assert_eq!(read_txn_index(&seg).unwrap().len(), 1, "close writes the active segment's .txnindex");
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(log.aborted_txns().len(), 1);
        assert_eq!(log.active_producers().iter().find(|p| p.producer_id == 7).unwrap().current_txn_start_offset, 6);
        assert_eq!(marker(&log, 7, 0, false).await, 7);
        let expected = log.aborted_txns();
        assert_eq!(expected.len(), 2);
        drop(log);

        // A crash (no clean close, no .txnindex for the active segment): replay rebuilds it all.
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.aborted_txns(), expected);
        assert_eq!(log.last_stable_offset(), 8);
        log.close().await.unwrap();
        drop(log);
        // A clean close whose .txnindex went missing: rebuilt from the log too.
        std::fs::remove_file(seg.with_extension("txnindex")).unwrap();
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.aborted_txns(), expected);
        assert_eq!(log.last_stable_offset(), 8);
    });
}

#[test]
fn closed_segments_carry_their_aborts_and_retention_drops_them() {
    run(|dir| async move {
        let log = open(&dir, config(4096)).await;
        let big = vec![b'x'; 1500];
        for seq in 0..6 {
            appended(&log, &txn_batch(&[&big], 3, 0, seq)).await;
            marker(&log, 3, 0, seq % 2 == 1).await;
        }
        appended(&log, &make_batch(&[&big], 1, -1, -1)).await;
        let aborted = log.aborted_txns();
        assert_eq!(aborted.iter().map(|a| a.first_offset).collect::<Vec<_>>(), vec![0, 4, 8]);
        let bases = segment::base_offsets(&dir.join("t-0")).unwrap();
        assert!(bases.len() >= 3, "segments rolled: {bases:?}");
        let on_disk: usize = bases[..bases.len() - 1]
            .iter()
            .map(|b| read_txn_index(&dir.join("t-0").join(format!("{}.log", segment::file_stem(*b)))).unwrap().len())
            .sum();
        let in_active = aborted.iter().filter(|a| a.last_offset >= *bases.last().unwrap()).count();
        assert_eq!(on_disk + in_active, 3, "every abort is in its segment's .txnindex, or the active one's");
        // A disk read stays in its segment: only the aborts that began before the next one are listed.
        let (found, listed) = log.locate_committed(0, 1 << 20).unwrap();
        assert!(matches!(found.records, Located::OnDisk(_)));
        let expected: Vec<_> = aborted.iter().filter(|a| a.first_offset < bases[1]).map(|a| (a.producer_id, a.first_offset)).collect();
        assert!(expected.len() < 3, "the first segment does not hold every abort");
        assert_eq!(listed, expected);
        log.delete_records_before(6).await.unwrap();
        assert!(log.aborted_txns().iter().all(|a| a.last_offset >= 6));
        let first = segment::file_stem(bases[0]);
        assert!(!dir.join("t-0").join(format!("{first}.txnindex")).exists(), "the .txnindex goes with its segment");
    });
}

#[test]
fn an_unverified_transactional_batch_gets_a_guard_and_a_marker_clears_it() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        let first = txn_batch(&[b"a"], 5, 0, 0);
        let TxnVerification::Verify(guard) = log.verify_txn(&first, None).unwrap() else { panic!("must be verified") };
        assert!(log.verify_txn(&first, Some(guard + 1)).is_err(), "another guard is refused");
        assert_eq!(log.verify_txn(&txn_batch(&[b"a2"], 5, 0, 1), None).unwrap(), TxnVerification::Verify(guard),
            "a pipelined batch before the resend shares the guard");
        assert_eq!(log.verify_txn(&first, Some(guard)).unwrap(), TxnVerification::Append);
        appended(&log, &first).await;
        assert_eq!(log.verify_txn(&txn_batch(&[b"b"], 5, 0, 1), None).unwrap(), TxnVerification::Append, "open here: appended directly");
        assert_eq!(log.verify_txn(&make_batch(&[b"p"], 0, -1, -1), None).unwrap(), TxnVerification::Append);
        assert!(matches!(log.append(&make_batch(&[b"m"], 0, 5, 1), -1), Err(StorageError::InvalidTxnState(_))),
            "a plain batch inside an open transaction");
        marker(&log, 5, 0, true).await;
        let next = txn_batch(&[b"c"], 5, 0, 1);
        let TxnVerification::Verify(g2) = log.verify_txn(&next, None).unwrap() else { panic!("a new transaction is verified again") };
        marker(&log, 5, 0, false).await;
        assert!(matches!(log.verify_txn(&next, Some(g2)), Err(StorageError::InvalidTxnState(_))), "a marker clears the guard");
        let forged = crate::storage::txn::ControlMarker { commit: true, coordinator_epoch: 0 }.build(5, 0, 0);
        assert!(matches!(log.append(&forged, -1), Err(StorageError::CorruptBatch(_))), "clients write no markers");
    });
}

/// A leader's stored batch: `raw` stamped at `offset` and leader epoch 1.
fn as_leader_stored(raw: &bytes::Bytes, offset: i64) -> bytes::Bytes {
    batch::stamp(raw, offset, 1, None).to_bytes()
}

#[test]
fn a_follower_tracks_transactions_from_its_leaders_batches_and_truncation_reopens_a_cut_one() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        let abort = crate::storage::txn::ControlMarker { commit: false, coordinator_epoch: 2 };
        let mut leader = Vec::new();
        leader.extend_from_slice(&as_leader_stored(&txn_batch(&[b"a", b"b"], 9, 0, 0), 0));
        leader.extend_from_slice(&as_leader_stored(&make_batch(&[b"p"], 1, -1, -1), 2));
        leader.extend_from_slice(&as_leader_stored(&abort.build(9, 0, 1), 3));
        leader.extend_from_slice(&as_leader_stored(&txn_batch(&[b"c"], 9, 0, 2), 4));
        let out = log.append_as_follower(&bytes::Bytes::from(leader)).unwrap();
        out.done.unwrap().await.unwrap().unwrap();
        assert_eq!(log.aborted_txns(), vec![AbortedTxn { producer_id: 9, first_offset: 0, last_offset: 3, last_stable_offset: 4 }]);
        // A follower's high watermark comes from its leader.
        assert_eq!(log.last_stable_offset(), 0);
        log.set_high_watermark(3);
        assert_eq!(log.last_stable_offset(), 0, "the abort marker is not below the high watermark");
        log.set_high_watermark(5);
        assert_eq!(log.last_stable_offset(), 4, "held by the transaction opened at 4");
        log.truncate_to(4).await.unwrap();
        assert_eq!(log.last_stable_offset(), 4);
        assert_eq!(log.active_producers()[0].current_txn_start_offset, -1);
        assert_eq!(log.aborted_txns().len(), 1);
        log.truncate_to(3).await.unwrap();
        assert!(log.aborted_txns().is_empty(), "the cut marker's abort is gone");
        assert_eq!(log.active_producers()[0].current_txn_start_offset, 0, "its transaction is open again");
    });
}

#[test]
fn a_producer_snapshot_of_the_old_version_is_not_read_and_the_log_is_replayed() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        appended(&log, &txn_batch(&[b"a"], 4, 0, 0)).await;
        appended(&log, &make_batch(&[b"p"], 1, -1, -1)).await;
        log.close().await.unwrap();
        drop(log);
        // Version 0 (before transactions): no producers, end offset 2, and a valid CRC.
        let mut old = Vec::new();
        old.extend_from_slice(&0u16.to_be_bytes());
        old.extend_from_slice(&2i64.to_be_bytes());
        old.extend_from_slice(&0u32.to_be_bytes());
        old.extend_from_slice(&crc32c::crc32c(&old).to_be_bytes());
        std::fs::write(dir.join("t-0").join(PRODUCER_SNAPSHOT), old).unwrap();
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.last_stable_offset(), 0, "the open transaction came back from the log, not the old snapshot");
        assert_eq!(log.active_producers().len(), 1);
    });
}
