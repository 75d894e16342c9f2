//! DescribeProducers: the producers with state in each partition this broker leads (id, epoch,
//! last sequence and timestamp, coordinator epoch, and the start of an open transaction).

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId, TopicName};

use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::shard::messages::ShardRequest;
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 0).
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles DescribeProducers.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let snapshot = ctx.router.shard.metadata.load();
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for t in &req.topics {
        for &p in &t.partition_indexes {
            let tp = TopicPartition::new(t.name.0.to_string(), p);
            let owner = snapshot.owner(&tp.topic, p);
            slots.push(owner.is_some());
            if let Some(owner) = owner {
                items.push((owner, tp));
            }
        }
    }
    let mut answers = ctx
        .router
        .split_join(items, ShardRequest::DescribeProducers, |r| r.into_producers(), Err)
        .await
        .into_iter();
    let mut slots = slots.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let found = if slots.next().unwrap_or(false) { answers.next() } else { None };
                    let answer = found.unwrap_or(Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
                    let r = PartitionResponse::default().with_partition_index(p);
                    match answer {
                        Ok(producers) => r.with_error_code(ErrorCode::NONE.code()).with_active_producers(
                            producers
                                .into_iter()
                                .map(|a| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_producer_epoch(i32::from(a.epoch))
                                        .with_last_sequence(a.last_sequence)
                                        .with_last_timestamp(a.last_timestamp)
                                        .with_coordinator_epoch(a.coordinator_epoch)
                                        .with_current_txn_start_offset(a.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(code) => r.with_error_code(code.code()),
                    }
                })
                .collect();
            TopicResponse::default().with_name(TopicName(t.name.0.clone())).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
