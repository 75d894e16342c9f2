//! InitProducerId: hands out producer ids for idempotent producers. Transactions are not served
//! yet, so a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;

/// Versions served (Kafka 4.0: 0–5).
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles InitProducerId.
pub async fn handle(ctx: &RequestContext<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // A producer that re-initialises (KIP-360) gets a fresh id: its old state is simply left behind.
    let (error_code, producer_id) = match ctx.router.mutate(MetadataMutation::AllocateProducerId).await {
        Ok(outcome) => (ErrorCode::NONE, outcome.producer_id.unwrap_or(-1)),
        Err(e) => {
            tracing::warn!(error = %e, "no producer id");
            (ErrorCode::from(&e), -1)
        }
    };
    tracing::info!(producer_id, "producer id allocated");
    InitProducerIdResponse::default()
        .with_error_code(error_code.code())
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(0)
}
