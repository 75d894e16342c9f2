use super::*;
use crate::storage::cleaner::txns::TxnVerdict;
use crate::storage::batch::{self, RecordRef};
use crate::storage::cleaner::offset_map::OffsetMap;

/// An uncompressed batch of `records` stamped at `base`, timestamps 1000, 1001, ...
pub(crate) fn keyed_batch(records: &[RecordRef<'_>], base: i64, producer_id: i64) -> Bytes {
    batch::stamp(&batch::build(records, 1000, producer_id, if producer_id >= 0 { 0 } else { -1 }), base, 3, None).to_bytes()
}

/// `batch` recompressed with `codec` (same offsets and fields).
pub(crate) fn compressed(batch: &Bytes, codec: Codec) -> Bytes {
    let (mut h, records) = read_records(batch).unwrap();
    h.attributes = (h.attributes & !0x07) | codec.id();
    build_batch(&h, &records, None).unwrap()
}

fn map_of(entries: &[(&[u8], i64)]) -> OffsetMap {
    let mut map = OffsetMap::new(1 << 16, 0.9);
    for (k, o) in entries {
        assert!(map.put(k, *o));
    }
    map
}

fn kept(batch: &Bytes) -> Vec<(i64, Option<Bytes>, bool)> {
    read_records(batch).unwrap().1.into_iter().map(|r| (r.offset, r.key, r.tombstone)).collect()
}

#[test]
fn superseded_and_keyless_records_go_and_offsets_stay() {
    let b = keyed_batch(&[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2")), (None, Some(b"x")), (Some(b"a"), Some(b"3"))], 10, -1);
    let map = map_of(&[(b"a", 13), (b"b", 11)]);
    let rules = RetainRules { map: &map, now: 5000, delete_retention_ms: 100 };
    let (out, outcome) = rewrite_batch(&b, &rules, TxnVerdict::Keep, false).unwrap();
    let Rewritten::Changed(nb) = out else { panic!("expected a rewrite, got {out:?}") };
    batch::validate(&nb).unwrap();
    let h = BatchHeader::parse(&nb).unwrap();
    assert_eq!((h.base_offset, h.last_offset(), h.records_count), (10, 13, 2), "offset range kept");
    assert_eq!(kept(&nb), vec![(11, Some(Bytes::from_static(b"b")), false), (13, Some(Bytes::from_static(b"a")), false)]);
    assert_eq!((outcome.kept, outcome.removed), (2, 2));
    let values: Vec<_> = batch::records(&nb).unwrap().into_iter().map(|r| (r.timestamp, r.value)).collect();
    assert_eq!(values, vec![(1001, Some(Bytes::from_static(b"2"))), (1003, Some(Bytes::from_static(b"3")))]);
}

#[test]
fn a_batch_whose_records_all_stay_is_left_alone() {
    let b = keyed_batch(&[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2"))], 0, -1);
    let map = map_of(&[(b"a", 0)]);
    let rules = RetainRules { map: &map, now: 0, delete_retention_ms: 100 };
    assert!(matches!(rewrite_batch(&b, &rules, TxnVerdict::Keep, false).unwrap().0, Rewritten::Same));
}

#[test]
fn tombstones_get_a_horizon_then_go_after_it() {
    let b = keyed_batch(&[(Some(b"a"), None), (Some(b"b"), Some(b"v"))], 20, -1);
    let map = map_of(&[(b"a", 20), (b"b", 21)]);
    let first = RetainRules { map: &map, now: 10_000, delete_retention_ms: 500 };
    let (out, outcome) = rewrite_batch(&b, &first, TxnVerdict::Keep, false).unwrap();
    let Rewritten::Changed(stamped) = out else { panic!("the horizon must be stamped") };
    let h = BatchHeader::parse(&stamped).unwrap();
    assert_eq!((delete_horizon(&h), outcome.horizon), (Some(10_500), Some(10_500)));
    // Record timestamps survive the new base timestamp.
    let ts: Vec<_> = batch::records(&stamped).unwrap().iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, vec![1000, 1001]);
    // Before the horizon: kept as it is.
    let before = RetainRules { map: &map, now: 10_499, delete_retention_ms: 500 };
    assert!(matches!(rewrite_batch(&stamped, &before, TxnVerdict::Keep, false).unwrap().0, Rewritten::Same));
    // After: the tombstone goes, the live record stays, and the horizon bit is cleared.
    let after = RetainRules { map: &map, now: 10_500, delete_retention_ms: 500 };
    let Rewritten::Changed(clean) = rewrite_batch(&stamped, &after, TxnVerdict::Keep, false).unwrap().0 else { panic!("tombstone must go") };
    let h = BatchHeader::parse(&clean).unwrap();
    assert_eq!(delete_horizon(&h), None);
    assert_eq!(kept(&clean), vec![(21, Some(Bytes::from_static(b"b")), false)]);
    assert_eq!(batch::records(&clean).unwrap()[0].timestamp, 1001);
}

#[test]
fn the_last_batch_of_a_producer_stays_empty() {
    let b = keyed_batch(&[(Some(b"a"), Some(b"1"))], 5, 77);
    let map = map_of(&[(b"a", 9)]);
    let rules = RetainRules { map: &map, now: 0, delete_retention_ms: 0 };
    assert!(matches!(rewrite_batch(&b, &rules, TxnVerdict::Keep, false).unwrap().0, Rewritten::Dropped));
    let Rewritten::Changed(empty) = rewrite_batch(&b, &rules, TxnVerdict::Keep, true).unwrap().0 else { panic!("kept empty") };
    batch::validate(&empty).unwrap();
    let h = BatchHeader::parse(&empty).unwrap();
    assert_eq!((h.records_count, h.base_offset, h.last_offset(), h.producer_id, h.base_sequence), (0, 5, 5, 77, 0));
}

#[test]
fn a_marker_stays_while_its_transaction_has_batches_then_goes_after_its_horizon() {
    let marker = crate::storage::txn::ControlMarker { commit: true, coordinator_epoch: 0 }.build(77, 0, 0);
    let map = map_of(&[(b"a", 9)]);
    let rules = RetainRules { map: &map, now: 1_000, delete_retention_ms: 500 };
    assert!(matches!(rewrite_batch(&marker, &rules, TxnVerdict::Keep, false).unwrap().0, Rewritten::Same));
    let (out, seen) = rewrite_batch(&marker, &rules, TxnVerdict::EmptyTxnMarker, false).unwrap();
    let Rewritten::Changed(stamped) = out else { panic!("an empty transaction's marker gets a horizon, got {out:?}") };
    let h = BatchHeader::parse(&stamped).unwrap();
    assert_eq!((delete_horizon(&h), seen.horizon, h.is_control(), h.records_count), (Some(1_500), Some(1_500), true, 1));
    assert_eq!(crate::storage::txn::ControlMarker::parse(&stamped).map(|m| m.commit), Some(true), "still a commit marker");
    let before = RetainRules { map: &map, now: 1_499, delete_retention_ms: 500 };
    assert!(matches!(rewrite_batch(&stamped, &before, TxnVerdict::EmptyTxnMarker, false).unwrap().0, Rewritten::Same));
    let after = RetainRules { map: &map, now: 1_500, delete_retention_ms: 500 };
    assert!(matches!(rewrite_batch(&stamped, &after, TxnVerdict::EmptyTxnMarker, false).unwrap().0, Rewritten::Dropped));
    let (kept, seen) = rewrite_batch(&stamped, &after, TxnVerdict::EmptyTxnMarker, true).unwrap();
    assert!(matches!(kept, Rewritten::Same) && seen.horizon.is_none(), "the marker with its producer's epoch stays, due no more");
}

#[test]
fn compressed_batches_are_cleaned_and_keep_their_codec() {
    let plain = keyed_batch(&[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2")), (Some(b"a"), Some(b"3"))], 100, -1);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let b = compressed(&plain, codec);
        batch::validate(&b).unwrap();
        assert_eq!(BatchHeader::parse(&b).unwrap().compression(), codec.id());
        let map = map_of(&[(b"a", 102), (b"b", 101)]);
        let rules = RetainRules { map: &map, now: 0, delete_retention_ms: 0 };
        let Rewritten::Changed(nb) = rewrite_batch(&b, &rules, TxnVerdict::Keep, false).unwrap().0 else { panic!("{codec:?}: expected a rewrite") };
        batch::validate(&nb).unwrap();
        let h = BatchHeader::parse(&nb).unwrap();
        assert_eq!((h.compression(), h.records_count, h.last_offset()), (codec.id(), 2, 102), "{codec:?}");
        assert_eq!(kept(&nb).iter().map(|r| r.0).collect::<Vec<_>>(), vec![101, 102], "{codec:?}");
    }
}

/// `batch` marked transactional (attribute bit 0x10), CRC recomputed.
fn transactional(batch: &Bytes) -> Bytes {
    let (mut h, records) = read_records(batch).unwrap();
    h.attributes |= 0x10;
    build_batch(&h, &records, None).unwrap()
}

#[test]
fn an_aborted_transaction_goes_and_a_committed_one_is_compacted_like_any_batch() {
    let map = map_of(&[(b"a", 20)]);
    let rules = RetainRules { map: &map, now: 0, delete_retention_ms: 100 };
    let in_abort = transactional(&keyed_batch(&[(Some(b"z"), Some(b"1"))], 10, 7));
    assert!(matches!(rewrite_batch(&in_abort, &rules, TxnVerdict::Aborted, false).unwrap().0, Rewritten::Dropped), "aborted records go");
    let Rewritten::Changed(kept_empty) = rewrite_batch(&in_abort, &rules, TxnVerdict::Aborted, true).unwrap().0 else { panic!("the producer's last batch stays") };
    assert_eq!(BatchHeader::parse(&kept_empty).unwrap().records_count, 0);
    let committed = transactional(&keyed_batch(&[(Some(b"a"), Some(b"old")), (Some(b"b"), Some(b"2"))], 14, 7));
    let Rewritten::Changed(nb) = rewrite_batch(&committed, &rules, TxnVerdict::Keep, false).unwrap().0 else { panic!("superseded records go") };
    assert_eq!(kept(&nb), vec![(15, Some(Bytes::from_static(b"b")), false)]);
    assert!(BatchHeader::parse(&nb).unwrap().is_transactional(), "the batch stays transactional");
}
