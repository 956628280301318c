//! AlterPartitionReassignments (v0-v1) and ListPartitionReassignments (v0): moving
//! partition replicas between brokers (KIP-455). The decisions are in
//! `runnel_metadata::reassignment`; the new replicas copy the data as followers and join the
//! ISR before the active controller completes the move.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::reassignment::{self, ReassignError};
use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;

use super::Context;

fn error_code(error: &ReassignError) -> ResponseError {
    match error {
        ReassignError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ReassignError::InvalidAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ReassignError::ReplicationFactorChange { .. } => ResponseError::InvalidReplicationFactor,
        ReassignError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    }
}

/// Starts (or with `target: None` cancels) one partition's reassignment.
fn alter_one(
    ctx: &Context,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Option<(ResponseError, String)> {
    let committed = ctx.broker.metadata.commit(|image: &MetadataImage| match target {
        Some(target) => reassignment::start(image, topic, partition, target, allow_rf_change),
        None => reassignment::cancel(image, topic, partition),
    });
    match committed {
        Ok(Ok(image)) => {
            // Open or drop this node's replicas at once (the image follower does it too).
            if let Err(e) = ctx.broker.publish(&image) {
                tracing::warn!(error = %e, "applying a reassignment locally failed");
            }
            tracing::info!(topic, partition, ?target, "partition reassignment changed");
            None
        }
        Ok(Err(e)) => Some((error_code(&e), e.to_string())),
        Err(e) => Some((crate::metadata_store::metadata_error_code(&e), e.to_string())),
    }
}

pub fn alter(ctx: &Context, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let allow = if ctx.version >= 1 { request.allow_replication_factor_change } else { true };
    let responses = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                    let outcome = crate::metadata_store::blocking(|| {
                        alter_one(ctx, name, p.partition_index, target.as_deref(), allow)
                    });
                    let response = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match outcome {
                        None => response.with_error_message(None),
                        Some((error, message)) => response
                            .with_error_code(error.code())
                            .with_error_message(Some(StrBytes::from_string(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default().with_error_message(None).with_responses(responses);
    if ctx.version >= 1 {
        response.with_allow_replication_factor_change(allow)
    } else {
        response
    }
}

pub fn list(ctx: &Context, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = ctx.broker.metadata.image();
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics.iter().any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = image
        .topics
        .values()
        .filter_map(|topic| {
            let partitions: Vec<OngoingPartitionReassignment> = topic
                .partitions
                .iter()
                .filter(|p| p.is_reassigning() && wanted(&topic.name, p.partition))
                .map(|p| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.partition)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_error_message(None).with_topics(topics)
}
