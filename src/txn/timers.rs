//! The coordinator's timers: the proactive abort of transactions past `transaction.timeout.ms`
//! (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) and the removal of idle ids
//! after `transactional.id.expiration.ms`.

use super::coordinator::{TxnCoordinator, TxnLog};
use super::records::encode_key;
use super::state::TxnState;
use crate::types::now_ms;

impl TxnCoordinator {
    /// Aborts every served transaction that has outlived its timeout. Its epoch is bumped, so the
    /// producer that let it run out is fenced (as Kafka's `abortTimedOutTransactions`). The
    /// number of aborts written.
    pub async fn abort_timed_out(&self, log: &impl TxnLog) -> usize {
        let now = now_ms();
        let due: Vec<_> = {
            let served = self.served.borrow();
            self.txns
                .borrow()
                .values()
                .filter(|m| m.timed_out(now) && served.check(self.partition_of(&m.transactional_id)).is_ok())
                .map(|m| m.abort_timed_out(now))
                .collect()
        };
        let mut aborted = 0;
        for next in due {
            let id = next.transactional_id.clone();
            // Checked again: the transaction may have ended while an earlier abort was written.
            if !self.txns.borrow().get(&id).is_some_and(|m| m.timed_out(now_ms())) {
                continue;
            }
            match self.write(next, log).await {
                Ok(m) => {
                    aborted += 1;
                    tracing::info!(transactional_id = %id, producer_id = m.producer_id, producer_epoch = m.producer_epoch,
                        timeout_ms = m.timeout_ms, "timed-out transaction aborted");
                }
                Err(e) => tracing::warn!(transactional_id = %id, error = %e, "timed-out transaction not aborted yet"),
            }
        }
        if aborted > 0 {
            self.wake();
        }
        aborted
    }

    /// Removes the ids idle for `transactional.id.expiration.ms` with no transaction open: a
    /// tombstone in `__transaction_state`, then the state here. The number removed.
    pub async fn expire_ids(&self, log: &impl TxnLog) -> usize {
        let cutoff = now_ms() - self.config.id_expiration_ms;
        let idle = |s: TxnState| matches!(s, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort);
        let due: Vec<(String, i64)> = {
            let served = self.served.borrow();
            self.txns
                .borrow()
                .values()
                .filter(|m| idle(m.state) && !m.pending && m.last_update_ms < cutoff)
                .filter(|m| served.check(self.partition_of(&m.transactional_id)).is_ok())
                .map(|m| (m.transactional_id.clone(), m.last_update_ms))
                .collect()
        };
        let mut removed = 0;
        for (id, seen) in due {
            let partition = self.partition_of(&id);
            // Marked so no request changes it while the tombstone is written.
            match self.txns.borrow_mut().get_mut(&id) {
                Some(m) if m.last_update_ms == seen && !m.pending => m.pending = true,
                _ => continue,
            }
            let written = log.append(partition, vec![(encode_key(&id), None)]).await;
            let mut txns = self.txns.borrow_mut();
            match written {
                Ok(()) => {
                    txns.remove(&id);
                    removed += 1;
                    tracing::info!(transactional_id = %id, "transactional id expired");
                }
                Err(code) => {
                    if let Some(m) = txns.get_mut(&id) {
                        m.pending = false;
                    }
                    tracing::warn!(transactional_id = %id, error = ?code, "transactional id not expired yet");
                }
            }
        }
        removed
    }
}
