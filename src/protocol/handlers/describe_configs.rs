//! DescribeConfigs: a topic's effective configs (override or default), and the broker's.

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::config::TOPIC_CONFIGS;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (1, 4);

/// Kafka's resource type ids.
pub const RESOURCE_TOPIC: i8 = 2;
/// Broker resource.
pub const RESOURCE_BROKER: i8 = 4;
/// Config sources (DescribeConfigs v1+).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Handles DescribeConfigs.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let router = ctx.router;
    let snapshot = router.shard.metadata.load_full();
    let defaults = &router.shard.config.topic_defaults;
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let wanted = |name: &str| res.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
        let entry = |name: &str, value: String, source: i8| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        match res.resource_type {
            RESOURCE_TOPIC => match snapshot.topics.get(res.resource_name.as_str()) {
                None => {
                    result = result
                        .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
                        .with_error_message(Some(str_bytes(format!("no topic {}", res.resource_name.as_str()))));
                }
                Some(t) => {
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|(name, _, _)| wanted(name))
                        .map(|(name, default, _)| match t.configs.get(*name) {
                            Some(v) => entry(name, v.clone(), SOURCE_TOPIC),
                            None => {
                                let v = defaults.get(*name).cloned().unwrap_or_else(|| default.to_string());
                                let source = if v == *default { SOURCE_DEFAULT } else { SOURCE_STATIC_BROKER };
                                entry(name, v, source)
                            }
                        })
                        .collect();
                    result = result.with_configs(configs);
                }
            },
            RESOURCE_BROKER => {
                let cfg = &router.shard.config;
                let broker = [
                    ("auto.create.topics.enable", cfg.auto_create_topics.to_string()),
                    ("num.partitions", cfg.num_partitions.to_string()),
                    ("socket.request.max.bytes", cfg.socket_request_max_bytes.to_string()),
                    ("broker.id", cfg.node_id.to_string()),
                ];
                let configs = broker
                    .into_iter()
                    .filter(|(name, _)| wanted(name))
                    .map(|(name, v)| entry(name, v, SOURCE_STATIC_BROKER))
                    .chain(TOPIC_CONFIGS.iter().filter(|(_, _, b)| wanted(b)).map(|(name, default, broker_key)| {
                        let v = defaults.get(*name).cloned().unwrap_or_else(|| default.to_string());
                        entry(broker_key, v, SOURCE_STATIC_BROKER)
                    }))
                    .collect();
                result = result.with_configs(configs);
            }
            other => {
                result = result
                    .with_error_code(ErrorCode::INVALID_REQUEST.code())
                    .with_error_message(Some(str_bytes(format!("resource type {other} is not served"))));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}
