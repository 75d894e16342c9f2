//! ApiVersions: the ranges Ringlog serves. Its response always uses response header v0.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::codes::ErrorCode;
use crate::protocol::{ProtocolError, RequestContext, frame_response, supported_keys, supported_versions};

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 4);

fn api_keys() -> Vec<ApiVersion> {
    supported_keys()
        .into_iter()
        .filter_map(|k| {
            let (min, max) = supported_versions(k)?;
            Some(ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max))
        })
        .collect()
}

/// Kafka's feature flag of the transaction protocol (KIP-890).
const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";

/// The epoch of the finalized features: they never change while the broker runs.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// Answers ApiVersions; v3+ carries the features: `transaction.version` supported up to 2 and
/// finalized at 2, so clients that speak it use transaction version 2.
pub async fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    tracing::debug!(client_software = %req.client_software_name, version = ctx.version, "api versions");
    let level = crate::txn::TRANSACTION_VERSION;
    let name = || super::str_bytes(TRANSACTION_VERSION_FEATURE);
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_api_keys(api_keys())
        .with_supported_features(vec![SupportedFeatureKey::default().with_name(name()).with_min_version(0).with_max_version(level)])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default().with_name(name()).with_min_version_level(level).with_max_version_level(level)])
}

/// The answer to an ApiVersions version this broker does not know: v0 body, UNSUPPORTED_VERSION,
/// and the supported ranges, so the client can retry with a version both sides speak.
pub fn unsupported(correlation_id: i32) -> Result<BytesMut, ProtocolError> {
    let body = ApiVersionsResponse::default().with_error_code(ErrorCode::UNSUPPORTED_VERSION.code()).with_api_keys(api_keys());
    frame_response(correlation_id, 0, &body, 0).map_err(|e| ProtocolError::Encode {
        api: kafka_protocol::messages::ApiKey::ApiVersions,
        version: 0,
        reason: e.to_string(),
    })
}
