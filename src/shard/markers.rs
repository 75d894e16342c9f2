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

/// The markers for one leader: its id, each marker's place in the answer, and the markers.
type LeaderMarkers = (i32, Vec<usize>, Vec<(TopicPartition, TxnMarker)>);

impl Router {
    /// Writes each marker to its partition wherever its leader is (acks=all, as Kafka's
    /// coordinator writes them): here through [`Router::write_local_txn_markers`], on another
    /// broker through WriteTxnMarkers. Answers each partition's outcome, in the order asked.
    pub async fn write_txn_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        let snapshot = self.shard.metadata.load();
        let me = self.shard.config.node_id;
        let leader_of = |tp: &TopicPartition| snapshot.partition(&tp.topic, tp.partition).map_or(me, |p| p.leader);
        if markers.iter().all(|(tp, _)| leader_of(tp) == me) {
            return self.write_local_txn_markers(markers).await;
        }
        // Per leader: the markers it gets, with each one's place in the answer.
        let mut by_leader: Vec<LeaderMarkers> = Vec::new();
        for (i, (tp, marker)) in markers.iter().enumerate() {
            let leader = leader_of(tp);
            match by_leader.iter_mut().find(|(l, _, _)| *l == leader) {
                Some((_, places, ms)) => {
                    places.push(i);
                    ms.push((tp.clone(), *marker));
                }
                None => by_leader.push((leader, vec![i], vec![(tp.clone(), *marker)])),
            }
        }
        let answers = join_all(by_leader.into_iter().map(|(leader, places, ms)| async move {
            let written = match leader {
                l if l == me => self.write_local_txn_markers(ms).await,
                // No leader: the coordinator retries until one is elected.
                -1 => ms.into_iter().map(|(tp, _)| (tp, ErrorCode::NOT_LEADER_OR_FOLLOWER)).collect(),
                l => self.write_remote_txn_markers(l, ms).await,
            };
            places.into_iter().zip(written)
        }))
        .await;
        let mut out: Vec<Option<(TopicPartition, ErrorCode)>> = vec![None; markers.len()];
        for (place, answer) in answers.into_iter().flatten() {
            out[place] = Some(answer);
        }
        markers
            .into_iter()
            .zip(out)
            .map(|((tp, _), answer)| answer.unwrap_or((tp, ErrorCode::UNKNOWN_SERVER_ERROR)))
            .collect()
    }

    /// Writes each marker to its partition, which this broker must lead (WriteTxnMarkers from
    /// a coordinator elsewhere ends here), and answers each outcome in the order asked.
    pub async fn write_local_txn_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
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
