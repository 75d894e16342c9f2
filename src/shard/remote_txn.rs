//! Transaction requests this broker sends to another: markers to a partition leader elsewhere
//! (WriteTxnMarkers), and a partition leader's KIP-890 check with a transaction coordinator
//! elsewhere (AddPartitionsToTxn v4+, broker to broker). Both go over this core's inter-broker
//! connection pool, as follower fetches do.

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::Router;
use crate::cluster::client::REQUEST_TIMEOUT;
use crate::codes::ErrorCode;
use crate::types::{TopicPartition, TxnMarker};

/// WriteTxnMarkers v1 (flexible), what Kafka 4's coordinators send.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// AddPartitionsToTxn v4 checks (verify only); v5 also adds (transaction version 2, KIP-890).
const VERIFY_VERSION: i16 = 4;
const ADD_VERSION: i16 = 5;

/// Partitions grouped by topic, in first-seen order: the shape Kafka's requests take.
fn by_topic<'a>(partitions: impl Iterator<Item = &'a TopicPartition>) -> Vec<(String, Vec<i32>)> {
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => topics.push((tp.topic.clone(), vec![tp.partition])),
        }
    }
    topics
}

/// Each partition's code from a response's (topic, partition, code) triples; a partition the
/// answer left out gets `missing`.
fn codes_for(asked: &[TopicPartition], answered: &[(String, i32, i16)], missing: ErrorCode) -> Vec<(TopicPartition, ErrorCode)> {
    asked
        .iter()
        .map(|tp| {
            let code = answered
                .iter()
                .find(|(t, p, _)| *t == tp.topic && *p == tp.partition)
                .map_or(missing, |(_, _, c)| ErrorCode::from_code(*c));
            (tp.clone(), code)
        })
        .collect()
}

impl Router {
    /// Sends `request` to broker `broker`'s inter-broker listener; a failed call becomes the
    /// client error's Kafka code.
    async fn send_to_broker<R: Request>(&self, broker: i32, request: &R, version: i16) -> Result<R::Response, ErrorCode> {
        let Some(addr) = self.shard.inter_broker_address(broker) else { return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE) };
        self.shard.replication.pool.send(broker, &addr, request, version, REQUEST_TIMEOUT).await.map_err(|e| {
            tracing::warn!(broker, error = %e, api = ?R::KEY, "inter-broker request failed");
            ErrorCode::from(&e)
        })
    }

    /// Writes `markers` on broker `leader`, which leads every one of their partitions
    /// (WriteTxnMarkers), and answers each partition's outcome in the order asked.
    pub async fn write_remote_txn_markers(&self, leader: i32, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        let mut kinds: Vec<(TxnMarker, Vec<TopicPartition>)> = Vec::new();
        for (tp, m) in &markers {
            match kinds.iter_mut().find(|(k, _)| k == m) {
                Some((_, tps)) => tps.push(tp.clone()),
                None => kinds.push((*m, vec![tp.clone()])),
            }
        }
        let request = WriteTxnMarkersRequest::default().with_markers(
            kinds
                .iter()
                .map(|(m, tps)| {
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_transaction_result(m.commit)
                        .with_coordinator_epoch(m.coordinator_epoch)
                        .with_topics(
                            by_topic(tps.iter())
                                .into_iter()
                                .map(|(t, ps)| WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partition_indexes(ps))
                                .collect(),
                        )
                })
                .collect(),
        );
        let asked: Vec<TopicPartition> = markers.into_iter().map(|(tp, _)| tp).collect();
        match self.send_to_broker(leader, &request, WRITE_TXN_MARKERS_VERSION).await {
            Ok(resp) => {
                let answered: Vec<(String, i32, i16)> = resp
                    .markers
                    .iter()
                    .flat_map(|m| &m.topics)
                    .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code)))
                    .collect();
                codes_for(&asked, &answered, ErrorCode::UNKNOWN_SERVER_ERROR)
            }
            Err(code) => asked.into_iter().map(|tp| (tp, code)).collect(),
        }
    }

    /// Asks the coordinator on broker `coordinator` whether `partitions` are in the producer's
    /// transaction, adding them when `add` (transaction version 2): AddPartitionsToTxn as a
    /// partition leader sends it (KIP-890).
    pub async fn verify_remote_txn(
        &self,
        coordinator: i32,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        add: bool,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let topics = by_topic(partitions.iter())
            .into_iter()
            .map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(ps))
            .collect();
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(!add)
            .with_topics(topics)]);
        match self.send_to_broker(coordinator, &request, if add { ADD_VERSION } else { VERIFY_VERSION }).await {
            Ok(resp) if resp.error_code != 0 => partitions.into_iter().map(|tp| (tp, ErrorCode::from_code(resp.error_code))).collect(),
            Ok(resp) => {
                let answered: Vec<(String, i32, i16)> = resp
                    .results_by_transaction
                    .iter()
                    .flat_map(|r| &r.topic_results)
                    .flat_map(|t| t.results_by_partition.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.partition_error_code)))
                    .collect();
                codes_for(&partitions, &answered, ErrorCode::UNKNOWN_SERVER_ERROR)
            }
            Err(code) => partitions.into_iter().map(|tp| (tp, code)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_group_by_topic_and_answers_map_back_in_order() {
        let asked = vec![TopicPartition::new("a", 1), TopicPartition::new("b", 0), TopicPartition::new("a", 0)];
        assert_eq!(by_topic(asked.iter()), vec![("a".to_string(), vec![1, 0]), ("b".to_string(), vec![0])]);
        let answered = vec![("a".to_string(), 0, 0), ("a".to_string(), 1, ErrorCode::INVALID_PRODUCER_EPOCH.code())];
        let codes: Vec<ErrorCode> = codes_for(&asked, &answered, ErrorCode::UNKNOWN_SERVER_ERROR).into_iter().map(|(_, c)| c).collect();
        assert_eq!(codes, vec![ErrorCode::INVALID_PRODUCER_EPOCH, ErrorCode::UNKNOWN_SERVER_ERROR, ErrorCode::NONE]);
    }
}
