//! Transaction markers: the coordinator's commit or abort, written into each data partition of a
//! transaction as a control batch, on that partition's owner core.
//!
//! ```text
//!  EndTxn (coordinator) or WriteTxnMarkers ─► Router::write_txn_markers ─► split by owner
//!      ─► Shard::write_markers: append every marker (before any await) ─► fdatasync ─► ISR
//!      ─► a __consumer_offsets partition: the group coordinator commits or drops the
//!         transaction's offsets
//! ```

use std::time::Duration;

use futures::future::join_all;

use super::messages::ShardRequest;
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::group::OFFSETS_TOPIC;
use crate::storage::AppendOutcome;
use crate::types::{TopicPartition, TxnMarker};

/// How long a marker waits for the in-sync replicas: Kafka's coordinator sends WriteTxnMarkers
/// with `request.timeout.ms` (30 s), and retries what timed out.
const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Router {
    /// Writes each marker to its partition (acks=all, as Kafka's coordinator writes them) and
    /// answers each partition's outcome, in the order asked.
    pub async fn write_txn_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        let snapshot = self.shard.metadata.load();
        let mut items = Vec::new();
        let mut outcome: Vec<(TopicPartition, Option<ErrorCode>)> = Vec::with_capacity(markers.len());
        for (tp, marker) in markers {
            match snapshot.owner(&tp.topic, tp.partition) {
                Some(owner) => {
                    items.push((owner, (tp.clone(), marker)));
                    outcome.push((tp, None));
                }
                None => outcome.push((tp, Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))),
            }
        }
        let mut written = self
            .split_join(items, ShardRequest::TxnMarkers, |response| response.into_txn_markers(), |code| code)
            .await
            .into_iter();
        outcome
            .into_iter()
            .map(|(tp, decided)| {
                let code = decided.unwrap_or_else(|| written.next().unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR));
                (tp, code)
            })
            .collect()
    }
}

impl Shard {
    /// The active producers of each partition, which this core must lead (DescribeProducers).
    pub(super) fn active_producers(&self, parts: &[TopicPartition]) -> Vec<Result<Vec<crate::storage::producers::ActiveProducer>, ErrorCode>> {
        parts.iter().map(|tp| self.led_log(tp).map(|log| log.active_producers())).collect()
    }

    /// Appends each marker to the partition it names, which this core must lead: all are queued
    /// before the first await (one group commit), then each waits for its fdatasync and the ISR.
    /// A marker on a `__consumer_offsets` partition then completes the transaction's offsets.
    pub(super) async fn write_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<ErrorCode> {
        let mut pending = Vec::with_capacity(markers.len());
        for (tp, marker) in markers {
            let appended = self.led_log(&tp).and_then(|log| match log.append_marker(&marker) {
                Ok(outcome) => {
                    // Registered before any await: the log end is this marker's end.
                    let ack = self.ack_after_replication(&tp, log.offsets().log_end);
                    Ok((outcome, ack))
                }
                Err(e) => {
                    tracing::info!(partition = %tp, producer_id = marker.producer_id, error = %e, "transaction marker refused");
                    Err(ErrorCode::from(&e))
                }
            });
            pending.push((tp, marker, appended));
        }
        let waits = pending.into_iter().map(|(tp, marker, appended)| async move {
            let (outcome, ack) = appended?;
            AppendOutcome::written(outcome.done).await.map_err(|e| ErrorCode::from(&e))?;
            if let Some(ack) = ack {
                self.replicated(&tp, ack, MARKER_WRITE_TIMEOUT).await.map_err(|(code, _)| code)?;
            }
            if tp.topic == OFFSETS_TOPIC {
                self.groups.complete_txn(tp.partition, marker.producer_id, marker.commit);
            }
            Ok(())
        });
        join_all(waits).await.into_iter().map(|r: Result<(), ErrorCode>| r.err().unwrap_or(ErrorCode::NONE)).collect()
    }
}
