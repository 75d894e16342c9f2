//! After a decision: the markers of a prepared transaction, then its Complete record.
//!
//! ```text
//!  PrepareCommit/PrepareAbort ─► claim ─► write markers (each partition; retried until all land)
//!        ─► CompleteCommit/CompleteAbort written ─► release
//! ```
//!
//! The shard's driver claims the ids whose markers are due (after an EndTxn, a fence, a timeout
//! or a load), writes them with [`TxnCoordinator::pending_markers`] and reports with
//! [`TxnCoordinator::markers_landed`]; one task per id, so a marker is never raced by its retry.

use super::coordinator::{TxnCoordinator, TxnLog};
use super::error::TxnError;
use crate::types::{now_ms, TopicPartition, TxnMarker};

impl TxnCoordinator {
    /// The ids of served partitions whose transactions are prepared and not being marked: they
    /// are claimed (marked in flight) until [`Self::release_markers`].
    pub fn claim_marker_work(&self) -> Vec<String> {
        let served = self.served.borrow();
        let mut marking = self.marking.borrow_mut();
        let due: Vec<String> = self
            .txns
            .borrow()
            .values()
            .filter(|m| m.state.is_preparing() && !m.pending && !marking.contains(&m.transactional_id))
            .filter(|m| served.check(self.partition_of(&m.transactional_id)).is_ok())
            .map(|m| m.transactional_id.clone())
            .collect();
        marking.extend(due.iter().cloned());
        due
    }

    /// Ends a claim: the id's markers may be claimed again.
    pub fn release_markers(&self, transactional_id: &str) {
        self.marking.borrow_mut().remove(transactional_id);
    }

    /// The markers still to write for `transactional_id`: `None` when it no longer waits for
    /// markers here (completed, moved, or its partition is not served).
    pub fn pending_markers(&self, transactional_id: &str) -> Option<Vec<(TopicPartition, TxnMarker)>> {
        let epoch = self.check_serving(transactional_id).ok()?;
        let txns = self.txns.borrow();
        let m = txns.get(transactional_id).filter(|m| m.state.is_preparing() && !m.pending)?;
        Some(m.markers(epoch))
    }

    /// Records the partitions whose markers landed: they are done for this transaction.
    pub fn markers_landed(&self, transactional_id: &str, landed: &[TopicPartition]) {
        if let Some(m) = self.txns.borrow_mut().get_mut(transactional_id).filter(|m| m.state.is_preparing()) {
            for tp in landed {
                m.partitions.remove(tp);
            }
        }
    }

    /// Writes the Complete record of a transaction whose markers all landed.
    pub async fn complete(&self, transactional_id: &str, log: &impl TxnLog) -> Result<(), TxnError> {
        let Some(m) = self.txns.borrow().get(transactional_id).filter(|m| m.state.is_preparing() && m.partitions.is_empty()).cloned() else {
            return Ok(());
        };
        let written = self.write(m.complete(now_ms()), log).await?;
        tracing::info!(transactional_id, producer_id = written.producer_id, producer_epoch = written.producer_epoch,
            state = written.state.name(), "transaction completed");
        Ok(())
    }
}
