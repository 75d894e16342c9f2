//! The follower side of replication for one partition: Kafka's `ReplicaFetcherThread`, cut down
//! to one partition and run as a task on the partition's owner shard.
//!
//! ```text
//!  start ─► truncate (KIP-101/279): OffsetForLeaderEpoch(latest local epoch) ─► cut the log,
//!           ask again while the leader answers an older epoch than ours
//!        ─► loop: Fetch(offset = log end, current leader epoch, replica id) ─► append + fdatasync
//!                 ─► high watermark = min(leader's, log end)
//!  errors: connection ─► back off 100 ms..1 s, dial again (truncation is redone: the leader may
//!          have changed its log meanwhile);  OFFSET_OUT_OF_RANGE ─► Kafka's rule (truncate to the
//!          leader's end, or start over at its log start);  NOT_LEADER_OR_FOLLOWER,
//!          UNKNOWN_LEADER_EPOCH ─► retry every second until stopped or restarted;
//!          FENCED_LEADER_EPOCH ─► return: our leader epoch is stale, only new metadata helps.
//! ```
//! The fetcher only sees the log through [`FollowerLog`], so storage stays unaware of the
//! network and the fetcher is tested with an in-memory log. Every wait also waits on the
//! [`StopSignal`], so stopping a fetcher takes effect at once, even mid long-poll.

mod decide;
pub mod memory;
mod stop;
mod truncate;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;

use super::client::{BrokerPool, ClientError, PooledClient, REQUEST_TIMEOUT, versions};
use crate::codes::ErrorCode;
use crate::storage::StorageError;

pub use stop::StopSignal;
pub use truncate::truncate_against;
use truncate::cut_log;
pub use decide::{
    BadFetch, Backoff, FetchedBatches, OutOfRangeAction, TruncationPoint, out_of_range_action, truncation_point,
    whole_batches,
};

/// Kafka's follower fetch settings: `replica.fetch.wait.max.ms` (500), `replica.fetch.min.bytes`
/// (1), `replica.fetch.max.bytes` (1 MiB, configurable: [`FetchTarget::max_bytes`]) and
/// `replica.fetch.response.max.bytes` (10 MiB).
pub const FETCH_MAX_WAIT_MS: i32 = 500;
/// See [`FETCH_MAX_WAIT_MS`].
pub const FETCH_MIN_BYTES: i32 = 1;
/// See [`FETCH_MAX_WAIT_MS`]: the default of `replica.fetch.max.bytes`.
pub const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// See [`FETCH_MAX_WAIT_MS`].
pub const RESPONSE_MAX_BYTES: i32 = 10 << 20;
/// Kafka's `replica.fetch.backoff.ms`: the wait after the leader refuses a fetch.
pub const LEADER_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// The first and the longest wait before dialling a lost leader again.
pub const RECONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// What the fetcher needs of the follower's local log; storage's `PartitionLog` implements it.
pub trait FollowerLog {
    /// The log end offset: where the next fetched batch goes.
    fn log_end(&self) -> i64;
    /// The local high watermark (what truncation may never need to cut, when epochs are unknown).
    fn high_watermark(&self) -> i64;
    /// The latest epoch in the local epoch cache, -1 when it has none.
    fn latest_epoch(&self) -> i32;
    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest local epoch at or below `epoch`
    /// and where it ends (the start of the next epoch, or the log end for the latest); `epoch`
    /// itself and the first epoch's start when it is older than every local epoch; `None` when it
    /// is newer than every local epoch or the cache is empty.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)>;
    /// Records the high watermark the leader reported, never above the log end.
    fn set_high_watermark(&self, hw: i64);
    /// Appends fetched whole batches, offsets as the leader assigned them, and waits for the
    /// fdatasync.
    fn append_fetched(&self, records: &Bytes) -> LocalBoxFuture<'_, Result<(), StorageError>>;
    /// Removes every record at or past `offset`, and the epochs that start there.
    fn truncate_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>>;
    /// Removes the whole log and starts it empty at `offset` (Kafka's `truncateFullyAndStartAt`),
    /// for a follower that fell behind the leader's log start.
    fn reset_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>>;
}

/// The partition a fetcher follows and the leader it follows it from, as the metadata said
/// when the fetcher started. A new leader or epoch means a new fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    /// Topic name.
    pub topic: String,
    /// Topic id (Fetch v13+ names topics by id).
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// The leader's node id.
    pub leader_id: i32,
    /// The leader's address, `host:port` of its inter-broker listener.
    pub leader_addr: String,
    /// The partition's current leader epoch.
    pub leader_epoch: i32,
    /// This broker's node id: the replica id of the fetches.
    pub node_id: i32,
    /// `replica.fetch.max.bytes`: the most one fetch asks of the partition. Each round ends in
    /// an fdatasync, so a larger round moves more per sync (`perf/RESULTS.md`, session 14).
    pub max_bytes: i32,
}

/// Where a fetcher is, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetcherState {
    /// Finding where the local log diverges from the leader's.
    Truncating,
    /// Fetching and appending.
    Fetching,
    /// The leader cannot be reached; dialling again after a back-off.
    ConnectionLost,
    /// The leader refused the fetch with this error; retrying after a back-off.
    LeaderRefused(ErrorCode),
    /// The fetcher returned.
    Stopped,
}

/// Why [`ReplicaFetcher::run`] returned.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetcherExit {
    /// The stop signal was given.
    Stopped,
    /// The leader has a newer epoch than ours (FENCED_LEADER_EPOCH): restart with new metadata.
    Fenced {
        /// The epoch the fetcher used.
        leader_epoch: i32,
    },
    /// The local log failed; Kafka takes the log directory offline.
    Storage(StorageError),
}

/// How far a fetcher got, shared with whoever started it.
pub struct FetcherProgress {
    fetched_to: Cell<i64>,
    high_watermark: Cell<i64>,
    state: Cell<FetcherState>,
    leader_hint: Cell<Option<LeaderHint>>,
}

/// KIP-951's current-leader hint: who the old leader says leads now, and in which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHint {
    /// The new leader's node id.
    pub leader_id: i32,
    /// Its leader epoch.
    pub leader_epoch: i32,
}

impl FetcherProgress {
    /// The leader the last refused fetch named (KIP-951), for whoever restarts the fetcher
    /// before the metadata catches up.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        self.leader_hint.get()
    }

    /// The local log end after the fetcher's last append (or truncation).
    pub fn fetched_to(&self) -> i64 {
        self.fetched_to.get()
    }

    /// The high watermark the fetcher last set.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// The fetcher's state.
    pub fn state(&self) -> FetcherState {
        self.state.get()
    }
}

/// One round's failure, and what the loop does with it.
enum StepError {
    /// The connection failed: dial again after a back-off.
    Client(ClientError),
    /// The leader refused with a partition or request error.
    Leader(ErrorCode),
    /// The fetched bytes do not continue the log: retry after a back-off.
    BadFetch(BadFetch),
    /// The local log failed.
    Storage(StorageError),
    /// The stop signal came during the round.
    Stopped,
}

impl From<StorageError> for StepError {
    fn from(e: StorageError) -> Self {
        StepError::Storage(e)
    }
}

/// The follower fetcher of one partition. Spawn [`ReplicaFetcher::run`] on the partition's owner
/// shard; stop it with the [`StopSignal`] it was given.
pub struct ReplicaFetcher {
    target: FetchTarget,
    log: Rc<dyn FollowerLog>,
    pool: Rc<BrokerPool>,
    stop: Rc<StopSignal>,
    progress: Rc<FetcherProgress>,
    /// The pooled connection to the leader while it works.
    conn: Option<PooledClient>,
}

/// Runs a fetcher for `target` until `stop` is given or the leader fences it.
pub async fn run_fetcher(target: FetchTarget, log: Rc<dyn FollowerLog>, pool: Rc<BrokerPool>, stop: Rc<StopSignal>) -> FetcherExit {
    ReplicaFetcher::new(target, log, pool, stop).run().await
}

impl ReplicaFetcher {
    /// A fetcher of `target` into `log`, on connections from `pool`.
    pub fn new(target: FetchTarget, log: Rc<dyn FollowerLog>, pool: Rc<BrokerPool>, stop: Rc<StopSignal>) -> ReplicaFetcher {
        let progress = Rc::new(FetcherProgress {
            fetched_to: Cell::new(log.log_end()),
            high_watermark: Cell::new(log.high_watermark()),
            state: Cell::new(FetcherState::Truncating),
            leader_hint: Cell::new(None),
        });
        ReplicaFetcher { target, log, pool, stop, progress, conn: None }
    }

    /// How far the fetcher got; readable while it runs.
    pub fn progress(&self) -> Rc<FetcherProgress> {
        Rc::clone(&self.progress)
    }

    /// Fetches until stopped or fenced.
    pub async fn run(mut self) -> FetcherExit {
        let t = &self.target;
        tracing::info!(topic = %t.topic, partition = t.partition, leader = t.leader_id, leader_addr = %t.leader_addr,
            leader_epoch = t.leader_epoch, "replica fetcher started");
        let mut backoff = Backoff::new(RECONNECT_BACKOFF.0, RECONNECT_BACKOFF.1);
        let mut truncated = false;
        let exit = loop {
            if self.stop.is_stopped() {
                break FetcherExit::Stopped;
            }
            let step = if truncated { self.fetch_once().await } else { self.truncate().await };
            let delay = match step {
                Ok(()) => {
                    truncated = true;
                    backoff.reset();
                    self.set_state(FetcherState::Fetching);
                    continue;
                }
                Err(StepError::Stopped) => break FetcherExit::Stopped,
                Err(StepError::Storage(e)) => break FetcherExit::Storage(e),
                Err(StepError::Leader(code)) if code == ErrorCode::FENCED_LEADER_EPOCH => {
                    break FetcherExit::Fenced { leader_epoch: self.target.leader_epoch };
                }
                Err(StepError::Leader(code)) => {
                    self.set_state(FetcherState::LeaderRefused(code));
                    LEADER_ERROR_BACKOFF
                }
                Err(StepError::BadFetch(e)) => {
                    // The leader's batches do not continue this log: its tail diverges in a way
                    // the epoch cache did not show. Fall back to what is surely committed, the
                    // high watermark (Kafka's rule before KIP-101), and truncate again from there.
                    let hw = self.log.high_watermark().min(self.log.log_end());
                    tracing::warn!(topic = %self.target.topic, partition = self.target.partition, error = %e,
                        log_end = self.log.log_end(), high_watermark = hw, "fetched records do not continue the log; truncating to the high watermark");
                    if let Err(e) = self.log.truncate_to(hw).await {
                        break FetcherExit::Storage(e);
                    }
                    truncated = false;
                    LEADER_ERROR_BACKOFF
                }
                Err(StepError::Client(e)) => {
                    self.set_state_because(FetcherState::ConnectionLost, &e.to_string());
                    // The leader may have changed its log while we were away: truncate again.
                    truncated = false;
                    backoff.next_delay()
                }
            };
            if !self.stop.sleep(delay).await {
                break FetcherExit::Stopped;
            }
        };
        self.set_state(FetcherState::Stopped);
        tracing::info!(topic = %self.target.topic, partition = self.target.partition, exit = ?exit, "replica fetcher stopped");
        exit
    }

    /// Logs a state change, once.
    fn set_state(&self, state: FetcherState) {
        self.set_state_because(state, "");
    }

    /// Logs a state change, once, with what caused it.
    fn set_state_because(&self, state: FetcherState, why: &str) {
        let old = self.progress.state.replace(state);
        if old != state {
            let t = &self.target;
            tracing::info!(topic = %t.topic, partition = t.partition, leader = t.leader_id, from = ?old, to = ?state,
                log_end = self.log.log_end(), why, "replica fetcher state");
        }
    }

    /// Sends `request` to the leader on the held connection (dialling one first), or gives up
    /// when the stop signal comes.
    async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, StepError> {
        let stop = Rc::clone(&self.stop);
        let stopped = stop.stopped().fuse();
        futures::pin_mut!(stopped);
        let (pool, leader, addr) = (Rc::clone(&self.pool), self.target.leader_id, self.target.leader_addr.clone());
        let conn = &mut self.conn;
        let work = async move {
            // Taken while in use: a call that fails or is abandoned drops it, and the pool with it.
            let mut client = match conn.take() {
                Some(client) => client,
                None => pool.checkout(leader, &addr).await?,
            };
            let answer = client.send(request, version, REQUEST_TIMEOUT).await;
            if answer.is_ok() {
                *conn = Some(client);
            }
            answer
        }
        .fuse();
        futures::pin_mut!(work);
        let answer = futures::select! {
            answer = work => answer.map_err(StepError::Client),
            _ = stopped => Err(StepError::Stopped),
        };
        // select! picks either branch when both are ready: an answer that arrives with the stop
        // must not be applied, since the log may already be this broker's as the new leader.
        if self.stop.is_stopped() {
            return Err(StepError::Stopped);
        }
        answer
    }

    /// KIP-101/279 truncation against the leader.
    async fn truncate(&mut self) -> Result<(), StepError> {
        self.set_state(FetcherState::Truncating);
        let log = Rc::clone(&self.log);
        let (topic, partition) = (self.target.topic.clone(), self.target.partition);
        truncate_against(&*log, &topic, partition, async |epoch| self.leader_epoch_end(epoch).await).await?;
        self.progress.fetched_to.set(log.log_end());
        Ok(())
    }

    /// Cuts the log to `offset` when it ends past it.
    async fn truncate_log(&self, offset: i64, why: &str) -> Result<(), StepError> {
        cut_log(&*self.log, &self.target.topic, self.target.partition, offset, why).await?;
        self.progress.fetched_to.set(self.log.log_end());
        Ok(())
    }

    /// OffsetForLeaderEpoch for `epoch`: the leader's (epoch, end offset).
    async fn leader_epoch_end(&mut self, epoch: i32) -> Result<(i32, i64), StepError> {
        let t = &self.target;
        let partition = OffsetForLeaderPartition::default()
            .with_partition(t.partition)
            .with_current_leader_epoch(t.leader_epoch)
            .with_leader_epoch(epoch);
        let topic = OffsetForLeaderTopic::default().with_topic(topic_name(&t.topic)).with_partitions(vec![partition]);
        let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(t.node_id)).with_topics(vec![topic]);
        let response = self.call(&request, versions::OFFSET_FOR_LEADER_EPOCH).await?;
        let answer = response
            .topics
            .iter()
            .filter(|r| r.topic.0.as_str() == self.target.topic)
            .flat_map(|r| &r.partitions)
            .find(|p| p.partition == self.target.partition)
            .ok_or(StepError::Leader(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))?;
        leader_error(answer.error_code)?;
        Ok((answer.leader_epoch, answer.end_offset))
    }

    /// One Fetch from the log end, appended and synced; then the high watermark.
    async fn fetch_once(&mut self) -> Result<(), StepError> {
        let fetch_offset = self.log.log_end();
        let request = self.fetch_request(fetch_offset);
        let asked = std::time::Instant::now();
        let response = self.call(&request, versions::FETCH).await?;
        let answered = asked.elapsed();
        leader_error(response.error_code)?;
        let (topic_id, partition) = (self.target.topic_id, self.target.partition);
        let data = response
            .responses
            .into_iter()
            .filter(|r| r.topic_id == topic_id)
            .flat_map(|r| r.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or(StepError::Leader(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))?;
        let code = ErrorCode::from_code(data.error_code);
        if code == ErrorCode::OFFSET_OUT_OF_RANGE {
            return self.out_of_range(fetch_offset).await;
        }
        if code.is_err() {
            self.note_leader_hint(data.current_leader.leader_id.0, data.current_leader.leader_epoch);
        }
        leader_error(data.error_code)?;
        let records = data.records.unwrap_or_default();
        let batches = whole_batches(&records, fetch_offset).map_err(StepError::BadFetch)?;
        let appending = std::time::Instant::now();
        if batches.count > 0 {
            self.log.append_fetched(&batches.records).await?;
        }
        let appended = appending.elapsed();
        let log_end = self.log.log_end();
        let hw = data.high_watermark.min(log_end);
        if hw >= 0 {
            self.log.set_high_watermark(hw);
            self.progress.high_watermark.set(hw);
        }
        self.progress.fetched_to.set(log_end);
        tracing::debug!(topic = %self.target.topic, partition, fetch_offset, batches = batches.count, bytes = batches.records.len(),
            log_end, leader_hw = data.high_watermark, fetch_us = answered.as_micros() as u64, append_us = appended.as_micros() as u64, "fetched");
        Ok(())
    }

    /// Records a refused fetch's current-leader hint, with one line when it names another leader.
    fn note_leader_hint(&self, leader_id: i32, leader_epoch: i32) {
        let t = &self.target;
        let hint = (leader_id >= 0 && (leader_id, leader_epoch) != (t.leader_id, t.leader_epoch))
            .then_some(LeaderHint { leader_id, leader_epoch });
        if hint.is_some() && self.progress.leader_hint.replace(hint) != hint {
            tracing::info!(topic = %t.topic, partition = t.partition, old_leader = t.leader_id, old_epoch = t.leader_epoch,
                leader = leader_id, leader_epoch, "leader changed");
        }
    }

    fn fetch_request(&self, fetch_offset: i64) -> FetchRequest {
        let t = &self.target;
        let partition = FetchPartition::default()
            .with_partition(t.partition)
            .with_current_leader_epoch(t.leader_epoch)
            .with_fetch_offset(fetch_offset)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(t.max_bytes);
        let mut topic = FetchTopic::default().with_topic_id(t.topic_id).with_partitions(vec![partition]);
        let mut request = FetchRequest::default()
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(FETCH_MIN_BYTES)
            .with_max_bytes(RESPONSE_MAX_BYTES.max(t.max_bytes))
            // No fetch session: every request is a full one (Kafka's FINAL_EPOCH).
            .with_session_id(0)
            .with_session_epoch(-1);
        // The replica id moved into ReplicaState in v15; topics are named by id from v13.
        if versions::FETCH >= 15 {
            request = request.with_replica_state(ReplicaState::default().with_replica_id(BrokerId(t.node_id)).with_replica_epoch(-1));
        } else {
            request = request.with_replica_id(BrokerId(t.node_id));
        }
        if versions::FETCH < 13 {
            topic = topic.with_topic(topic_name(&t.topic));
        }
        request.with_topics(vec![topic])
    }

    /// Kafka's `fetchOffsetAndTruncate`: the leader's log start and end decide.
    async fn out_of_range(&mut self, fetch_offset: i64) -> Result<(), StepError> {
        let leader_end = self.leader_offset(-1).await?;
        let leader_start = self.leader_offset(-2).await?;
        let action = out_of_range_action(self.log.log_end(), leader_start, leader_end);
        tracing::info!(topic = %self.target.topic, partition = self.target.partition, fetch_offset, leader_start, leader_end,
            action = ?action, "fetch offset out of range");
        match action {
            OutOfRangeAction::TruncateTo(offset) => self.truncate_log(offset, "out of range").await,
            OutOfRangeAction::ResetTo(offset) => {
                self.log.reset_to(offset).await?;
                self.progress.fetched_to.set(self.log.log_end());
                Ok(())
            }
            // The leader's own answers disagree (a race with retention or a new leader): wait a
            // back-off rather than ask again at once.
            OutOfRangeAction::Retry => Err(StepError::Leader(ErrorCode::OFFSET_OUT_OF_RANGE)),
        }
    }

    /// ListOffsets for `timestamp` (-1 latest, -2 earliest) as a replica.
    async fn leader_offset(&mut self, timestamp: i64) -> Result<i64, StepError> {
        let t = &self.target;
        let partition = ListOffsetsPartition::default()
            .with_partition_index(t.partition)
            .with_current_leader_epoch(t.leader_epoch)
            .with_timestamp(timestamp);
        let topic = ListOffsetsTopic::default().with_name(topic_name(&t.topic)).with_partitions(vec![partition]);
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(t.node_id)).with_topics(vec![topic]);
        let response = self.call(&request, versions::LIST_OFFSETS).await?;
        let answer = response
            .topics
            .iter()
            .flat_map(|r| &r.partitions)
            .find(|p| p.partition_index == self.target.partition)
            .ok_or(StepError::Leader(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))?;
        leader_error(answer.error_code)?;
        Ok(answer.offset)
    }
}

/// A wire error code as a step result.
fn leader_error(code: i16) -> Result<(), StepError> {
    let code = ErrorCode::from_code(code);
    if code.is_err() { Err(StepError::Leader(code)) } else { Ok(()) }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// The follower's partition log as the fetcher uses it.
impl FollowerLog for crate::storage::PartitionLog {
    fn log_end(&self) -> i64 {
        self.offsets().log_end
    }

    fn high_watermark(&self) -> i64 {
        self.offsets().high_watermark
    }

    fn latest_epoch(&self) -> i32 {
        self.leader_epoch()
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        crate::storage::PartitionLog::end_offset_for_epoch(self, epoch)
    }

    fn set_high_watermark(&self, hw: i64) {
        crate::storage::PartitionLog::set_high_watermark(self, hw.min(self.offsets().log_end));
    }

    fn append_fetched(&self, records: &Bytes) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        let appended = self.append_as_follower(records);
        Box::pin(async move { crate::storage::AppendOutcome::written(appended?.done).await })
    }

    fn truncate_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        Box::pin(crate::storage::PartitionLog::truncate_to(self, offset))
    }

    fn reset_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        Box::pin(crate::storage::PartitionLog::reset_to(self, offset))
    }
}
