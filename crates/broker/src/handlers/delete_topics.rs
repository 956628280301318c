//! DeleteTopics, by name (all versions) and by topic id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::MetadataRecord;
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::Context;
use crate::groups::OFFSETS_TOPIC;

fn delete_one(ctx: &Context, name: Option<&str>, id: Uuid) -> DeletableTopicResult {
    let by_id = name.is_none();
    // The response names the topic both ways: its id when deleted by name and vice versa.
    let mut found: Option<(String, Uuid)> = None;
    let committed = ctx.broker.metadata.commit(|image| {
        let topic = match name {
            Some(name) => image.topic(name),
            None => image.topic_by_id(&id),
        };
        match topic {
            // Kafka refuses too: the group coordinator owns it.
            Some(topic) if topic.name == OFFSETS_TOPIC => Err(ResponseError::InvalidTopicException),
            Some(topic) => {
                found = Some((topic.name.clone(), topic.topic_id));
                Ok(vec![MetadataRecord::RemoveTopic { topic_id: topic.topic_id }])
            }
            None if by_id => Err(ResponseError::UnknownTopicId),
            None => Err(ResponseError::UnknownTopicOrPartition),
        }
    });
    let (result_name, result_id) = found.clone().map_or((name.map(str::to_string), id), |(n, i)| (Some(n), i));
    let result = DeletableTopicResult::default()
        .with_topic_id(result_id)
        .with_name(result_name.map(|n| TopicName(StrBytes::from_string(n))));
    match committed {
        Ok(Ok(image)) => {
            if let Err(e) = tokio::task::block_in_place(|| ctx.broker.publish(&image)) {
                tracing::error!(error = %e, "deleting partition folders failed");
            }
            tracing::info!(topic = ?found, "deleted topic");
            result
        }
        Ok(Err(error)) => result.with_error_code(error.code()),
        Err(e) => result
            .with_error_code(crate::metadata_store::metadata_error_code(&e).code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

pub fn handle(ctx: &Context, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut responses: Vec<DeletableTopicResult> =
        request.topic_names.iter().map(|name| delete_one(ctx, Some(name.0.as_str()), Uuid::nil())).collect();
    for state in &request.topics {
        let result = match &state.name {
            Some(name) => delete_one(ctx, Some(name.0.as_str()), Uuid::nil()),
            None => delete_one(ctx, None, state.topic_id),
        };
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
