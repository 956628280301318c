//! DeleteRecords v0-2: a partition's leader raises its log start offset to the requested
//! offset (-1: the high watermark), deletes the segments wholly below it, and writes the
//! log-start checkpoint before answering, so the deletion survives a crash. Followers take
//! the leader's log start offset from their next fetch response (bounded by the high
//! watermark), so a new leader keeps it. Consumers below it get OFFSET_OUT_OF_RANGE. A
//! topic whose `cleanup.policy` lacks `delete` answers POLICY_VIOLATION, as in Kafka.
//!
//! As Kafka's purgatory does, the answer waits (up to the request's `timeout_ms`) until
//! every live replica's log start has reached the offset: followers report theirs in each
//! fetch. The low watermark answered is the lowest of them; a partition whose followers do
//! not catch up in time answers REQUEST_TIMED_OUT (the deletion itself stands). With
//! tiered storage the remote log start is raised too (a `RemoteLogStart` record), and the
//! leader's remote retention deletes the remote segments below it.

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
    // A tiered partition deletes local segments only once uploaded, as its retention does.
    let uploaded = crate::tiering::uploaded_through(ctx.broker, &ctx.broker.metadata.image(), &partition);
    let low_watermark = partition
        .with_log(|log| {
            log.advance_log_start_offset(target);
            match uploaded {
                Some(uploaded) => log.apply_local_retention(now_ms(), uploaded)?,
                None => log.apply_retention(now_ms())?,
            };
            Ok(log.log_start_offset())
        })
        .map_err(|e| match e {
            PartitionError::Deleted => ResponseError::UnknownTopicOrPartition,
            _ => ResponseError::KafkaStorageError,
        })?;
    // Tiered storage: the remote log start follows, and remote retention deletes the
    // remote segments below it.
    let remote_start = ctx
        .broker
        .metadata
        .image()
        .remote_logs
        .get(&(partition.topic_id, partition.index))
        .and_then(|log| log.start_offset());
    if ctx.broker.remote.is_some() && remote_start.is_some_and(|start| start < target) {
        let record = runnel_metadata::MetadataRecord::RemoteLogStart {
            topic_id: partition.topic_id,
            partition: partition.index,
            offset: target,
        };
        tokio::task::block_in_place(|| ctx.broker.metadata.commit(|_| Ok::<_, ()>(vec![record])))
            .map_err(|_| ResponseError::KafkaStorageError)?
            .map_err(|()| ResponseError::KafkaStorageError)?;
    }
    Ok(low_watermark)
}

/// How often a waiting DeleteRecords looks at the followers' log starts again.
const REPLICA_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Waits until every live replica of `topic`-`index` starts at `target` or later, or
/// `deadline`; the low watermark, or REQUEST_TIMED_OUT.
async fn replicas_reach(
    ctx: &Context<'_>,
    topic: &str,
    index: i32,
    target: i64,
    deadline: tokio::time::Instant,
) -> Result<i64, ResponseError> {
    loop {
        let partition = ctx.broker.replicas.partition(topic, index).ok_or(ResponseError::UnknownTopicOrPartition)?;
        if !partition.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let image = ctx.broker.metadata.image();
        let alive = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
        let low = partition.low_watermark(alive);
        if low >= target {
            return Ok(low);
        }
        if tokio::time::Instant::now() >= deadline || *ctx.stop.borrow() {
            return Err(ResponseError::RequestTimedOut);
        }
        tokio::time::sleep(REPLICA_CHECK_INTERVAL).await;
    }
}

pub async fn handle(ctx: &Context<'_>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(
            u64::try_from(request.timeout_ms).unwrap_or(0).min(ctx.broker.config.request_timeout_ms),
        );
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut deleted_any = false;
    // (topic index, partition index within it, the target every replica must reach)
    let mut waiting = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                match delete_before(ctx, topic.name.as_str(), p.partition_index, p.offset) {
                    Ok(low_watermark) => {
                        deleted_any = true;
                        tracing::info!(topic = %topic.name.as_str(), partition = p.partition_index, low_watermark, "records deleted");
                        waiting.push((t, i, low_watermark));
                        result.with_low_watermark(low_watermark)
                    }
                    Err(error) => result.with_low_watermark(-1).with_error_code(error.code()),
                }
            })
            .collect::<Vec<_>>();
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    if deleted_any {
        if let Err(error) = ctx.broker.replicas.write_checkpoints() {
            tracing::warn!(%error, "writing the log-start checkpoint after DeleteRecords failed");
        }
    }
    for (t, i, target) in waiting {
        let result = &mut topics[t].partitions[i];
        match replicas_reach(ctx, request.topics[t].name.as_str(), result.partition_index, target, deadline).await {
            Ok(low_watermark) => result.low_watermark = low_watermark,
            Err(error) => {
                result.low_watermark = -1;
                result.error_code = error.code();
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
