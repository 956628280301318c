//! DeleteRecords v0-2: a partition's leader raises its log start offset to the requested
//! offset (-1: the high watermark), deletes the segments wholly below it, and writes the
//! log-start checkpoint before answering, so the deletion survives a crash. Followers take
//! the leader's log start offset from their next fetch response (bounded by the high
//! watermark), so a new leader keeps it. Consumers below it get OFFSET_OUT_OF_RANGE. A
//! topic whose `cleanup.policy` lacks `delete` answers POLICY_VIOLATION, as in Kafka.
//!
//! Kafka answers once every replica's log start has reached the offset (its purgatory);
//! Runnel answers once the leader's has, with the leader's as the low watermark.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use runnel_protocol::ResponseError;

use super::Context;
use crate::clock::now_ms;
use crate::partition::PartitionError;

/// Kafka's "delete up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

fn delete_before(ctx: &Context, topic: &str, index: i32, offset: i64) -> Result<i64, ResponseError> {
    let partition = ctx.broker.replicas.partition(topic, index).ok_or(ResponseError::UnknownTopicOrPartition)?;
    if !partition.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    // Kafka's rule: records of a compact-only topic are deleted by the cleaner alone.
    if !partition.settings().deletes {
        return Err(ResponseError::PolicyViolation);
    }
    let high_watermark = partition.high_watermark();
    let target = if offset == HIGH_WATERMARK { high_watermark } else { offset };
    if target < 0 || target > high_watermark {
        return Err(ResponseError::OffsetOutOfRange);
    }
    let low_watermark = partition
        .with_log(|log| {
            log.advance_log_start_offset(target);
            log.apply_retention(now_ms())?;
            Ok(log.log_start_offset())
        })
        .map_err(|e| match e {
            PartitionError::Deleted => ResponseError::UnknownTopicOrPartition,
            _ => ResponseError::KafkaStorageError,
        })?;
    Ok(low_watermark)
}

pub fn handle(ctx: &Context, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut deleted_any = false;
    for topic in &request.topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                match delete_before(ctx, topic.name.as_str(), p.partition_index, p.offset) {
                    Ok(low_watermark) => {
                        deleted_any = true;
                        tracing::info!(topic = %topic.name.as_str(), partition = p.partition_index, low_watermark, "records deleted");
                        result.with_low_watermark(low_watermark)
                    }
                    Err(error) => result.with_low_watermark(-1).with_error_code(error.code()),
                }
            })
            .collect();
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    if deleted_any {
        if let Err(error) = ctx.broker.replicas.write_checkpoints() {
            tracing::warn!(%error, "writing the log-start checkpoint after DeleteRecords failed");
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
