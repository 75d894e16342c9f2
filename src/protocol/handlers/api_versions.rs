//! ApiVersions: the ranges Ringlog serves. Its response always uses response header v0.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
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

/// Answers ApiVersions.
pub async fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    tracing::debug!(client_software = %req.client_software_name, version = ctx.version, "api versions");
    ApiVersionsResponse::default().with_error_code(ErrorCode::NONE.code()).with_api_keys(api_keys())
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
