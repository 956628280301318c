//! InitProducerId for idempotent producers (no transactional id). A new producer gets a
//! fresh id with epoch 0. A producer that re-initialises its existing id with its latest
//! epoch (v3+, KIP-360) keeps the id with the epoch bumped, so its old in-flight batches
//! are fenced; with a stale epoch, or at the last epoch, it gets a fresh id instead.
//! Transactions are not implemented yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use runnel_protocol::ResponseError;

use super::Context;

pub fn handle(ctx: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let broker = ctx.broker;
    let existing = request.producer_id.0;
    let epoch = request.producer_epoch;
    if existing >= 0 && epoch >= 0 {
        if !broker.producer_ids.was_allocated(&broker.metadata, existing) {
            return response.with_error_code(ResponseError::InvalidProducerIdMapping.code());
        }
        if let Some(bumped) = broker.producer_ids.bump(existing, epoch) {
            return response.with_producer_id(ProducerId(existing)).with_producer_epoch(bumped);
        }
    }
    match crate::metadata_store::blocking(|| broker.producer_ids.next(&broker.metadata)) {
        Ok(id) => {
            broker.producer_ids.started(id);
            response.with_producer_id(ProducerId(id)).with_producer_epoch(0)
        }
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id block failed");
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
