//! Retention and DeleteRecords: moving the log start offset forward.

use super::PartitionLog;
use crate::storage::StorageError;
use crate::types::now_ms;

impl PartitionLog {
    /// Moves the log start offset forward (DeleteRecords) and drops whole segments below it.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let target = {
            let st = self.state.borrow();
            let target = if offset == -1 { st.high_watermark } else { offset };
            if target < 0 || target > st.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    offset: target,
                    start: st.log_start_offset,
                    end: st.high_watermark,
                });
            }
            target
        };
        self.advance_start(target)?;
        Ok(self.state.borrow().log_start_offset)
    }

    fn advance_start(&self, target: i64) -> Result<(), StorageError> {
        let removed = {
            let mut st = self.state.borrow_mut();
            if target <= st.log_start_offset {
                return Ok(());
            }
            st.log_start_offset = target;
            // Kafka's aborted-transaction entries go with their segments; those whose marker
            // is below the new start can no longer overlap any fetch.
            let keep_from = st.aborted.partition_point(|a| a.last_offset < target);
            st.aborted.drain(..keep_from);
            let mut removed = Vec::new();
            // Drop every segment whose successor starts at or below the new start.
            loop {
                let mut keys = st.segments.keys();
                let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else { break };
                if second > target {
                    break;
                }
                if let Some(seg) = st.segments.remove(&first) {
                    removed.push(seg.log_path);
                }
            }
            removed
        };
        std::fs::write(self.dir.join("log-start-offset"), target.to_string())?;
        self.cache.drop_below(self.uid, target);
        for path in removed {
            for ext in ["log", "index", "timeindex", "txnindex"] {
                let _ = std::fs::remove_file(path.with_extension(ext));
            }
            tracing::info!(partition = %self.tp, segment = %path.display(), "deleted segment");
        }
        Ok(())
    }

    /// Forgets the producers idle for `producer.id.expiration.ms` (`max_age_ms`) with no
    /// transaction open here; answers how many.
    pub fn expire_producers(&self, max_age_ms: i64) -> usize {
        self.state.borrow_mut().producers.expire(crate::types::now_ms(), max_age_ms)
    }

    /// Applies `retention.ms` and `retention.bytes` to closed segments.
    pub fn enforce_retention(&self) -> Result<(), StorageError> {
        let config = self.config.borrow().clone();
        if !config.delete_retention {
            return Ok(());
        }
        let now = now_ms();
        let new_start = {
            let st = self.state.borrow();
            let total: u64 = st.segments.values().map(|s| s.size).sum();
            let mut remaining = total;
            let mut new_start = None;
            let closed: Vec<_> = st.segments.values().collect();
            for (seg, next) in closed.iter().zip(closed.iter().skip(1)) {
                let too_big = config.retention_bytes >= 0 && remaining - seg.size >= config.retention_bytes as u64;
                let too_old = config.retention_ms >= 0 && seg.max_timestamp >= 0 && now - seg.max_timestamp > config.retention_ms;
                if !(too_big || too_old) {
                    break;
                }
                remaining -= seg.size;
                new_start = Some(next.base_offset);
            }
            new_start
        };
        match new_start {
            Some(start) => self.advance_start(start),
            None => Ok(()),
        }
    }
}
