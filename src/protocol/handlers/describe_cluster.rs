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
    let snapshot = ctx.router.shard.metadata.load();
    // As Kafka: each broker's endpoint on the listener this request arrived on.
    let brokers = super::broker_endpoints(&snapshot, ctx.session.listener_name())
        .map(|(id, e, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(e.host.clone()))
                .with_port(i32::from(e.port))
                .with_rack(rack.cloned().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(snapshot.cluster_id.clone()))
        .with_controller_id(BrokerId(crate::cluster::controller::controller_id_for_clients(&snapshot, cfg.node_id)))
        .with_endpoint_type(1)
        .with_brokers(brokers)
}
