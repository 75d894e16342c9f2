//! Each of Kafka's ISR and high-watermark rules, checked against the outcome that breaking it
//! would change.

use super::*;

const LAG: i64 = 30_000;

/// Leader 1 of replicas 1, 2, 3, all in sync, its log ending at 100, at t = 1000.
fn three_in_sync() -> ReplicaTracker {
    ReplicaTracker::new(1, vec![1, 2, 3], vec![1, 2, 3], 100, 1_000)
}

#[test]
fn the_high_watermark_is_the_smallest_log_end_over_the_isr_and_the_leader_and_never_moves_back() {
    let alone = ReplicaTracker::new(1, vec![1, 2], vec![1], 50, 0);
    assert_eq!(alone.high_watermark(), 50, "an ISR of the leader alone: its log end");

    let mut t = three_in_sync();
    assert_eq!(t.high_watermark(), 0, "followers' log ends unknown until they fetch");
    assert!(t.on_follower_fetch(2, 100, 100, 1_001));
    assert_eq!(t.high_watermark(), 0, "replica 3 has not fetched yet");
    t.on_follower_fetch(3, 80, 100, 1_001);
    assert_eq!(t.high_watermark(), 80, "the slowest in-sync follower");
    t.on_leader_append(120);
    t.on_follower_fetch(3, 120, 120, 1_002);
    assert_eq!(t.high_watermark(), 100, "replica 2 still at 100");
    t.on_follower_fetch(2, 90, 120, 1_003);
    assert_eq!(t.high_watermark(), 100, "a follower that went back does not take it back");
    t.on_follower_fetch(2, 120, 120, 1_004);
    assert_eq!(t.high_watermark(), 120);
    t.on_follower_fetch(2, 500, 120, 1_005);
    assert_eq!(t.high_watermark(), 120, "never past the leader's own log end");
}

#[test]
fn a_replica_outside_the_isr_does_not_hold_the_high_watermark_and_an_unknown_one_is_refused() {
    let mut t = ReplicaTracker::new(1, vec![1, 2, 3], vec![1, 2], 100, 0);
    t.on_follower_fetch(2, 100, 100, 1);
    assert_eq!(t.high_watermark(), 100, "replica 3 is out of the ISR and has not fetched");
    assert!(!t.on_follower_fetch(9, 10, 100, 2), "9 is no replica");
    assert_eq!(t.follower_log_end(9), None);
    assert_eq!(t.high_watermark(), 100);
    let mut only_leader_is_in_sync = ReplicaTracker::new(1, vec![1, 2], vec![1], 10, 0);
    only_leader_is_in_sync.on_leader_append(40);
    assert_eq!(only_leader_is_in_sync.high_watermark(), 40, "moves with the leader's appends");
}

#[test]
fn a_follower_is_caught_up_at_the_leaders_end_or_at_what_the_leader_had_at_its_previous_fetch() {
    let mut t = ReplicaTracker::new(1, vec![1, 2], vec![1, 2], 100, 0);
    // t=0: in the ISR of a new leader, caught up now.
    assert_eq!(t.shrink_candidates(LAG, LAG), None, "caught up at 0, within the lag at 30000");
    assert_eq!(t.shrink_candidates(LAG + 1, LAG), Some(vec![1]), "not caught up since 0");

    // At 10000 it reaches the leader's end (100): caught up at 10000.
    t.on_follower_fetch(2, 100, 100, 10_000);
    // At 20000 the leader is at 150; the follower asks for 100 (>= the leader's end at its
    // previous fetch): caught up as of that previous fetch, 10000.
    t.on_follower_fetch(2, 100, 150, 20_000);
    assert_eq!(t.shrink_candidates(10_000 + LAG, LAG), None);
    assert_eq!(t.shrink_candidates(10_000 + LAG + 1, LAG), Some(vec![1]), "not caught up as of 20000");
    // At 30000 it asks for 140: below the end now (200) and below the end at its previous fetch
    // (150): no progress recorded.
    t.on_follower_fetch(2, 140, 200, 30_000);
    assert_eq!(t.shrink_candidates(10_000 + LAG + 1, LAG), Some(vec![1]));
    // At 40000 it asks for 200, the end at its previous fetch, while the leader is at 260:
    // caught up as of 30000.
    t.on_follower_fetch(2, 200, 260, 40_000);
    assert_eq!(t.shrink_candidates(30_000 + LAG, LAG), None);
    assert_eq!(t.shrink_candidates(30_000 + LAG + 1, LAG), Some(vec![1]));
    // A follower at the leader's end is in sync however long ago it last caught up.
    t.on_leader_append(260);
    let mut at_end = t.clone();
    at_end.on_follower_fetch(2, 260, 260, 40_000);
    assert_eq!(at_end.shrink_candidates(i64::MAX / 2, LAG), None);
}

#[test]
fn a_shrink_proposes_the_isr_without_lagging_followers_never_without_the_leader_and_not_while_pending() {
    let mut t = three_in_sync();
    t.on_follower_fetch(2, 100, 100, 5_000);
    // The leader moves on: neither follower is at its end any more.
    t.on_leader_append(150);
    assert_eq!(t.shrink_candidates(1_000 + LAG, LAG), None, "all in sync");
    assert_eq!(t.shrink_candidates(1_000 + LAG + 1, LAG), Some(vec![1, 2]), "3 has not caught up since the election");
    assert_eq!(t.shrink_candidates(5_000 + LAG + 1, LAG), Some(vec![1]), "neither has");
    // A leader that lost everything keeps itself: the proposal is never without it.
    let lonely = ReplicaTracker::new(1, vec![1, 2], vec![1, 2], 0, 0);
    assert_eq!(lonely.shrink_candidates(i64::MAX / 2, LAG), Some(vec![1]));
    // An ISR member that is not among the replicas is out of sync.
    let odd = ReplicaTracker::new(1, vec![1, 2], vec![1, 2, 7], 0, 0);
    assert_eq!(odd.shrink_candidates(1, LAG), Some(vec![1, 2]));

    t.set_pending_isr(vec![1]);
    assert_eq!(t.shrink_candidates(5_000 + LAG + 1, LAG), None, "one AlterPartition at a time");
    t.set_isr(vec![1]);
    assert_eq!(t.isr(), &[1]);
    assert_eq!(t.pending_isr(), None);
    assert_eq!(t.shrink_candidates(i64::MAX / 2, LAG), None, "nothing left to remove");
}

#[test]
fn a_replica_joins_at_the_high_watermark_and_the_start_of_the_leaders_epoch() {
    // Leader 1 elected with its log at 100; 2 in sync, 3 and 4 out.
    let mut t = ReplicaTracker::new(1, vec![1, 2, 3, 4], vec![1, 2], 100, 0);
    t.on_leader_append(150);
    t.on_follower_fetch(2, 120, 150, 1);
    assert_eq!(t.high_watermark(), 120);
    t.on_follower_fetch(3, 110, 150, 1);
    assert_eq!(t.expand_candidate(), None, "3 is below the high watermark");
    t.on_follower_fetch(3, 120, 150, 2);
    assert_eq!(t.expand_candidate(), Some(vec![1, 2, 3]), "3 holds the high watermark and the epoch's start");
    t.on_follower_fetch(4, 150, 150, 2);
    assert_eq!(t.expand_candidate(), Some(vec![1, 2, 3, 4]), "every replica that qualifies, in assignment order");
    t.set_pending_isr(vec![1, 2, 3, 4]);
    assert_eq!(t.expand_candidate(), None, "one AlterPartition at a time");
    t.clear_pending_isr();
    assert_eq!(t.expand_candidate(), Some(vec![1, 2, 3, 4]), "a failed AlterPartition may be proposed again");

    // The epoch's start binds even when the high watermark is lower: an ISR of the leader alone
    // that has not advanced its high watermark past an old value.
    let mut fresh = ReplicaTracker::new(1, vec![1, 2], vec![1, 2], 100, 0);
    fresh.set_isr(vec![1]);
    assert_eq!(fresh.high_watermark(), 100);
    fresh.on_follower_fetch(2, 90, 100, 1);
    assert_eq!(fresh.expand_candidate(), None, "90 is below the epoch's start at 100");
    let mut below_epoch = ReplicaTracker::new(1, vec![1, 2, 3], vec![1, 2], 100, 0);
    below_epoch.on_follower_fetch(3, 99, 100, 1);
    assert_eq!(below_epoch.high_watermark(), 0, "2 has not fetched: the high watermark is still 0");
    assert_eq!(below_epoch.expand_candidate(), None, "99 is at the high watermark but below the epoch's start");
    below_epoch.on_follower_fetch(3, 100, 100, 2);
    assert_eq!(below_epoch.expand_candidate(), Some(vec![1, 2, 3]));
}

#[test]
fn while_an_alter_partition_is_in_flight_the_high_watermark_waits_for_the_maximal_isr() {
    // Shrink: 3 lags; until the controller commits its removal, it still holds the HW.
    let mut t = three_in_sync();
    t.on_follower_fetch(2, 100, 100, 1);
    t.on_follower_fetch(3, 60, 100, 1);
    assert_eq!(t.high_watermark(), 60);
    t.set_pending_isr(vec![1, 2]);
    assert_eq!(t.maximal_isr(), vec![1, 2, 3]);
    t.on_follower_fetch(2, 100, 100, 2);
    assert_eq!(t.high_watermark(), 60, "the shrink is not committed: 3 still counts");
    t.set_isr(vec![1, 2]);
    assert_eq!(t.high_watermark(), 100, "committed: 3 no longer holds it");

    // Expand: 3 catches up and is proposed; from then on it holds the HW.
    t.on_follower_fetch(3, 100, 100, 3);
    t.on_leader_append(200);
    t.set_pending_isr(vec![1, 2, 3]);
    t.on_follower_fetch(2, 200, 200, 4);
    assert_eq!(t.high_watermark(), 100, "the proposed joiner counts");
    t.clear_pending_isr();
    assert_eq!(t.high_watermark(), 200, "the proposal failed: the committed ISR alone");
    assert_eq!(t.maximal_isr(), vec![1, 2]);
}

#[test]
fn min_insync_replicas_is_checked_on_the_committed_isr_before_an_append() {
    let mut t = three_in_sync();
    assert_eq!(t.check_min_isr(3), Ok(()));
    t.set_pending_isr(vec![1]);
    assert_eq!(t.check_min_isr(3), Ok(()), "a shrink is not in force until committed");
    t.set_isr(vec![1, 2]);
    assert_eq!(t.check_min_isr(2), Ok(()));
    assert_eq!(t.check_min_isr(3), Err(AckError::NotEnoughReplicas { isr: 2, min_isr: 3 }));
    t.set_isr(vec![2]);
    assert_eq!(t.check_min_isr(2), Ok(()), "the leader counts even if the list lacks it");
}

#[test]
fn ack_waiters_are_answered_when_the_high_watermark_covers_them_with_enough_replicas() {
    let mut w = AckWaiters::new();
    let mut a = w.register(10);
    let mut b = w.register(20);
    let mut c = w.register(20);
    assert_eq!(w.len(), 3);
    w.on_high_watermark(9, 3, 2);
    assert_eq!(a.try_recv(), Ok(None), "the high watermark is below 10");
    w.on_high_watermark(10, 3, 2);
    assert_eq!(a.try_recv(), Ok(Some(Ok(()))));
    assert_eq!(b.try_recv(), Ok(None));
    // The ISR fell below min.insync.replicas before the high watermark reached 20.
    w.on_high_watermark(25, 1, 2);
    let failed = Err(AckError::NotEnoughReplicasAfterAppend { required: 20, isr: 1, min_isr: 2 });
    assert_eq!(b.try_recv(), Ok(Some(failed.clone())));
    assert_eq!(c.try_recv(), Ok(Some(failed)));
    assert!(w.is_empty());
    // Already covered when registered: answered at once, with the ISR as last seen.
    let mut d = w.register(25);
    assert_eq!(d.try_recv(), Ok(Some(Err(AckError::NotEnoughReplicasAfterAppend { required: 25, isr: 1, min_isr: 2 }))));
    let mut e = w.register(26);
    assert_eq!(e.try_recv(), Ok(None));
    w.on_high_watermark(30, 2, 2);
    assert_eq!(e.try_recv(), Ok(Some(Ok(()))));
}

#[test]
fn ack_waiters_drop_abandoned_receivers_and_answer_not_leader_when_the_leader_steps_down() {
    let mut w = AckWaiters::new();
    let timed_out = w.register(50);
    let mut kept = w.register(60);
    drop(timed_out);
    w.on_high_watermark(10, 3, 2);
    assert_eq!(w.len(), 1, "the dropped receiver's waiter is pruned");
    w.abandon_all();
    assert_eq!(kept.try_recv(), Ok(Some(Err(AckError::NotLeaderOrFollower))));
    assert!(w.is_empty());
    let mut later = w.register(5);
    assert_eq!(later.try_recv(), Ok(None), "a new term starts with no high watermark seen");
    drop(w);
    assert!(later.try_recv().is_err(), "dropped waiters: the receiver sees Canceled");
}

#[test]
fn a_replica_added_by_a_reassignment_is_tracked_and_joins_once_caught_up() {
    let mut t = ReplicaTracker::new(1, vec![1, 2], vec![1, 2], 100, 1_000);
    t.on_follower_fetch(2, 100, 100, 1_001);
    assert!(!t.on_follower_fetch(3, 100, 100, 1_001), "3 is no replica yet");
    t.set_replicas(vec![2, 3, 1]);
    assert_eq!(t.follower_log_end(3), Some(-1), "known, not fetched yet");
    assert_eq!(t.expand_candidate(), None, "not caught up");
    assert!(t.on_follower_fetch(3, 50, 100, 1_002));
    assert_eq!(t.expand_candidate(), None, "behind the high watermark");
    t.on_follower_fetch(3, 100, 100, 1_003);
    assert_eq!(t.expand_candidate(), Some(vec![1, 2, 3]));
    assert_eq!(t.follower_log_end(2), Some(100), "an existing follower keeps its state");
    t.set_replicas(vec![1, 3]);
    assert_eq!(t.follower_log_end(2), None, "a removed replica is forgotten");
}
