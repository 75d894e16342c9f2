//! DescribeCluster: this broker, the cluster id and the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles DescribeCluster.
pub async fn handle(ctx: &RequestContext<'_>, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let cfg = &ctx.router.shard.config;
    // As Kafka: the broker's endpoint on the listener this request arrived on.
    let listener = &ctx.session.listener;
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(ctx.router.shard.metadata.load().cluster_id.clone()))
        .with_controller_id(BrokerId(cfg.node_id))
        .with_endpoint_type(1)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(cfg.node_id))
            .with_host(str_bytes(listener.advertised_host.clone()))
            .with_port(i32::from(listener.advertised_port))])
}
