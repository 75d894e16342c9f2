//! WriteTxnMarkers: a transaction coordinator (on this broker or another) ends a transaction in
//! the data partitions this broker leads, with a control batch in each
//! ([`crate::shard::Router::write_txn_markers`]).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::protocol::RequestContext;
use crate::types::{TopicPartition, TxnMarker};

/// Versions served (Kafka 4.0: 1; version 0 was removed).
pub const VERSIONS: (i16, i16) = (1, 1);

/// Handles WriteTxnMarkers: every marker's partitions are written together, then answered in
/// the request's shape.
pub async fn handle(ctx: &RequestContext<'_>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut wanted = Vec::new();
    for m in &req.markers {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.transaction_result,
        };
        for t in &m.topics {
            for &p in &t.partition_indexes {
                wanted.push((TopicPartition::new(t.name.0.to_string(), p), marker));
            }
        }
    }
    tracing::debug!(markers = req.markers.len(), partitions = wanted.len(), "write txn markers");
    let mut written = ctx.router.write_local_txn_markers(wanted).await.into_iter();
    let markers = req
        .markers
        .iter()
        .map(|m| {
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let code = written.next().map(|(_, code)| code).unwrap_or(crate::codes::ErrorCode::UNKNOWN_SERVER_ERROR);
                            WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code.code())
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(TopicName(t.name.0.clone())).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
