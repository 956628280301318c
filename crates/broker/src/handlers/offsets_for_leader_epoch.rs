//! OffsetsForLeaderEpoch (v2-v4; Kafka 4.0 removed v0-v1 with KIP-896, and so does the
//! codec): where a leader epoch ends in this leader's log. Followers
//! ask it before fetching from a new leader, to truncate what the leader does not hold;
//! consumers ask it to detect truncation after a leader change (KIP-320).

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use runnel_protocol::ResponseError;
use runnel_storage::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

use super::Context;

fn answer(ctx: &Context, topic: &str, index: i32, current_leader_epoch: i32, leader_epoch: i32) -> EpochEndOffset {
    let response = EpochEndOffset::default().with_partition(index);
    let failed = |error: ResponseError| {
        EpochEndOffset::default()
            .with_partition(index)
            .with_error_code(error.code())
            .with_leader_epoch(UNDEFINED_EPOCH)
            .with_end_offset(UNDEFINED_EPOCH_OFFSET)
    };
    let image = ctx.broker.metadata.image();
    let partition = match ctx.broker.replicas.led_partition(&image, topic, index) {
        Ok(partition) => partition,
        Err(error) => return failed(error),
    };
    let epoch = partition.leader_epoch();
    if current_leader_epoch >= 0 && current_leader_epoch != epoch {
        let error = if current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return failed(error);
    }
    match partition.end_offset_for_epoch(leader_epoch) {
        Ok((epoch, end_offset)) => response.with_end_offset(end_offset).with_leader_epoch(epoch),
        Err(_) => failed(ResponseError::UnknownTopicOrPartition),
    }
}

pub fn handle(ctx: &Context, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.topic.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| answer(ctx, name, p.partition, p.current_leader_epoch, p.leader_epoch))
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
