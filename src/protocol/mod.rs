//! The Kafka protocol: one registry of handlers and one dispatch point.
//!
//! [`dispatch`] reads the request header, checks the API key and version against the registry
//! before any handler runs, decodes the body with the `kafka-protocol` codecs, runs the handler
//! and encodes the response with its header. Every handler in [`handlers`] has the same shape:
//! `VERSIONS`, then `async fn handle(ctx, request) -> response`.

pub mod frame;
pub mod handlers;
pub mod leader_hint;

use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::shard::Router;
use crate::session::Session;
pub use frame::ResponseFrame;

/// Errors that end a connection: the request cannot be answered in Kafka's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Fewer bytes than a request header.
    #[error("frame of {0} bytes is too short for a request header")]
    ShortFrame(usize),
    /// The API key is not one Kafka defines, or not one Ringlog serves.
    #[error("unknown or unsupported api key {0}")]
    UnknownApiKey(i16),
    /// The version is outside the registry's range (ApiVersions answers instead of failing).
    #[error("unsupported version {version} of api key {key}")]
    UnsupportedVersion {
        /// API key.
        key: i16,
        /// Version asked for.
        version: i16,
    },
    /// The bytes do not decode as the declared request.
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Decode {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What failed.
        reason: String,
    },
    /// The response could not be encoded.
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What failed.
        reason: String,
    },
}

/// What a handler knows about the request it serves.
pub struct RequestContext<'a> {
    /// The shard's router.
    pub router: &'a Rc<Router>,
    /// The decoded request header.
    pub header: &'a RequestHeader,
    /// The request's API version.
    pub version: i16,
    /// The connection's session: principal, listener (whose endpoint is advertised), client host.
    pub session: &'a Session,
}

macro_rules! registry {
    ($( $key:ident => $module:ident ),* $(,)?) => {
        /// The version range Ringlog serves for an API key, or `None` when it does not serve it.
        pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
            match key {
                ApiKey::Produce => Some(handlers::produce::VERSIONS),
                ApiKey::ApiVersions => Some(handlers::api_versions::VERSIONS),
                ApiKey::Fetch => Some(handlers::fetch::VERSIONS),
                $( ApiKey::$key => Some(handlers::$module::VERSIONS), )*
                _ => None,
            }
        }

        /// Every API key in the registry.
        pub fn supported_keys() -> Vec<ApiKey> {
            vec![ApiKey::Produce, ApiKey::ApiVersions, ApiKey::Fetch, $( ApiKey::$key ),*]
        }

        async fn run_handler(ctx: &RequestContext<'_>, key: ApiKey, body: &mut Bytes)
            -> Result<Option<ResponseFrame>, ProtocolError>
        {
            match key {
                ApiKey::Produce => {
                    let req = decode(key, ctx.version, body)?;
                    match handlers::produce::handle(ctx, req).await {
                        Some(resp) => encode_response(key, ctx, &resp).map(|f| Some(f.into())),
                        None => Ok(None),
                    }
                }
                ApiKey::ApiVersions => {
                    let req = decode(key, ctx.version, body)?;
                    let resp = handlers::api_versions::handle(ctx, req).await;
                    encode_response(key, ctx, &resp).map(|f| Some(f.into()))
                }
                // Fetch answers with record chunks spliced into the encoded response.
                ApiKey::Fetch => {
                    let req = decode(key, ctx.version, body)?;
                    let (resp, splicer) = handlers::fetch::handle(ctx, req).await;
                    let encoded = encode_response(key, ctx, &resp)?;
                    splicer
                        .splice(encoded, ctx.version >= handlers::fetch::FIRST_FLEXIBLE_VERSION)
                        .map(Some)
                        .map_err(|reason| ProtocolError::Encode { api: key, version: ctx.version, reason })
                }
                $( ApiKey::$key => {
                    let req = decode(key, ctx.version, body)?;
                    let resp = handlers::$module::handle(ctx, req).await;
                    encode_response(key, ctx, &resp).map(|f| Some(f.into()))
                } )*
                _ => Err(ProtocolError::UnknownApiKey(key as i16)),
            }
        }
    };
}

registry! {
    ListOffsets => list_offsets,
    Metadata => metadata,
    CreateTopics => create_topics,
    DeleteTopics => delete_topics,
    CreatePartitions => create_partitions,
    DescribeConfigs => describe_configs,
    AlterConfigs => alter_configs,
    IncrementalAlterConfigs => incremental_alter_configs,
    DescribeCluster => describe_cluster,
    DescribeTopicPartitions => describe_topic_partitions,
    DescribeLogDirs => describe_log_dirs,
    OffsetForLeaderEpoch => offset_for_leader_epoch,
    DeleteRecords => delete_records,
    InitProducerId => init_producer_id,
    FindCoordinator => find_coordinator,
    JoinGroup => join_group,
    SyncGroup => sync_group,
    Heartbeat => heartbeat,
    LeaveGroup => leave_group,
    OffsetCommit => offset_commit,
    TxnOffsetCommit => txn_offset_commit,
    OffsetFetch => offset_fetch,
    OffsetDelete => offset_delete,
    DescribeGroups => describe_groups,
    ListGroups => list_groups,
    DeleteGroups => delete_groups,
    ConsumerGroupHeartbeat => consumer_group_heartbeat,
    ConsumerGroupDescribe => consumer_group_describe,
    ElectLeaders => elect_leaders,
    AlterPartitionReassignments => alter_partition_reassignments,
    ListPartitionReassignments => list_partition_reassignments,
    WriteTxnMarkers => write_txn_markers,
    DescribeProducers => describe_producers,
    AddPartitionsToTxn => add_partitions_to_txn,
    AddOffsetsToTxn => add_offsets_to_txn,
    EndTxn => end_txn,
    DescribeTransactions => describe_transactions,
    ListTransactions => list_transactions,
}

fn decode<T: Decodable>(api: ApiKey, version: i16, body: &mut Bytes) -> Result<T, ProtocolError> {
    T::decode(body, version).map_err(|e| ProtocolError::Decode { api, version, reason: e.to_string() })
}

fn encode_response<R: Encodable + HeaderVersion>(
    api: ApiKey,
    ctx: &RequestContext<'_>,
    resp: &R,
) -> Result<BytesMut, ProtocolError> {
    frame_response(ctx.header.correlation_id, R::header_version(ctx.version), resp, ctx.version)
        .map_err(|e| ProtocolError::Encode { api, version: ctx.version, reason: e.to_string() })
}

/// Encodes a size-prefixed response frame: length, header, body.
pub fn frame_response<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &R,
    version: i16,
) -> anyhow_free::Result<BytesMut> {
    let size = body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(size + 16);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// The codec crate reports errors as `anyhow::Error`; this alias keeps that out of our signatures.
mod anyhow_free {
    /// Result of a codec call.
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

/// A request frame split into its checked header and its undecoded body.
pub enum Preamble {
    /// A served API at a served version.
    Request {
        /// The API.
        key: ApiKey,
        /// Its version.
        version: i16,
        /// The decoded header.
        header: RequestHeader,
        /// The body, not yet decoded.
        body: Bytes,
    },
    /// ApiVersions at a version this broker does not know: answer v0 with UNSUPPORTED_VERSION.
    UnknownApiVersionsVersion {
        /// To echo back.
        correlation_id: i32,
    },
}

/// Checks a frame's API key and version against the registry and decodes its header. This runs
/// before any handler, so an unknown or unsupported version never reaches one.
pub fn read_preamble(frame: Bytes) -> Result<Preamble, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey(raw_key))?;
    let (min, max) = supported_versions(key).ok_or(ProtocolError::UnknownApiKey(raw_key))?;
    if version < min || version > max {
        if key == ApiKey::ApiVersions {
            return Ok(Preamble::UnknownApiVersionsVersion { correlation_id });
        }
        return Err(ProtocolError::UnsupportedVersion { key: raw_key, version });
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| ProtocolError::Decode { api: key, version, reason: format!("header: {e}") })?;
    Ok(Preamble::Request { key, version, header, body })
}

/// Decodes a whole request frame without running it, and checks any produce record batches:
/// the decoding half of [`dispatch`], for the fuzz target.
pub fn decode_request(frame: Bytes) -> Result<(), ProtocolError> {
    let Preamble::Request { key, version, mut body, .. } = read_preamble(frame)? else { return Ok(()) };
    let request = kafka_protocol::messages::RequestKind::decode(key, &mut body, version)
        .map_err(|e| ProtocolError::Decode { api: key, version, reason: e.to_string() })?;
    if let kafka_protocol::messages::RequestKind::Produce(p) = request {
        for records in p.topic_data.iter().flat_map(|t| &t.partition_data).filter_map(|d| d.records.as_ref()) {
            if let Ok(batches) = crate::storage::batch::split_batches(records) {
                for b in batches {
                    let _ = crate::storage::batch::validate(&b);
                }
            }
        }
    }
    Ok(())
}

/// Handles one request frame (without its size prefix) of `session`'s connection. `Ok(None)`: no
/// response is owed (acks=0).
pub async fn dispatch(router: &Rc<Router>, session: &Session, frame: Bytes) -> Result<Option<ResponseFrame>, ProtocolError> {
    match read_preamble(frame)? {
        // Kafka answers an unknown ApiVersions version with v0 and its own ranges.
        Preamble::UnknownApiVersionsVersion { correlation_id } => {
            handlers::api_versions::unsupported(correlation_id).map(|f| Some(f.into()))
        }
        Preamble::Request { key, version, header, mut body } => {
            router.metrics.count_request(key as i16);
            let started = std::time::Instant::now();
            let ctx = RequestContext { router, header: &header, version, session };
            let result = run_handler(&ctx, key, &mut body).await;
            match key {
                ApiKey::Produce => router.metrics.produce_latency.record(started.elapsed()),
                ApiKey::Fetch => router.metrics.fetch_latency.record(started.elapsed()),
                _ => {}
            }
            result
        }
    }
}
