//! FindCoordinator: a group's coordinator is the broker that leads its `__consumer_offsets`
//! partition, a transactional id's the one that leads its `__transaction_state` partition (on
//! one node, this broker; its shard is an internal detail).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;

/// Versions served (batched keys from v4).
pub const VERSIONS: (i16, i16) = (0, 6);

/// Key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;

/// Key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a key's coordinator is: the leader of its partition of `topic` (`__consumer_offsets`
/// or `__transaction_state`), reached on the listener the request came in on (Kafka's rule), or
/// why there is none.
fn coordinator(ctx: &RequestContext<'_>, topic: &str, key: &str) -> Result<(i32, String, i32), ErrorCode> {
    let router = ctx.router;
    let snapshot = router.shard.metadata.load();
    let internal = snapshot.topics.get(topic).ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let partition = crate::group::partition_for(key, internal.partitions.len() as i32);
    let leader = internal.partitions.get(partition as usize).map_or(-1, |p| p.leader);
    if leader == router.shard.config.node_id {
        let listener = &ctx.session.listener;
        return Ok((leader, listener.advertised_host.clone(), i32::from(listener.advertised_port)));
    }
    super::broker_endpoints(&snapshot, ctx.session.listener_name())
        .find(|(id, _, _)| *id == leader)
        .map(|(id, endpoint, _)| (id, endpoint.host.clone(), i32::from(endpoint.port)))
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
}

/// Handles FindCoordinator.
pub async fn handle(ctx: &RequestContext<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let find = |key: &str| match req.key_type {
        KEY_TYPE_GROUP => coordinator(ctx, crate::group::OFFSETS_TOPIC, key),
        // Kafka refuses an empty transactional id here.
        KEY_TYPE_TRANSACTION if key.is_empty() => Err(ErrorCode::INVALID_REQUEST),
        KEY_TYPE_TRANSACTION => coordinator(ctx, crate::txn::TXN_STATE_TOPIC, key),
        _ => Err(ErrorCode::INVALID_REQUEST),
    };
    tracing::debug!(key_type = req.key_type, version = ctx.version, "find coordinator");
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let (node, host, port, error) = match find(key.as_str()) {
                    Ok((node, host, port)) => (node, host, port, ErrorCode::NONE),
                    Err(code) => (-1, String::new(), -1, code),
                };
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(error.code())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (node, host, port, error) = match find(req.key.as_str()) {
        Ok((node, host, port)) => (node, host, port, ErrorCode::NONE),
        Err(code) => (-1, String::new(), -1, code),
    };
    FindCoordinatorResponse::default()
        .with_error_code(error.code())
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port)
}
