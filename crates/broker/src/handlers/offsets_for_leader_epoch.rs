//! OffsetsForLeaderEpoch (v0-v4; v0-v1, which Kafka 4.0 removed with KIP-896 and the codec
//! lacks, are encoded by hand in [`legacy`]): where a leader epoch ends in this leader's log. Followers
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
    if let Err(error) = partition.check_leader_epoch(current_leader_epoch) {
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

/// OffsetsForLeaderEpoch v0 and v1 responses, which `kafka-protocol` (like Kafka 4.0) no
/// longer encodes; encoded here from Kafka's schema (the requests are decoded by
/// `runnel_protocol::legacy`). Requests of both carry topics of
/// (partition, leader epoch) without the current leader epoch; responses have no throttle
/// time, and v1 adds each partition's leader epoch.
pub mod legacy {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::OffsetForLeaderEpochResponse;

    use super::Context;
    use crate::response::{Chunk, Frame};

    pub fn respond(ctx: &Context, response: OffsetForLeaderEpochResponse) -> Frame {
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // size, patched below
        buf.put_i32(ctx.header.correlation_id);
        buf.put_i32(response.topics.len() as i32);
        for topic in &response.topics {
            buf.put_i16(topic.topic.0.len() as i16);
            buf.put_slice(topic.topic.0.as_bytes());
            buf.put_i32(topic.partitions.len() as i32);
            for p in &topic.partitions {
                buf.put_i16(p.error_code);
                buf.put_i32(p.partition);
                if ctx.version >= 1 {
                    buf.put_i32(p.leader_epoch);
                }
                buf.put_i64(p.end_offset);
            }
        }
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        Frame { chunks: vec![Chunk::Bytes(buf.freeze())] }
    }
}
