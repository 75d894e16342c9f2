//! KIP-101/279 follower truncation as a loop over [`truncation_point`], with the leader's
//! answers passed in: the fetcher asks over the network, the tests ask a second in-memory log.

use super::{FollowerLog, truncation_point};
use crate::storage::StorageError;

/// KIP-101/279 truncation of `log`: ask the leader (`ask_leader(epoch)` gives its epoch and
/// end offset) where our latest epoch ends, cut there, and ask again while the answer is about
/// an older epoch than ours. Each round lowers our latest epoch, so it ends.
pub async fn truncate_against<E, F>(log: &dyn FollowerLog, topic: &str, partition: i32, mut ask_leader: F) -> Result<(), E>
where
    E: From<StorageError>,
    F: AsyncFnMut(i32) -> Result<(i32, i64), E>,
{
    loop {
        let (epoch, log_end) = (log.latest_epoch(), log.log_end());
        if epoch < 0 {
            // No epochs to compare: keep what is known committed, as Kafka does.
            return Ok(cut_log(log, topic, partition, log.high_watermark().min(log_end), "no local leader epoch").await?);
        }
        let (leader_epoch, leader_end) = ask_leader(epoch).await?;
        let point = truncation_point(log_end, log.high_watermark(), leader_epoch, leader_end, log.end_offset_for_epoch(leader_epoch));
        tracing::debug!(topic, partition, asked_epoch = epoch, leader_epoch, leader_end, to = point.offset,
            complete = point.complete, "epoch end from leader");
        cut_log(log, topic, partition, point.offset, "diverged from leader").await?;
        if point.complete {
            return Ok(());
        }
        if log.latest_epoch() >= epoch {
            // The log kept an epoch it should have dropped: asking again would loop.
            tracing::warn!(topic, partition, epoch, "truncation made no progress");
            return Ok(());
        }
    }
}

/// Cuts `log` to `offset` when it ends past it, with one log line.
pub(super) async fn cut_log(log: &dyn FollowerLog, topic: &str, partition: i32, offset: i64, why: &str) -> Result<(), StorageError> {
    let log_end = log.log_end();
    if offset < log_end {
        log.truncate_to(offset).await?;
        tracing::info!(topic, partition, from = log_end, to = offset, why, "truncated follower log");
    }
    Ok(())
}
