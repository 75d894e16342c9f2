//! Metadata: brokers, topics (with ids), partitions and leaders; auto-creates topics.

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, topic_or_create};
use crate::codes::ErrorCode;
use crate::metadata::TopicMeta;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 12);

fn describe(t: &TopicMeta) -> MetadataResponseTopic {
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(brokers(&p.replicas))
                .with_isr_nodes(brokers(&p.isr))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
}

/// Answers Metadata.
pub async fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let router = ctx.router;
    let cfg = &router.shard.config;
    // v0-v3 have no flag: auto-creation follows the broker setting.
    let allow_create = ctx.version < 4 || req.allow_auto_topic_creation;
    let topics = match req.topics {
        // v0: an empty list means all topics; v1+: null means all.
        None => router.shard.metadata.load().topics.values().map(|t| describe(t)).collect(),
        Some(list) if list.is_empty() && ctx.version == 0 => router.shard.metadata.load().topics.values().map(|t| describe(t)).collect(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for wanted in list {
                let by_id = router.shard.metadata.load().topic_by_id(wanted.topic_id).cloned();
                let name = wanted.name.as_ref().map(|n| n.0.to_string());
                let result = match (name, by_id) {
                    (Some(name), _) => topic_or_create(router, &name, allow_create).await.map_err(|e| (e, Some(name))),
                    (None, Some(t)) => Ok(t),
                    (None, None) => Err((ErrorCode::UNKNOWN_TOPIC_ID, None)),
                };
                out.push(match result {
                    Ok(t) => describe(&t),
                    Err((error_code, name)) => MetadataResponseTopic::default()
                        .with_error_code(error_code.code())
                        .with_name(name.map(|n| TopicName(str_bytes(n))))
                        .with_topic_id(wanted.topic_id),
                });
            }
            out
        }
    };
    tracing::debug!(topics = topics.len(), version = ctx.version, "metadata");
    let snapshot = router.shard.metadata.load();
    // As Kafka: each broker's endpoint on the listener this request arrived on.
    let brokers = super::broker_endpoints(&snapshot, ctx.session.listener_name())
        .map(|(id, e, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(e.host.clone()))
                .with_port(i32::from(e.port))
                .with_rack(rack.cloned().map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(snapshot.cluster_id.clone())))
        .with_controller_id(BrokerId(crate::cluster::controller::controller_id_for_clients(&snapshot, cfg.node_id)))
        .with_topics(topics)
}
