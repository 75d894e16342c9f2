//! IncrementalAlterConfigs: SET and DELETE per key, and APPEND/SUBTRACT on LIST configs
//! (`cleanup.policy`, the throttled-replica lists, the broker's `log.cleanup.policy`), of a topic,
//! this broker or the cluster-wide default, as Kafka does.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::alter_resource;
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::codes::ErrorCode;
use crate::config::dynamic::{apply_broker_list_change, dynamic_default};
use crate::config::topic::{apply_list_change, default_of};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 1);

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Handles IncrementalAlterConfigs.
pub async fn handle(ctx: &RequestContext<'_>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    let snapshot = ctx.router.shard.metadata.load_full();
    let defaults = ctx.router.shard.topic_defaults();
    let node_id = ctx.router.shard.config.node_id;
    for res in req.resources {
        let mut changes: Vec<(String, Option<String>)> = Vec::with_capacity(res.configs.len());
        let mut bad_op = None;
        let overrides = snapshot.topics.get(res.resource_name.as_str()).map(|t| &t.configs);
        // A broker key's list starts from the resource's own dynamic value, else Kafka's
        // default (KRaft's controller does not look at the config file).
        let layers = snapshot.dynamic_configs(node_id);
        let broker_level = if res.resource_name.is_empty() { layers.cluster_default } else { layers.broker };
        for c in &res.configs {
            let name = c.name.to_string();
            match c.config_operation {
                OP_SET => changes.push((name, c.value.as_ref().map(|v| v.to_string()))),
                OP_DELETE => changes.push((name, None)),
                op @ (OP_APPEND | OP_SUBTRACT) if res.resource_type == RESOURCE_TOPIC => {
                    // The value the list starts from: an earlier change in this request, else
                    // the topic's override, else the broker default. Read from this broker's
                    // snapshot: an alteration racing on the same key may be overwritten.
                    let earlier = changes.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
                    let current = match earlier {
                        Some(v) => v,
                        None => overrides.and_then(|o| o.get(&name)).or_else(|| defaults.get(&name)).cloned(),
                    }
                    .unwrap_or_else(|| default_of(&name).to_string());
                    let items = c.value.as_ref().map_or("", |v| v.as_str());
                    match apply_list_change(&name, &current, items, op == OP_APPEND) {
                        Ok(value) => changes.push((name, Some(value))),
                        Err(reason) => bad_op = Some((ErrorCode::INVALID_CONFIG, reason)),
                    }
                }
                op @ (OP_APPEND | OP_SUBTRACT) if res.resource_type == RESOURCE_BROKER => {
                    let earlier = changes.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
                    let current = match earlier {
                        Some(v) => v,
                        None => broker_level.get(&name).cloned(),
                    }
                    .unwrap_or_else(|| dynamic_default(&name).unwrap_or("").to_string());
                    let items = c.value.as_ref().map_or("", |v| v.as_str());
                    match apply_broker_list_change(&name, &current, items, op == OP_APPEND) {
                        Ok(value) => changes.push((name, Some(value))),
                        Err(e) => bad_op = Some((ErrorCode::from(&e), e.to_string())),
                    }
                }
                op => {
                    bad_op = Some((ErrorCode::INVALID_CONFIG, format!("operation {op} on {} is not supported", c.name.as_str())))
                }
            }
        }
        let (error_code, message) = match bad_op {
            Some((code, m)) => (code, Some(m)),
            None => alter_resource(ctx.router, res.resource_type, res.resource_name.as_str(), changes, true, req.validate_only).await,
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(error_code.code())
                .with_error_message(message.map(str_bytes)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
