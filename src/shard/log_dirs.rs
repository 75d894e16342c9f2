//! Log sizes on the owner core, for DescribeLogDirs: the logs live here, so their sizes are read here.

use super::Shard;
use super::messages::LogSize;
use crate::codes::ErrorCode;
use crate::types::TopicPartition;

impl Shard {
    /// The size of each part's log, in order; UNKNOWN_TOPIC_OR_PARTITION for a partition this
    /// core holds no log for (not opened yet, or being deleted).
    pub(super) fn log_sizes(&self, parts: &[TopicPartition]) -> Vec<LogSize> {
        parts
            .iter()
            .map(|tp| match self.log(tp) {
                Some(log) => LogSize { error_code: ErrorCode::NONE, size_bytes: log.size_bytes() },
                None => LogSize::failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            })
            .collect()
    }
}
