//! `controller_mutation_rate` (KIP-599): CreateTopics, CreatePartitions and DeleteTopics
//! cost the partitions they create or delete. A client whose quota is already exhausted
//! when such a request arrives gets THROTTLING_QUOTA_EXCEEDED for every topic of it (the
//! strict behaviour of CreateTopics v6+, CreatePartitions v3+ and DeleteTopics v5+); older
//! versions are never refused, only throttled, as in Kafka. What succeeded is charged
//! after the handler, and the request's throttle covers the debt.
//!
//! Invariants: with no quota stored nothing is checked or counted; a topic refused here reaches no
//! handler; only topics the handler answered without error are charged.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::QuotaKind;
use crate::handlers::Context;

const REFUSED: ResponseError = ResponseError::ThrottlingQuotaExceeded;

fn message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str(
        "the client's controller_mutation_rate quota is exhausted; retry after the throttle time",
    ))
}

/// Whether the request must be refused: a quota is set, exhausted, and the version is strict.
fn refuse(ctx: &Context, strict_from: i16) -> bool {
    ctx.charge
        .as_ref()
        .is_some_and(|charge| ctx.version >= strict_from && charge.exhausted(QuotaKind::ControllerMutation))
}

fn charge(ctx: &Context, partitions: usize) {
    if let Some(charge) = &ctx.charge {
        charge.bytes(QuotaKind::ControllerMutation, partitions);
    }
}

/// Charges the partitions of the topics answered without error: `counts` holds each
/// requested topic's partitions, `answered` each answered topic's name and error code.
fn charge_answered<'a>(ctx: &Context, counts: &[(String, usize)], answered: impl Iterator<Item = (&'a str, i16)>) {
    let partitions = answered
        .filter(|(_, error)| *error == 0)
        .filter_map(|(name, _)| counts.iter().find(|(n, _)| n == name).map(|(_, count)| *count))
        .sum();
    charge(ctx, partitions);
}

pub fn create_topics(
    ctx: &Context,
    request: CreateTopicsRequest,
    handle: impl FnOnce(CreateTopicsRequest) -> CreateTopicsResponse,
) -> CreateTopicsResponse {
    if ctx.charge.is_none() {
        return handle(request);
    }
    if refuse(ctx, 6) {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(REFUSED.code())
                    .with_error_message(message())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect();
        return CreateTopicsResponse::default().with_topics(topics);
    }
    let default_partitions = ctx.broker.live_config().num_partitions;
    let wanted: Vec<(String, usize)> = request
        .topics
        .iter()
        .map(|t| {
            let count = if !t.assignments.is_empty() {
                t.assignments.len() as i32
            } else if t.num_partitions > 0 {
                t.num_partitions
            } else {
                default_partitions
            };
            (t.name.to_string(), usize::try_from(count).unwrap_or(0))
        })
        .collect();
    let validate_only = request.validate_only;
    let response = handle(request);
    if !validate_only {
        charge_answered(ctx, &wanted, response.topics.iter().map(|t| (t.name.as_str(), t.error_code)));
    }
    response
}

pub fn create_partitions(
    ctx: &Context,
    request: CreatePartitionsRequest,
    handle: impl FnOnce(CreatePartitionsRequest) -> CreatePartitionsResponse,
) -> CreatePartitionsResponse {
    if ctx.charge.is_none() {
        return handle(request);
    }
    if refuse(ctx, 3) {
        let results = request
            .topics
            .iter()
            .map(|t| {
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(REFUSED.code())
                    .with_error_message(message())
            })
            .collect();
        return CreatePartitionsResponse::default().with_results(results);
    }
    let image = ctx.broker.metadata.image();
    let added: Vec<(String, usize)> = request
        .topics
        .iter()
        .map(|t| {
            let now = image.topic(t.name.as_str()).map_or(0, |topic| topic.partitions.len());
            (t.name.to_string(), usize::try_from(t.count).unwrap_or(0).saturating_sub(now))
        })
        .collect();
    let validate_only = request.validate_only;
    let response = handle(request);
    if !validate_only {
        charge_answered(ctx, &added, response.results.iter().map(|r| (r.name.as_str(), r.error_code)));
    }
    response
}

pub fn delete_topics(
    ctx: &Context,
    request: DeleteTopicsRequest,
    handle: impl FnOnce(DeleteTopicsRequest) -> DeleteTopicsResponse,
) -> DeleteTopicsResponse {
    if ctx.charge.is_none() {
        return handle(request);
    }
    let image = ctx.broker.metadata.image();
    if refuse(ctx, 5) {
        // Topics come by name (v0-5) or, from v6, by name or id.
        let names = request.topic_names.iter().map(|n| (Some(n.0.clone()), uuid::Uuid::nil()));
        let states = request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.clone()), t.topic_id));
        let responses = names
            .chain(states)
            .map(|(name, topic_id)| {
                DeletableTopicResult::default()
                    .with_name(name.map(TopicName))
                    .with_topic_id(topic_id)
                    .with_error_code(REFUSED.code())
                    .with_error_message(message())
            })
            .collect();
        return DeleteTopicsResponse::default().with_responses(responses);
    }
    let response = handle(request);
    // The image before the deletion still lists the deleted topics' partitions.
    let deleted = response
        .responses
        .iter()
        .filter(|r| r.error_code == 0)
        .filter_map(|r| {
            let topic = match &r.name {
                Some(name) => image.topic(name.as_str()),
                None => image.topic_by_id(&r.topic_id),
            };
            topic.map(|t| t.partitions.len())
        })
        .sum();
    charge(ctx, deleted);
    response
}
