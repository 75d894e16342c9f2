//! The leader's view of one partition's replicas: their log ends, the in-sync replica set
//! (ISR), the high watermark, and the produce requests waiting for it. Pure state, as Kafka's
//! `Partition.scala` and `Replica.scala` keep it: no I/O, no timers, no executor. The caller
//! (the partition's owner shard) feeds it follower fetches and leader appends, sends the ISR
//! changes it proposes to the controller (AlterPartition), and moves the log's high watermark.
//!
//! ```text
//!  follower Fetch(offset) ─► on_follower_fetch ─┐
//!  leader append ─────────► on_leader_append ───┼─► high_watermark() ─► log.set_high_watermark
//!                                               │                   └─► AckWaiters::on_high_watermark
//!  timer ─► shrink_candidates / expand_candidate ─► set_pending_isr ─► AlterPartition ─► set_isr
//! ```

use std::collections::BTreeMap;

use futures::channel::oneshot;

#[cfg(test)]
mod tests;

/// Why an `acks=all` produce is not acknowledged. `crate::error` maps each to a Kafka code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// Before the append: the ISR is smaller than `min.insync.replicas` (Kafka checks the
    /// committed ISR, and appends nothing).
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicas {
        /// Size of the ISR.
        isr: usize,
        /// The topic's `min.insync.replicas`.
        min_isr: usize,
    },
    /// After the append: the high watermark covers the batch, but the ISR that holds it is
    /// smaller than `min.insync.replicas`.
    #[error("offset {required} is replicated to {isr} in-sync replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicasAfterAppend {
        /// The offset the high watermark had to reach.
        required: i64,
        /// Size of the (maximal) ISR when it did.
        isr: usize,
        /// The topic's `min.insync.replicas`.
        min_isr: usize,
    },
    /// This broker stopped leading the partition before the high watermark got there.
    #[error("no longer the partition's leader")]
    NotLeaderOrFollower,
}

/// What the leader knows of one follower (Kafka's `ReplicaState`).
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// The follower's log end: the offset of its last fetch; -1 until its first fetch to this
    /// leader.
    log_end: i64,
    /// The last time the follower was caught up (0: never, under this leader).
    last_caught_up_ms: i64,
    /// The leader's log end at the follower's previous fetch (-1: none yet).
    last_fetch_leader_log_end: i64,
    /// When that previous fetch came (0: none yet).
    last_fetch_ms: i64,
}

impl FollowerState {
    /// Kafka's `isCaughtUp`: at the leader's end, or caught up within the last `max_lag_ms`.
    fn caught_up(&self, leader_log_end: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        self.log_end >= leader_log_end || now_ms - self.last_caught_up_ms <= max_lag_ms
    }
}

/// The leader's view of one partition's replicas, from the moment it became leader (a new
/// tracker per leader epoch).
///
/// The high watermark is the smallest log end over the ISR, the leader included. While an
/// AlterPartition is in flight ([`ReplicaTracker::set_pending_isr`]) it is the smallest over the
/// *maximal* ISR, the committed one and the proposed one together (Kafka's `PendingExpandIsr` /
/// `PendingShrinkIsr`): a shrink takes effect only once committed, and a joining replica counts
/// from its proposal, so an `acks=all` is never released on a set that is not yet, or no longer,
/// the controller's. It never moves back.
#[derive(Debug, Clone)]
pub struct ReplicaTracker {
    leader: i32,
    /// The partition's replicas, in assignment order.
    replicas: Vec<i32>,
    /// The ISR the controller committed.
    isr: Vec<i32>,
    /// The ISR an in-flight AlterPartition proposes.
    pending: Option<Vec<i32>>,
    followers: BTreeMap<i32, FollowerState>,
    leader_log_end: i64,
    /// Where the leader's current epoch starts: its log end when it became leader. A replica
    /// joins the ISR only once it holds that much (Kafka's `leaderEpochStartOffsetOpt`).
    epoch_start: i64,
    high_watermark: i64,
}

impl ReplicaTracker {
    /// The state of a new leader `leader` of `replicas`, with the controller's `isr`, whose log
    /// ends at `leader_log_end` (which is also where its epoch starts). Followers' log ends are
    /// unknown until they fetch, so the high watermark starts at 0 unless the ISR is the leader
    /// alone; an in-sync follower counts as caught up now, any other as never (Kafka's
    /// `resetReplicaState` for a new leader).
    pub fn new(leader: i32, replicas: Vec<i32>, isr: Vec<i32>, leader_log_end: i64, now_ms: i64) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&r| r != leader)
            .map(|&r| {
                let last_caught_up_ms = if isr.contains(&r) { now_ms } else { 0 };
                (r, FollowerState { log_end: -1, last_caught_up_ms, last_fetch_leader_log_end: -1, last_fetch_ms: 0 })
            })
            .collect();
        let mut tracker = ReplicaTracker {
            leader,
            replicas,
            isr,
            pending: None,
            followers,
            leader_log_end,
            epoch_start: leader_log_end,
            high_watermark: 0,
        };
        tracker.update_high_watermark();
        tracker
    }

    /// A follower fetched from `fetch_offset` (its log end) when the leader's log ended at
    /// `leader_log_end`. Kafka's `updateFetchState`: caught up now if it asked for the leader's
    /// end, or caught up as of its previous fetch if it asked for at least what the leader had
    /// then. Returns `false` (and changes nothing) when `replica` is not one of the followers.
    pub fn on_follower_fetch(&mut self, replica: i32, fetch_offset: i64, leader_log_end: i64, now_ms: i64) -> bool {
        self.leader_log_end = self.leader_log_end.max(leader_log_end);
        let Some(f) = self.followers.get_mut(&replica) else { return false };
        if fetch_offset >= leader_log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_leader_log_end = leader_log_end;
        f.last_fetch_ms = now_ms;
        self.update_high_watermark();
        true
    }

    /// The leader's log grew to `leader_log_end` (an ISR of the leader alone moves the high
    /// watermark with it).
    pub fn on_leader_append(&mut self, leader_log_end: i64) {
        self.leader_log_end = self.leader_log_end.max(leader_log_end);
        self.update_high_watermark();
    }

    /// The high watermark: the smallest log end over the (maximal) ISR and the leader, never
    /// below what it was.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The ISR the controller committed.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The ISR an in-flight AlterPartition proposes, if one is in flight.
    pub fn pending_isr(&self) -> Option<&[i32]> {
        self.pending.as_deref()
    }

    /// The committed ISR and the proposed one together: what the high watermark waits for, and
    /// what `acks=all` counts (Kafka's `maximalIsr`).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        for r in self.pending.iter().flatten() {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        all
    }

    /// A follower's log end as of its last fetch; `None` for an unknown replica, -1 before its
    /// first fetch.
    pub fn follower_log_end(&self, replica: i32) -> Option<i64> {
        self.followers.get(&replica).map(|f| f.log_end)
    }

    /// Kafka's check before an `acks=all` append: the committed ISR must have at least
    /// `min_isr` members, or nothing is appended (NOT_ENOUGH_REPLICAS).
    pub fn check_min_isr(&self, min_isr: usize) -> Result<(), AckError> {
        let isr = self.isr_with_leader_len();
        if isr < min_isr {
            return Err(AckError::NotEnoughReplicas { isr, min_isr });
        }
        Ok(())
    }

    /// The ISR without the followers that are out of sync: not caught up within
    /// `replica_lag_time_max_ms` (Kafka's `getOutOfSyncReplicas`). `None` when every follower
    /// in the ISR is in sync, or while an AlterPartition is in flight. The leader is never
    /// proposed for removal.
    pub fn shrink_candidates(&self, now_ms: i64, replica_lag_time_max_ms: i64) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let in_sync = |r: &i32| {
            *r == self.leader
                || self.followers.get(r).is_some_and(|f| f.caught_up(self.leader_log_end, now_ms, replica_lag_time_max_ms))
        };
        let kept: Vec<i32> = self.isr.iter().copied().filter(in_sync).collect();
        (kept.len() < self.isr.len()).then_some(kept)
    }

    /// The ISR with the replicas that may join it: outside the ISR, with a log end at least the
    /// high watermark and at least the start of the leader's epoch (Kafka's `isFollowerInSync`),
    /// all that qualify at once, in assignment order. `None` when none does, or while an
    /// AlterPartition is in flight.
    pub fn expand_candidate(&self) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let joins = |r: &&i32| {
            !self.isr.contains(r)
                && self.followers.get(r).is_some_and(|f| f.log_end >= self.high_watermark && f.log_end >= self.epoch_start)
        };
        let joining: Vec<i32> = self.replicas.iter().filter(joins).copied().collect();
        if joining.is_empty() {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.extend(joining);
        Some(isr)
    }

    /// An AlterPartition proposing `proposed` is in flight: until it is answered, the high
    /// watermark waits for the committed and the proposed ISR together.
    pub fn set_pending_isr(&mut self, proposed: Vec<i32>) {
        self.pending = Some(proposed);
        self.update_high_watermark();
    }

    /// The in-flight AlterPartition failed: the committed ISR stands alone again.
    pub fn clear_pending_isr(&mut self) {
        self.pending = None;
        self.update_high_watermark();
    }

    /// The controller committed `isr` (the answer to AlterPartition, or a change it made): it
    /// replaces the ISR and ends any pending proposal. A shrink may let the high watermark move.
    pub fn set_isr(&mut self, isr: Vec<i32>) {
        self.isr = isr;
        self.pending = None;
        self.update_high_watermark();
    }

    /// The controller changed the replicas in the same leader epoch (a KIP-455 reassignment
    /// adds replicas): a new follower starts as never caught up and unknown until it fetches; a
    /// replica that left is forgotten.
    pub fn set_replicas(&mut self, replicas: Vec<i32>) {
        let leader = self.leader;
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas.iter().filter(|&&r| r != leader) {
            self.followers
                .entry(r)
                .or_insert(FollowerState { log_end: -1, last_caught_up_ms: 0, last_fetch_leader_log_end: -1, last_fetch_ms: 0 });
        }
        self.replicas = replicas;
        self.update_high_watermark();
    }

    /// Size of the committed ISR, counting the leader even if the controller's list lacks it.
    fn isr_with_leader_len(&self) -> usize {
        self.isr.len() + usize::from(!self.isr.contains(&self.leader))
    }

    /// Recomputes the high watermark over the maximal ISR. An ISR member the tracker knows no
    /// log end of (not yet fetched, or not among the replicas) holds it where it is.
    fn update_high_watermark(&mut self) {
        let mut hw = self.leader_log_end;
        for r in self.maximal_isr() {
            if r != self.leader {
                hw = hw.min(self.followers.get(&r).map_or(-1, |f| f.log_end));
            }
        }
        self.high_watermark = self.high_watermark.max(hw);
    }
}

/// What an `acks=all` produce waits on: `Ok` once the high watermark reaches its offset with
/// enough replicas in sync.
pub type AckReceiver = oneshot::Receiver<Result<(), AckError>>;

/// The `acks=all` produces of one partition waiting for its high watermark (Kafka's delayed
/// produce purgatory, for one partition). `!Send` is fine: it lives on the owner shard.
///
/// A waiter whose receiver was dropped (its request timed out, or the connection went) is
/// pruned at the next [`AckWaiters::on_high_watermark`]. When the `AckWaiters` itself is
/// dropped, every receiver sees `Canceled`: treat that as NOT_LEADER_OR_FOLLOWER, as
/// [`AckWaiters::abandon_all`] says it.
#[derive(Debug, Default)]
pub struct AckWaiters {
    /// Waiters by the offset the high watermark must reach.
    waiting: BTreeMap<i64, Vec<oneshot::Sender<Result<(), AckError>>>>,
    /// The last high watermark, ISR size and `min.insync.replicas` seen.
    last: Option<(i64, usize, usize)>,
}

impl AckWaiters {
    /// No waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until the high watermark reaches `required_offset` (an append's last offset + 1).
    /// Answered at once when the last high watermark seen already covers it.
    pub fn register(&mut self, required_offset: i64) -> AckReceiver {
        let (tx, rx) = oneshot::channel();
        match self.last {
            Some((hw, isr_len, min_isr)) if hw >= required_offset => {
                let _ = tx.send(Self::outcome(required_offset, isr_len, min_isr));
            }
            _ => self.waiting.entry(required_offset).or_default().push(tx),
        }
        rx
    }

    /// The high watermark is `hw` with `isr_len` replicas in the (maximal) ISR: every waiter it
    /// covers is answered, `Ok` when `isr_len` is at least `min_isr`, else
    /// [`AckError::NotEnoughReplicasAfterAppend`] (Kafka's `checkEnoughReplicasReachOffset`).
    /// Waiters above `hw` wait on: the ISR may grow back before their request times out.
    pub fn on_high_watermark(&mut self, hw: i64, isr_len: usize, min_isr: usize) {
        self.last = Some((hw, isr_len, min_isr));
        let above = self.waiting.split_off(&hw.saturating_add(1));
        for (required, senders) in std::mem::replace(&mut self.waiting, above) {
            for tx in senders {
                let _ = tx.send(Self::outcome(required, isr_len, min_isr));
            }
        }
        self.waiting.retain(|_, senders| {
            senders.retain(|tx| !tx.is_canceled());
            !senders.is_empty()
        });
    }

    /// The leader stepped down: every waiter is answered [`AckError::NotLeaderOrFollower`].
    pub fn abandon_all(&mut self) {
        self.last = None;
        for tx in std::mem::take(&mut self.waiting).into_values().flatten() {
            let _ = tx.send(Err(AckError::NotLeaderOrFollower));
        }
    }

    /// How many waiters wait.
    pub fn len(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn outcome(required: i64, isr_len: usize, min_isr: usize) -> Result<(), AckError> {
        if isr_len < min_isr {
            return Err(AckError::NotEnoughReplicasAfterAppend { required, isr: isr_len, min_isr });
        }
        Ok(())
    }
}
