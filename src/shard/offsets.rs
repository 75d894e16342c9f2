//! Per-partition offset queries on the owner core: ListOffsets, OffsetForLeaderEpoch and
//! DeleteRecords.

use super::Shard;
use super::messages::{EpochQuery, ListOffsetsPart, OffsetAnswer, OffsetQuery};
use crate::codes::ErrorCode;
use crate::types::TopicPartition;

impl Shard {
    /// ListOffsets: one answer per part, in order.
    pub(super) async fn list_offsets(&self, parts: Vec<(TopicPartition, ListOffsetsPart)>) -> Vec<OffsetAnswer> {
        let mut out = Vec::with_capacity(parts.len());
        for (tp, part) in parts {
            out.push(self.list_offset(&tp, part).await);
        }
        out
    }

    async fn list_offset(&self, tp: &TopicPartition, part: ListOffsetsPart) -> OffsetAnswer {
        let log = match self.led_log(tp) {
            Ok(log) => log,
            Err(code) => return OffsetAnswer::failed(code),
        };
        if let Err(e) = log.check_leader_epoch(part.current_leader_epoch) {
            return OffsetAnswer::failed(ErrorCode::from(&e));
        }
        let offsets = log.offsets();
        let (start, hw) = (offsets.log_start, offsets.high_watermark);
        // Kafka's `lastFetchableOffset`: what a consumer of this isolation level may read below.
        let fetchable = if part.read_committed { log.last_stable_offset() } else { hw };
        let below_fetchable = |found: Result<Option<(i64, i64)>, _>| found.map(|f| f.filter(|&(offset, _)| offset < fetchable));
        let found = match part.query {
            OffsetQuery::Earliest => Ok(Some((start, -1))),
            OffsetQuery::Latest => Ok(Some((fetchable, -1))),
            OffsetQuery::MaxTimestamp => below_fetchable(log.max_timestamp_offset().await),
            OffsetQuery::Timestamp(ts) => below_fetchable(log.offset_for_timestamp(ts).await),
        };
        match found {
            Ok(Some((offset, ts))) => OffsetAnswer::found(offset, ts, log.epoch_at(offset)),
            Ok(None) => OffsetAnswer::none(),
            Err(e) => OffsetAnswer::failed(ErrorCode::from(&e)),
        }
    }

    /// OffsetForLeaderEpoch: the end offset of each asked epoch, with the epoch that holds it.
    pub(super) fn epoch_end_offsets(&self, parts: Vec<(TopicPartition, EpochQuery)>) -> Vec<OffsetAnswer> {
        parts
            .into_iter()
            .map(|(tp, q)| match self.led_log(&tp) {
                Err(code) => OffsetAnswer::failed(code),
                Ok(log) => match log.check_leader_epoch(q.current_leader_epoch) {
                    Err(e) => OffsetAnswer::failed(ErrorCode::from(&e)),
                    Ok(()) => match log.end_offset_for_epoch(q.leader_epoch) {
                        Some((epoch, end)) => OffsetAnswer::found(end, -1, epoch),
                        None => OffsetAnswer::none(),
                    },
                },
            })
            .collect()
    }

    /// DeleteRecords: moves each log's start up to the asked offset; answers the new start.
    pub(super) async fn delete_records(&self, parts: Vec<(TopicPartition, i64)>) -> Vec<OffsetAnswer> {
        let mut out = Vec::with_capacity(parts.len());
        for (tp, before) in parts {
            out.push(match self.led_log(&tp) {
                Err(code) => OffsetAnswer::failed(code),
                Ok(log) => match log.delete_records_before(before).await {
                    Ok(low) => OffsetAnswer::found(low, -1, -1),
                    Err(e) => OffsetAnswer::failed(ErrorCode::from(&e)),
                },
            });
        }
        out
    }
}
