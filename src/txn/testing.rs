//! An in-memory `__transaction_state`, producer id source and marker sink for the
//! coordinator's unit tests.

use std::cell::{Cell, RefCell};

use bytes::Bytes;

use super::coordinator::{TxnCoordinator, TxnLog};
use crate::codes::ErrorCode;
use crate::config::TxnConfig;
use crate::types::{TopicPartition, TxnMarker};

/// Keeps every record appended and every marker asked for. Topic "t" (partitions 0..4) exists;
/// markers land unless `refuse_markers`.
#[derive(Default)]
pub(super) struct MemLog {
    /// (partition, key, value) in append order.
    pub(super) records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
    /// Markers written, in order.
    pub(super) markers: RefCell<Vec<(TopicPartition, TxnMarker)>>,
    /// Refuse every marker (as the partition side's seam does).
    pub(super) refuse_markers: Cell<bool>,
    /// Fail every append with this code.
    pub(super) fail_appends: Cell<Option<ErrorCode>>,
    next_producer_id: Cell<i64>,
}

impl TxnLog for MemLog {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        if let Some(code) = self.fail_appends.get() {
            return Err(code);
        }
        self.records.borrow_mut().extend(records.into_iter().map(|(k, v)| (partition, k, v)));
        Ok(())
    }

    async fn allocate_producer_id(&self) -> Result<i64, ErrorCode> {
        let id = self.next_producer_id.get() + 1000;
        self.next_producer_id.set(self.next_producer_id.get() + 1);
        Ok(id)
    }

    async fn write_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        if self.refuse_markers.get() {
            return markers.into_iter().map(|(tp, _)| (tp, ErrorCode::UNKNOWN_SERVER_ERROR)).collect();
        }
        self.markers.borrow_mut().extend(markers.iter().cloned());
        markers.into_iter().map(|(tp, _)| (tp, ErrorCode::NONE)).collect()
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        (topic == "t" && (0..4).contains(&partition)) || topic == "__consumer_offsets"
    }

    /// Unit tests run without a timer: the whole wait, as a sleep.
    async fn pause(&self, _change: event_listener::EventListener, at_most: std::time::Duration) {
        std::thread::sleep(at_most);
    }
}

impl TxnCoordinator {
    /// A coordinator that serves every `__transaction_state` partition at coordinator epoch 5.
    pub(super) fn serving_all(config: TxnConfig) -> Self {
        let c = TxnCoordinator::new(config);
        for partition in 0..c.config.state_log_partitions {
            let load = c.begin_load(partition, 5).unwrap();
            assert!(c.finish_load(load));
        }
        c
    }

    /// Writes every due marker through `log` and completes what landed (the driver's work, inline).
    pub(super) async fn drive_markers(&self, log: &MemLog) {
        for id in self.claim_marker_work() {
            if let Some(markers) = self.pending_markers(&id) {
                let results = log.write_markers(markers).await;
                let landed: Vec<TopicPartition> = results.into_iter().filter(|(_, c)| c.is_none()).map(|(tp, _)| tp).collect();
                self.markers_landed(&id, &landed);
                let _ = self.complete(&id, log).await;
            }
            self.release_markers(&id);
        }
    }
}
