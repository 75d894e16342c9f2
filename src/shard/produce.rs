//! Appends on the owner core: every part's append is queued in arrival order before the first
//! await (so the group commit sees them together), then each waits for its write or fdatasync.

use futures::future::join_all;

use super::Shard;
use super::messages::{ProducePart, ProducePartResult};
use crate::codes::ErrorCode;
use crate::storage::AppendOutcome;
use crate::storage::producers::TxnVerification;
use crate::types::ShardId;

impl Shard {
    /// Appends `parts` to the logs this core owns; one result per part, in order.
    /// With followers, `acks=all` is answered once the ISR holds the batches (up to `timeout_ms`).
    pub(super) async fn produce(&self, conn_shard: ShardId, acks: i16, timeout_ms: u64, parts: Vec<ProducePart>) -> Vec<ProducePartResult> {
        let snapshot = self.metadata.load();
        let mut pending = Vec::with_capacity(parts.len());
        // Parts the log refused, answered as they are (with KIP-467's record errors) by index.
        let mut refused: Vec<(usize, ProducePartResult)> = Vec::new();
        for part in parts {
            let log = match self.led_log(&part.tp) {
                Ok(log) => log,
                Err(code) => {
                    pending.push((Err((code, None)), -1, None, None));
                    continue;
                }
            };
            let start = log.offsets().log_start;
            let meta = snapshot.partition(&part.tp.topic, part.tp.partition);
            // acks=all needs min.insync.replicas in sync (Kafka checks before the append).
            if acks == -1 {
                let in_sync = meta.map_or(0, |p| p.isr.len());
                let needed = log.min_insync_replicas();
                if in_sync < needed {
                    let message = format!("{in_sync} in-sync replica(s), fewer than min.insync.replicas {needed}");
                    pending.push((Err((ErrorCode::NOT_ENOUGH_REPLICAS, Some(message))), start, None, None));
                    continue;
                }
            }
            // KIP-890: a transactional part appends only into a transaction verified here. The
            // one branch on the non-transactional path.
            if part.txn_guard.is_some() || crate::storage::batch::starts_transactional(&part.records) {
                let refusal = match log.verify_txn(&part.records, part.txn_guard) {
                    Ok(TxnVerification::Append) => None,
                    Ok(TxnVerification::Verify(guard)) => Some(ProducePartResult {
                        log_start_offset: start,
                        verify_txn: Some(guard),
                        ..ProducePartResult::failed(ErrorCode::INVALID_TXN_STATE, Some("the transaction is not verified yet".into()))
                    }),
                    Err(e) => Some(ProducePartResult { log_start_offset: start, ..ProducePartResult::failed(ErrorCode::from(&e), Some(e.to_string())) }),
                };
                if let Some(refused_part) = refusal {
                    tracing::debug!(partition = %part.tp, verify_txn = ?refused_part.verify_txn, "transactional produce not verified");
                    refused.push((pending.len(), refused_part));
                    pending.push((Err((ErrorCode::INVALID_TXN_STATE, None)), start, None, None));
                    continue;
                }
            }
            match log.append(&part.records, acks) {
                Ok(outcome) => {
                    tracing::debug!(topic = %part.tp.topic, partition = part.tp.partition, shard = %self.me,
                        conn_shard = %conn_shard, base_offset = outcome.base_offset, bytes = part.records.len(), "append");
                    // Registered now, before any await: the log end is this append's end.
                    let replicated = (acks == -1)
                        .then(|| self.ack_after_replication(&part.tp, log.offsets().log_end))
                        .flatten()
                        .map(|ack| (part.tp.clone(), ack));
                    pending.push((Ok((outcome.base_offset, outcome.log_append_time)), start, outcome.done, replicated));
                }
                Err(e) => {
                    tracing::debug!(partition = %part.tp, error = %e, "produce rejected");
                    let rejected = ProducePartResult {
                        log_start_offset: start,
                        record_errors: e.record_errors().to_vec(),
                        ..ProducePartResult::failed(ErrorCode::from(&e), Some(e.to_string()))
                    };
                    refused.push((pending.len(), rejected));
                    pending.push((Err((ErrorCode::from(&e), None)), start, None, None));
                }
            }
        }
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let waits = pending.into_iter().map(|(res, start, done, replicated)| async move {
            let res = match res {
                Ok(v) => AppendOutcome::written(done).await.map(|()| v).map_err(|e| (ErrorCode::from(&e), Some(e.to_string()))),
                Err(e) => Err(e),
            };
            let res = match (res, replicated) {
                (Ok(v), Some((tp, ack))) => self.replicated(&tp, ack, timeout).await.map(|()| v).map_err(|(c, m)| (c, Some(m))),
                (res, _) => res,
            };
            match res {
                Ok((base_offset, log_append_time)) => ProducePartResult {
                    error_code: ErrorCode::NONE,
                    base_offset,
                    log_append_time,
                    log_start_offset: start,
                    message: None,
                    record_errors: Vec::new(),
                    verify_txn: None,
                },
                Err((error_code, message)) => ProducePartResult::failed(error_code, message),
            }
        });
        let mut results = join_all(waits).await;
        for (index, rejected) in refused {
            results[index] = rejected;
        }
        results
    }
}
