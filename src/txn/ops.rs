//! InitProducerId, AddPartitionsToTxn (and AddOffsetsToTxn, and the produce path's KIP-890
//! verification) and EndTxn: each checks the request against the id's state
//! ([`TxnMetadata`]'s transitions), writes the new state, then answers.

use std::time::{Duration, Instant};

use super::coordinator::{TxnCoordinator, TxnLog};
use super::error::TxnError;
use super::state::{EndStep, InitStep, TxnMetadata};
use crate::codes::ErrorCode;
use crate::types::{now_ms, TopicPartition};

/// How long AddPartitionsToTxn waits for a state change in flight before it answers
/// CONCURRENT_TRANSACTIONS.
const CONCURRENT_WAIT: Duration = Duration::from_millis(50);

impl TxnCoordinator {
    fn current(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(transactional_id).cloned()
    }

    async fn allocate(&self, log: &impl TxnLog) -> Result<i64, TxnError> {
        log.allocate_producer_id().await.map_err(TxnError::ProducerIdAllocation)
    }

    /// InitProducerId with a transactional id: the producer id and epoch the producer uses.
    pub(super) async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        log: &impl TxnLog,
    ) -> Result<(i64, i16), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout { timeout_ms, max_ms: self.config.max_timeout_ms });
        }
        let existing = match self.current(transactional_id) {
            Some(m) => m,
            None => {
                let producer_id = self.allocate(log).await?;
                // The allocation awaited: a concurrent InitProducerId may have created the id.
                if self.current(transactional_id).is_some() {
                    return Err(TxnError::ConcurrentTransactions { transactional_id: transactional_id.to_string() });
                }
                let fresh = TxnMetadata::new(transactional_id, producer_id, timeout_ms, now_ms());
                let InitStep::Bump(first) = fresh.init(timeout_ms, None, None, now_ms())? else {
                    unreachable!("a new id has no transaction to fence or retry")
                };
                let written = self.write(first, log).await?;
                tracing::info!(transactional_id, producer_id = written.producer_id, producer_epoch = written.producer_epoch, "transactional producer initialised");
                return Ok((written.producer_id, written.producer_epoch));
            }
        };
        let rotate = existing.epoch_exhausted() && !existing.state.is_preparing() && existing.state != super::TxnState::Ongoing;
        let new_producer_id = if rotate { Some(self.allocate(log).await?) } else { None };
        let m = self.current(transactional_id).ok_or(TxnError::ConcurrentTransactions { transactional_id: transactional_id.to_string() })?;
        match m.init(timeout_ms, expected, new_producer_id, now_ms())? {
            InitStep::Bump(next) => {
                let written = self.write(next, log).await?;
                tracing::info!(transactional_id, producer_id = written.producer_id, producer_epoch = written.producer_epoch, "transactional producer initialised");
                Ok((written.producer_id, written.producer_epoch))
            }
            InitStep::Retry => Ok((m.producer_id, m.producer_epoch)),
            InitStep::FenceOngoing(next) => {
                let written = self.write(next, log).await?;
                tracing::info!(transactional_id, producer_id = written.producer_id, producer_epoch = written.producer_epoch,
                    "ongoing transaction fenced by a new producer; aborting it");
                self.wake();
                Err(TxnError::ConcurrentTransactions { transactional_id: transactional_id.to_string() })
            }
        }
    }

    /// AddPartitionsToTxn: one code per partition, in request order. When a partition does not
    /// exist it gets UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED (nothing is
    /// added); any other failure is every partition's.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        verify_only: bool,
        client_txn_version: i16,
        log: &impl TxnLog,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let all = |e: &TxnError| partitions.iter().map(|tp| (tp.clone(), ErrorCode::from(e))).collect::<Vec<_>>();
        if transactional_id.is_empty() {
            return all(&TxnError::InvalidTransactionalId);
        }
        if partitions.iter().any(|tp| !log.partition_exists(&tp.topic, tp.partition)) {
            return partitions
                .iter()
                .map(|tp| {
                    let e = if log.partition_exists(&tp.topic, tp.partition) {
                        TxnError::OperationNotAttempted
                    } else {
                        TxnError::UnknownTopicOrPartition { topic: tp.topic.clone(), partition: tp.partition }
                    };
                    (tp.clone(), ErrorCode::from(&e))
                })
                .collect();
        }
        let deadline = Instant::now() + CONCURRENT_WAIT;
        let outcome = loop {
            // Registered before the state is read: a write that ends meanwhile still wakes us.
            let change = self.state_written.listen();
            let Some(m) = self.current(transactional_id) else {
                return all(&TxnError::InvalidProducerIdMapping { transactional_id: transactional_id.to_string(), producer_id });
            };
            if verify_only {
                return partitions.iter().map(|tp| (tp.clone(), super::error::outcome_code(&m.verify(producer_id, producer_epoch, tp)))).collect();
            }
            match m.add_partitions(producer_id, producer_epoch, &partitions, client_txn_version, now_ms()) {
                Ok(None) => break Ok(()),
                Ok(Some(next)) => break self.write(next, log).await.map(|_| ()),
                // The previous transaction is ending (its markers, then its Complete record, take
                // a millisecond or so): wait for it here rather than send the producer away, whose
                // retry backoff (librdkafka's, the Java client's) costs tens of milliseconds.
                Err(TxnError::ConcurrentTransactions { .. }) if Instant::now() < deadline => {
                    log.pause(change, deadline.saturating_duration_since(Instant::now())).await;
                }
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => partitions.into_iter().map(|tp| (tp, ErrorCode::NONE)).collect(),
            Err(e) => {
                tracing::debug!(transactional_id, error = %e, "partitions not added to transaction");
                all(&e)
            }
        }
    }

    /// EndTxn: once the decision (PrepareCommit/PrepareAbort) is durable the producer is
    /// answered, with the producer id and epoch it uses next; the markers follow.
    pub(super) async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        tv2: bool,
        log: &impl TxnLog,
    ) -> Result<(i64, i16), TxnError> {
        let unknown = || TxnError::InvalidProducerIdMapping { transactional_id: transactional_id.to_string(), producer_id };
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        let m = self.current(transactional_id).ok_or_else(unknown)?;
        let rotate = tv2 && m.end_exhausts_epoch() && producer_epoch == m.producer_epoch;
        let new_producer_id = if rotate { Some(self.allocate(log).await?) } else { None };
        let m = self.current(transactional_id).ok_or_else(unknown)?;
        match m.end(producer_id, producer_epoch, commit, tv2, new_producer_id, now_ms())? {
            EndStep::AlreadyDone => Ok(m.next_producer()),
            EndStep::Prepare(next) => {
                let written = self.write(next, log).await?;
                tracing::info!(transactional_id, producer_id = written.producer_id, producer_epoch = written.producer_epoch,
                    state = written.state.name(), partitions = written.partitions.len(), "transaction decided");
                self.wake();
                Ok(written.next_producer())
            }
        }
    }
}
