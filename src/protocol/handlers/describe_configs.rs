//! DescribeConfigs: a topic's configs (override, dynamic or static broker default, or Kafka's
//! default), the broker's and the cluster-wide dynamic defaults, with source, type, synonyms and
//! documentation as Kafka sends them.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::config::described::{DescribedConfig, broker_configs, cluster_default_configs, topic_configs};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (1, 4);

/// Kafka's resource type ids.
pub const RESOURCE_TOPIC: i8 = 2;
/// Broker resource.
pub const RESOURCE_BROKER: i8 = 4;

/// Handles DescribeConfigs.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let router = ctx.router;
    let config = &router.shard.config;
    let snapshot = router.shard.metadata.load_full();
    let layers = snapshot.dynamic_configs(config.node_id);
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let name = res.resource_name.as_str();
        let described = match res.resource_type {
            RESOURCE_TOPIC => match snapshot.topics.get(name) {
                Some(t) => Ok(topic_configs(config, layers, &t.configs)),
                None => Err((ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}"))),
            },
            // "" asks for the cluster-wide dynamic defaults (only those set); another node's id
            // is that node's to answer.
            RESOURCE_BROKER if name.is_empty() => Ok(cluster_default_configs(layers.cluster_default)),
            RESOURCE_BROKER if name.parse::<i32>().ok() == Some(config.node_id) => Ok(broker_configs(config, layers)),
            RESOURCE_BROKER => Err((
                ErrorCode::INVALID_REQUEST,
                format!("unexpected broker id, expected {} or empty string, but received {name}", config.node_id),
            )),
            other => Err((ErrorCode::INVALID_REQUEST, format!("resource type {other} is not served"))),
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        match described {
            Ok(configs) => {
                let wanted =
                    |c: &DescribedConfig| res.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name));
                let entries = configs
                    .into_iter()
                    .filter(wanted)
                    .map(|c| entry(c, req.include_synonyms, req.include_documentation))
                    .collect();
                result = result.with_configs(entries);
            }
            Err((code, message)) => {
                result = result.with_error_code(code.code()).with_error_message(Some(str_bytes(message)));
            }
        }
        tracing::debug!(resource_type = res.resource_type, resource = name, error = result.error_code, "describe configs");
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// One config as the wire carries it; synonyms and documentation only when asked for.
fn entry(c: DescribedConfig, include_synonyms: bool, include_documentation: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        c.synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.name))
                    .with_value(s.value.map(str_bytes))
                    .with_source(s.source.id())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(c.name))
        .with_value(if c.sensitive { None } else { c.value.map(str_bytes) })
        .with_read_only(c.read_only)
        .with_config_source(c.source.id())
        .with_is_sensitive(c.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(c.config_type.id())
        .with_documentation(include_documentation.then(|| str_bytes(c.doc)))
}
