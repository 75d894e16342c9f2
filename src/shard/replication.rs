//! Replication on the owner core: what this broker does for each replicated partition it holds.
//!
//! ```text
//!  metadata applied (shard 0) ─► partition_changes ─► PartitionChanges ─► apply_partition_changes
//!        Created / BecameLeader ─► leader: ReplicaTracker + AckWaiters; the log's epoch moves on
//!        BecameFollower ─────────► follower: a ReplicaFetcher on this core pulls from the leader
//!  follower Fetch (replica id) ─► on_replica_fetch ─► high watermark ─► acks=all answered
//!  tick ─► ISR shrink / expand ─► AlterPartition (to the active controller) ─► IsrChanged
//! ```
//!
//! The leader's high watermark is the smallest log end over the ISR (`cluster::isr`); an
//! `acks=all` produce is answered when it covers the batch and the ISR holds
//! `min.insync.replicas`. A follower appends what it fetches and fdatasyncs it before it asks
//! for more, so the log end it reports, and the high watermark built on it, is durable on every
//! in-sync replica: no acknowledged write depends on a page cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use uuid::Uuid;

use super::{Router, Shard};
use crate::cluster::client::BrokerPool;
use crate::cluster::fetcher::{FetchTarget, FollowerLog, StopSignal, run_fetcher};
use crate::cluster::isr::{AckError, AckReceiver, AckWaiters, ReplicaTracker};
use crate::codes::ErrorCode;
use crate::metadata::{MetadataError, MetadataMutation, PartitionChange};
use crate::storage::PartitionLog;
use crate::types::{TopicPartition, now_ms};

/// The leader's state of one partition it leads with other replicas.
struct Led {
    topic_id: Uuid,
    leader_epoch: i32,
    partition_epoch: i32,
    tracker: ReplicaTracker,
    waiters: AckWaiters,
    /// The AlterPartition in flight, by the partition epoch it was sent at: an answer to any
    /// other (an older proposal, overtaken by a change the controller made) is ignored, as
    /// Kafka's `handleAlterPartitionUpdate` ignores a response to a state it no longer proposes.
    in_flight: Option<i32>,
}

/// A running fetcher: how to stop it, and its task, to wait for its end.
type Fetching = (Rc<StopSignal>, glommio::task::JoinHandle<()>);

/// This core's replication state: the partitions it leads with followers, and the fetchers of
/// those it follows. `!Send`.
pub struct Replication {
    led: RefCell<HashMap<TopicPartition, Led>>,
    following: RefCell<HashMap<TopicPartition, Fetching>>,
    /// Connections to leaders, shared by this core's fetchers.
    pub(super) pool: Rc<BrokerPool>,
}

impl Replication {
    /// No replicated partitions yet; fetches name `node_id` as their replica id.
    pub fn new(node_id: i32) -> Self {
        Replication { led: RefCell::new(HashMap::new()), following: RefCell::new(HashMap::new()), pool: BrokerPool::new(node_id) }
    }

    /// Stops `tp`'s fetcher and waits until it has returned: a truncation it was in the middle
    /// of must not land after this core takes the partition over (Kafka's
    /// `removeFetcherForPartitions` waits the same way).
    async fn stop_following(&self, tp: &TopicPartition) {
        let fetcher = self.following.borrow_mut().remove(tp);
        if let Some((stop, task)) = fetcher {
            stop.stop();
            task.await;
        }
    }

    fn stop_leading(&self, tp: &TopicPartition) {
        if let Some(mut led) = self.led.borrow_mut().remove(tp) {
            led.waiters.abandon_all();
        }
    }
}

impl Shard {
    /// Acts on what a metadata change means for this core's partitions, in order.
    pub(super) async fn apply_partition_changes(&self, changes: Vec<PartitionChange>) {
        for change in changes {
            let coordination = super::groups::coordination_move(&change, self.config.node_id);
            let txn_coordination = super::txns::txn_coordination_move(&change, self.config.node_id);
            match change {
                PartitionChange::Created { tp, topic_id, leader, leader_epoch, partition_epoch, isr, replicas, .. } => {
                    if let Err(e) = self.open_partition(&tp).await {
                        tracing::error!(partition = %tp, error = %e, "cannot open a new replica");
                        continue;
                    }
                    if leader == self.config.node_id {
                        self.become_leader(&tp, topic_id, leader_epoch, partition_epoch, isr, replicas).await;
                    } else {
                        self.become_follower(&tp, topic_id, leader, leader_epoch).await;
                    }
                }
                PartitionChange::BecameLeader { tp, leader_epoch, partition_epoch, isr, replicas } => {
                    let topic_id = self.topic_id(&tp.topic);
                    self.become_leader(&tp, topic_id, leader_epoch, partition_epoch, isr, replicas).await;
                }
                PartitionChange::BecameFollower { tp, leader, leader_epoch } => {
                    let topic_id = self.topic_id(&tp.topic);
                    self.become_follower(&tp, topic_id, leader, leader_epoch).await;
                }
                PartitionChange::IsrChanged { tp, isr, replicas, partition_epoch } => {
                    if let Some(log) = self.log(&tp) {
                        log.set_replicated(replicas.len() > 1);
                    }
                    if let Some(led) = self.replication.led.borrow_mut().get_mut(&tp) {
                        // A reassignment adds replicas in the same epoch: track their fetches.
                        led.tracker.set_replicas(replicas);
                        led.tracker.set_isr(isr);
                        led.partition_epoch = partition_epoch;
                        led.in_flight = None;
                    }
                    self.publish_high_watermark(&tp);
                }
                PartitionChange::Removed { tp, .. } => {
                    self.replication.stop_following(&tp).await;
                    self.replication.stop_leading(&tp);
                    self.remove_partition(&tp);
                }
                PartitionChange::ConfigChanged { topic, .. } => {
                    if let Some(meta) = self.metadata.load().topics.get(&topic) {
                        self.reload_config(meta);
                    }
                }
            }
            // Group coordinators move with `__consumer_offsets` leadership (shard/groups.rs).
            if let Some(m) = coordination {
                self.move_group_coordination(m);
            }
            // Transaction coordinators move with `__transaction_state` leadership (shard/txns.rs).
            if let Some(m) = txn_coordination {
                self.move_txn_coordination(m);
            }
        }
    }

    /// Whether this core has taken the leadership of replicated partition `tp`.
    pub(super) fn leads_replicated(&self, tp: &TopicPartition) -> bool {
        self.replication.led.borrow().contains_key(tp)
    }

    fn topic_id(&self, topic: &str) -> Uuid {
        self.metadata.load().topics.get(topic).map_or(Uuid::nil(), |t| t.id)
    }

    /// This broker leads `tp` from `leader_epoch` on: batches are stamped with the epoch, and
    /// with followers, the high watermark waits for the ISR.
    async fn become_leader(&self, tp: &TopicPartition, topic_id: Uuid, leader_epoch: i32, partition_epoch: i32, isr: Vec<i32>, replicas: Vec<i32>) {
        self.replication.stop_following(tp).await;
        self.replication.stop_leading(tp);
        let Some(log) = self.log(tp) else { return };
        if let Err(e) = log.set_leader_epoch(leader_epoch) {
            tracing::warn!(partition = %tp, leader_epoch, error = %e, "leader epoch not checkpointed");
        }
        let replicated = replicas.len() > 1;
        log.set_replicated(replicated);
        tracing::info!(partition = %tp, leader_epoch, isr = ?isr, "leading partition");
        // Tracked even with one replica: a reassignment may add followers in this epoch.
        let tracker = ReplicaTracker::new(self.config.node_id, replicas, isr, log.offsets().log_end, now_ms());
        let led = Led { topic_id, leader_epoch, partition_epoch, tracker, waiters: AckWaiters::new(), in_flight: None };
        self.replication.led.borrow_mut().insert(tp.clone(), led);
        self.publish_high_watermark(tp);
    }

    /// This broker follows `leader` for `tp`: a fetcher on this core pulls from it (none while
    /// the partition has no leader).
    async fn become_follower(&self, tp: &TopicPartition, topic_id: Uuid, leader: i32, leader_epoch: i32) {
        self.replication.stop_following(tp).await;
        self.replication.stop_leading(tp);
        let Some(log) = self.log(tp) else { return };
        log.set_replicated(true);
        if leader < 0 {
            tracing::warn!(partition = %tp, leader_epoch, "partition has no leader; not fetching");
            return;
        }
        let Some(leader_addr) = self.inter_broker_address(leader) else {
            tracing::warn!(partition = %tp, leader, "leader has no inter-broker endpoint; not fetching");
            return;
        };
        let target = FetchTarget {
            topic: tp.topic.clone(),
            topic_id,
            partition: tp.partition,
            leader_id: leader,
            leader_addr,
            leader_epoch,
            node_id: self.config.node_id,
            max_bytes: self.config.cluster.replica_fetch_max_bytes,
        };
        tracing::info!(partition = %tp, leader, leader_epoch, "following partition");
        let stop = StopSignal::new();
        let pool = Rc::clone(&self.replication.pool);
        let follower: Rc<dyn FollowerLog> = log;
        let partition = tp.clone();
        let signal = Rc::clone(&stop);
        let task = glommio::spawn_local(async move {
            let exit = run_fetcher(target, follower, pool, signal).await;
            tracing::info!(partition = %partition, exit = ?exit, "fetcher stopped");
        })
        .detach();
        self.replication.following.borrow_mut().insert(tp.clone(), (stop, task));
    }

    /// `host:port` of `broker`'s inter-broker listener (`inter.broker.listener.name`, else the
    /// first of its endpoints).
    pub(super) fn inter_broker_address(&self, broker: i32) -> Option<String> {
        let snapshot = self.metadata.load();
        let registration = snapshot.brokers.get(&broker)?;
        let wanted = self.config.cluster.inter_broker_listener_name.as_deref();
        let endpoint = match wanted {
            Some(name) => registration.endpoints.iter().find(|e| e.listener == name),
            None => registration.endpoints.first(),
        }?;
        Some(format!("{}:{}", endpoint.host, endpoint.port))
    }

    /// A follower fetched `tp` from `offset`: its log end is `offset` (everything below is on
    /// its disk), which may move the high watermark.
    pub(super) fn on_replica_fetch(&self, tp: &TopicPartition, replica: i32, offset: i64, log: &PartitionLog) {
        {
            let mut led = self.replication.led.borrow_mut();
            let Some(led) = led.get_mut(tp) else { return };
            led.tracker.on_follower_fetch(replica, offset, log.offsets().log_end, now_ms());
        }
        self.publish_high_watermark(tp);
    }

    /// Moves the log's high watermark to what the tracker says, and answers the `acks=all`
    /// produces it covers.
    pub(super) fn publish_high_watermark(&self, tp: &TopicPartition) {
        let Some(log) = self.log(tp) else { return };
        let mut led = self.replication.led.borrow_mut();
        let Some(led) = led.get_mut(tp) else { return };
        led.tracker.on_leader_append(log.offsets().log_end);
        log.set_high_watermark(led.tracker.high_watermark());
        let hw = log.offsets().high_watermark;
        led.waiters.on_high_watermark(hw, led.tracker.maximal_isr().len(), log.min_insync_replicas());
    }

    /// For an `acks=all` append ending at `end` (its last offset + 1) to a partition led with
    /// followers: what to wait on after the local write. `None`: nothing more to wait for.
    pub(super) fn ack_after_replication(&self, tp: &TopicPartition, end: i64) -> Option<AckReceiver> {
        self.replication.led.borrow_mut().get_mut(tp).map(|led| led.waiters.register(end))
    }

    /// Waits for `ack` (see [`Shard::ack_after_replication`]) for up to `timeout`.
    pub(super) async fn replicated(&self, tp: &TopicPartition, ack: AckReceiver, timeout: Duration) -> Result<(), (ErrorCode, String)> {
        // The local write just finished: the leader's own log end may move the high watermark.
        self.publish_high_watermark(tp);
        let waited = futures::future::select(ack, Box::pin(glommio::timer::sleep(timeout))).await;
        match waited {
            futures::future::Either::Left((Ok(Ok(())), _)) => Ok(()),
            futures::future::Either::Left((Ok(Err(e)), _)) => Err((ErrorCode::from(&e), e.to_string())),
            futures::future::Either::Left((Err(_), _)) => {
                let e = AckError::NotLeaderOrFollower;
                Err((ErrorCode::from(&e), e.to_string()))
            }
            futures::future::Either::Right(_) => {
                Err((ErrorCode::REQUEST_TIMED_OUT, format!("not replicated to the ISR within {} ms", timeout.as_millis())))
            }
        }
    }

    /// Periodic ISR upkeep of the partitions this core leads: a follower behind for longer than
    /// `replica.lag.time.max.ms` leaves the ISR, a caught-up one joins it; each change goes to
    /// the active controller as an AlterPartition, one in flight per partition.
    pub fn replication_tick(&self, router: &Rc<Router>) {
        let lag = self.config.cluster.replica_lag_time_max_ms as i64;
        let now = now_ms();
        let snapshot = self.metadata.load();
        let proposals: Vec<(TopicPartition, MetadataMutation)> = {
            let mut led = self.replication.led.borrow_mut();
            led.iter_mut()
                .filter(|(_, l)| l.in_flight.is_none())
                .filter_map(|(tp, l)| {
                    let expand = || {
                        // A fenced broker may not join (the controller would refuse it anyway).
                        let mut isr = l.tracker.expand_candidate()?;
                        isr.retain(|id| l.tracker.isr().contains(id) || snapshot.is_unfenced(*id));
                        (isr.len() > l.tracker.isr().len()).then_some(isr)
                    };
                    let new_isr = l.tracker.shrink_candidates(now, lag).or_else(expand)?;
                    l.tracker.set_pending_isr(new_isr.clone());
                    l.in_flight = Some(l.partition_epoch);
                    let m = MetadataMutation::AlterPartition {
                        topic_id: l.topic_id,
                        partition: tp.partition,
                        leader_id: self.config.node_id,
                        leader_epoch: l.leader_epoch,
                        partition_epoch: l.partition_epoch,
                        new_isr,
                    };
                    Some((tp.clone(), m))
                })
                .collect()
        };
        // Each proposal runs on its own: without a controller quorum one may wait long, and the
        // core's housekeeping must not wait with it.
        for (tp, m) in proposals {
            let router = Rc::clone(router);
            glommio::spawn_local(async move { router.shard.alter_partition(tp, m, &router).await }).detach();
        }
    }

    /// Sends one ISR change to the active controller and applies its answer. An answer that
    /// does not say whether the change was made (no controller reached) is retried: the pending
    /// ISR must stay until the outcome is known, or the high watermark could pass a joiner.
    async fn alter_partition(&self, tp: TopicPartition, m: MetadataMutation, router: &Router) {
        let (sent_at, new_isr) = match &m {
            MetadataMutation::AlterPartition { partition_epoch, new_isr, .. } => (*partition_epoch, new_isr.clone()),
            _ => return,
        };
        let current = || self.replication.led.borrow().get(&tp).is_some_and(|l| l.in_flight == Some(sent_at));
        tracing::info!(partition = %tp, new_isr = ?new_isr, "proposing an ISR change");
        let result = loop {
            let result = router.mutate(m.clone()).await;
            match &result {
                Err(MetadataError::ControllerUnavailable) if current() => glommio::timer::sleep(Duration::from_millis(500)).await,
                _ => break result,
            }
        };
        if !current() {
            return;
        }
        let committed = result.as_ref().ok().and_then(|o| o.topic.as_ref()).and_then(|t| t.partitions.get(tp.partition as usize).cloned());
        {
            let mut led = self.replication.led.borrow_mut();
            let Some(led) = led.get_mut(&tp) else { return };
            led.in_flight = None;
            match (&result, committed) {
                (Ok(_), Some(p)) if p.partition_epoch > led.partition_epoch => {
                    led.tracker.set_isr(p.isr);
                    led.partition_epoch = p.partition_epoch;
                }
                (Ok(_), _) => led.tracker.clear_pending_isr(),
                (Err(e), _) => {
                    tracing::warn!(partition = %tp, error = %e, "ISR change refused");
                    led.tracker.clear_pending_isr();
                }
            }
        }
        self.publish_high_watermark(&tp);
    }
}
