//! InitProducerId for idempotent producers (no transactional id). A new producer gets a
//! fresh id with epoch 0. A producer that re-initialises its existing id with its latest
//! epoch (v3+, KIP-360) keeps the id with the epoch bumped, so its old in-flight batches
//! are fenced; with a stale epoch, or at the last epoch, it gets a fresh id instead.
//! With a transactional id, the transaction coordinator answers (fencing the id's previous
//! producer and aborting its open transaction, KIP-98 and KIP-360).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use runnel_protocol::ResponseError;

use super::Context;

pub async fn handle(ctx: &Context<'_>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if let Some(id) = &request.transactional_id {
        return transactional(ctx, id.0.as_str(), &request).await;
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

async fn transactional(ctx: &Context<'_>, id: &str, request: &InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if !super::transactions::valid_id(id) {
        return failed(ResponseError::InvalidRequest);
    }
    let broker = ctx.broker.as_ref();
    let expected = crate::transactions::decide::ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let (answer, job) =
        broker.transactions.init_producer_id(broker, id, request.transaction_timeout_ms, expected).await;
    if let Some(job) = job {
        crate::transactions::markers::spawn(ctx.broker, job);
    }
    match answer {
        Ok(p) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(p.producer_id))
            .with_producer_epoch(p.producer_epoch),
        Err(error) => failed(error),
    }
}
