//! An in-memory `__consumer_offsets` for the coordinator's unit tests.

use std::cell::RefCell;

use bytes::Bytes;

use super::api::TxnProducer;
use super::consumer::TopicInfo;
use super::coordinator::{GroupCoordinator, GroupLog};
use crate::codes::ErrorCode;
use crate::config::GroupConfig;

/// Keeps every record appended, or fails every append with one code. Topic "t" exists.
#[derive(Default)]
pub(super) struct MemLog {
    /// (partition, key, value) in append order.
    pub(super) records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
    fail_with: Option<ErrorCode>,
}

impl MemLog {
    /// A log whose appends all fail with `code`.
    pub(super) fn failing(code: ErrorCode) -> Self {
        MemLog { records: RefCell::default(), fail_with: Some(code) }
    }
}

impl GroupLog for MemLog {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        if let Some(code) = self.fail_with {
            return Err(code);
        }
        self.records.borrow_mut().extend(records.into_iter().map(|(k, v)| (partition, k, v)));
        Ok(())
    }

    async fn append_txn(&self, partition: i32, _producer: TxnProducer, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        self.append(partition, records).await
    }

    fn partition_exists(&self, topic: &str, _partition: i32) -> bool {
        topic == "t"
    }

    fn topics(&self) -> TopicInfo {
        Default::default()
    }
}

impl GroupCoordinator {
    /// A coordinator that serves every `__consumer_offsets` partition, as a single node does
    /// after its start-up replay.
    pub(super) fn serving_all(config: GroupConfig) -> Self {
        let c = GroupCoordinator::new(config);
        for partition in 0..c.config.offsets_topic_partitions {
            let load = c.begin_load(partition).unwrap();
            assert!(c.finish_load(load));
        }
        c
    }
}
