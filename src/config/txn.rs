//! Transaction coordinator settings, with Kafka's broker config names and defaults.

use super::BrokerConfig;

/// Transaction coordinator settings (`transaction.*`, `transactional.id.expiration.ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: u64,
    /// `transactional.id.expiration.ms`: how long an idle transactional id is kept.
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
    /// `transaction.state.log.num.partitions`.
    pub state_log_partitions: i32,
    /// `transaction.state.log.replication.factor` (capped to the live brokers at creation).
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_log_segment_bytes: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            abort_timed_out_interval_ms: 10_000,
            id_expiration_ms: 604_800_000,
            remove_expired_interval_ms: 3_600_000,
            state_log_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 104_857_600,
        }
    }
}

impl BrokerConfig {
    /// `transaction.state.log.replication.factor` as applied: a single node holds the only copy.
    pub fn txn_state_replication_factor(&self) -> i16 {
        if self.cluster.is_multi_node(self.node_id) { self.txn.state_log_replication_factor.max(1) } else { 1 }
    }

    /// `transaction.state.log.min.isr` as applied to a topic of `replication_factor` replicas:
    /// capped to it, so a small cluster (or a single node) can still write transaction state.
    pub fn txn_state_min_isr(&self, replication_factor: i16) -> i32 {
        self.txn.state_log_min_isr.clamp(1, i32::from(replication_factor.max(1)))
    }
}
