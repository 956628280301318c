//! CreatePartitions v0-v3: grows topics through the metadata log, placing the new
//! partitions like the existing ones (same replication factor, leaders rotating).

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::controller::{create_partitions, CreatePartitionsError};
use runnel_protocol::ResponseError;

use super::Context;

fn refusal(e: &CreatePartitionsError) -> ResponseError {
    match e {
        CreatePartitionsError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        CreatePartitionsError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        CreatePartitionsError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        _ => ResponseError::InvalidRequest,
    }
}

fn grow(ctx: &Context, topic: &CreatePartitionsTopic, validate_only: bool) -> CreatePartitionsTopicResult {
    let name = topic.name.0.to_string();
    let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone()).with_error_message(None);
    let fail = |error: ResponseError, message: String| {
        result.clone().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message)))
    };
    if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
        return fail(
            ResponseError::InvalidReplicaAssignment,
            "manual partition assignment is not supported yet".into(),
        );
    }
    let broker = ctx.broker;
    let committed = broker.metadata.commit(|image| {
        let records = create_partitions(image, &name, topic.count)?;
        Ok::<_, CreatePartitionsError>(if validate_only { vec![] } else { records })
    });
    match committed {
        Ok(Ok(image)) => {
            if !validate_only {
                let opened = tokio::task::block_in_place(|| broker.publish(&image));
                if let Err(e) = opened {
                    return fail(ResponseError::KafkaStorageError, e.to_string());
                }
                tracing::info!(topic = %name, partitions = topic.count, "added partitions");
            }
            result
        }
        Ok(Err(e)) => fail(refusal(&e), e.to_string()),
        Err(e) => fail(crate::metadata_store::metadata_error_code(&e), e.to_string()),
    }
}

pub fn handle(ctx: &Context, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = request.topics.iter().map(|topic| grow(ctx, topic, request.validate_only)).collect();
    CreatePartitionsResponse::default().with_results(results)
}
