//! DescribeTransactions and ListTransactions: what the coordinator reports about its ids.

use super::api::ListedTxn;
use super::coordinator::TxnCoordinator;
use super::error::TxnError;
use super::state::{TxnMetadata, TxnState};
use crate::types::now_ms;

impl TxnCoordinator {
    /// DescribeTransactions of one id.
    pub(super) fn describe(&self, transactional_id: &str) -> Result<TxnMetadata, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        self.txns
            .borrow()
            .get(transactional_id)
            .cloned()
            .ok_or_else(|| TxnError::TransactionalIdNotFound { transactional_id: transactional_id.to_string() })
    }

    /// ListTransactions over the ids served here: those in one of `states` (any when empty),
    /// held by one of `producer_ids` (any when empty), and, when `min_duration_ms` is not
    /// negative, running for at least that long.
    pub(super) fn list(&self, states: &[TxnState], producer_ids: &[i64], min_duration_ms: i64) -> Vec<ListedTxn> {
        let now = now_ms();
        let served = self.served.borrow();
        let mut listed: Vec<ListedTxn> = self
            .txns
            .borrow()
            .values()
            .filter(|m| served.check(self.partition_of(&m.transactional_id)).is_ok())
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| min_duration_ms < 0 || now - m.start_ms >= min_duration_ms)
            .map(|m| ListedTxn { transactional_id: m.transactional_id.clone(), producer_id: m.producer_id, state: m.state })
            .collect();
        listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        listed
    }
}
