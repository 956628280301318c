//! Decoders for request versions `kafka-protocol` (like Kafka 4.0) no longer reads, written
//! from Kafka's schemas: OffsetForLeaderEpoch v0-v1 and DescribeConfigs v0. The broker
//! encodes their responses itself. Shared with the fuzz targets, which must reach every
//! decoder a request frame can reach.
//!
//! Invariant: nothing is reserved for an array before the body has shown it can hold that
//! many elements at their smallest encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{DescribeConfigsRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// Why a legacy request body does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyDecodeError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("negative {0}")]
    Negative(&'static str),
    #[error("array of {count} elements does not fit the {remaining} bytes left")]
    ArrayTooLong { count: usize, remaining: usize },
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("{0} bytes after the request")]
    Trailing(usize),
    #[error("{0}")]
    Body(String),
}

/// Bytes each array element takes at least.
const TOPIC_BYTES_MIN: usize = 2 + 4;
const PARTITION_BYTES: usize = 4 + 4;

fn count(body: &mut Bytes, element_bytes: usize) -> Result<usize, LegacyDecodeError> {
    if body.remaining() < 4 {
        return Err(LegacyDecodeError::Truncated("array length"));
    }
    let count = usize::try_from(body.get_i32()).map_err(|_| LegacyDecodeError::Negative("array length"))?;
    if count.saturating_mul(element_bytes) > body.remaining() {
        return Err(LegacyDecodeError::ArrayTooLong { count, remaining: body.remaining() });
    }
    Ok(count)
}

fn string(body: &mut Bytes) -> Result<String, LegacyDecodeError> {
    if body.remaining() < 2 {
        return Err(LegacyDecodeError::Truncated("string length"));
    }
    let len = usize::try_from(body.get_i16()).map_err(|_| LegacyDecodeError::Negative("string length"))?;
    if body.remaining() < len {
        return Err(LegacyDecodeError::Truncated("string"));
    }
    String::from_utf8(body.split_to(len).to_vec()).map_err(|_| LegacyDecodeError::NotUtf8)
}

/// OffsetsForLeaderEpoch v0 and v1 requests: topics of (partition, leader epoch), without
/// the current leader epoch or replica id of later versions.
pub fn offset_for_leader_epoch_v0_v1(mut body: Bytes) -> Result<OffsetForLeaderEpochRequest, LegacyDecodeError> {
    let topics = (0..count(&mut body, TOPIC_BYTES_MIN)?)
        .map(|_| {
            let topic = string(&mut body)?;
            // `count` checked that the body holds every partition's 8 bytes.
            let partitions = (0..count(&mut body, PARTITION_BYTES)?)
                .map(|_| {
                    OffsetForLeaderPartition::default().with_partition(body.get_i32()).with_leader_epoch(body.get_i32())
                })
                .collect();
            Ok(OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions))
        })
        .collect::<Result<Vec<_>, LegacyDecodeError>>()?;
    if body.has_remaining() {
        return Err(LegacyDecodeError::Trailing(body.remaining()));
    }
    Ok(OffsetForLeaderEpochRequest::default().with_topics(topics))
}

/// DescribeConfigs v0: the v1 request without its trailing `include_synonyms`.
pub fn describe_configs_v0(body: Bytes) -> Result<DescribeConfigsRequest, LegacyDecodeError> {
    let mut extended = BytesMut::with_capacity(body.len() + 1);
    extended.put_slice(&body);
    extended.put_u8(0); // include_synonyms = false
    DescribeConfigsRequest::decode(&mut extended.freeze(), 1).map_err(|e| LegacyDecodeError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_for_leader_epoch_v0_round_trips_and_refuses_lies() {
        let mut body = BytesMut::new();
        body.put_i32(1);
        body.put_i16(3);
        body.put_slice(b"abc");
        body.put_i32(2);
        for (partition, epoch) in [(0, 5), (1, 7)] {
            body.put_i32(partition);
            body.put_i32(epoch);
        }
        let request = offset_for_leader_epoch_v0_v1(body.clone().freeze()).unwrap();
        assert_eq!(request.topics[0].topic.0.as_str(), "abc");
        let epochs: Vec<_> = request.topics[0].partitions.iter().map(|p| (p.partition, p.leader_epoch)).collect();
        assert_eq!(epochs, vec![(0, 5), (1, 7)]);

        let mut lying = BytesMut::new();
        lying.put_i32(i32::MAX);
        assert!(matches!(offset_for_leader_epoch_v0_v1(lying.freeze()), Err(LegacyDecodeError::ArrayTooLong { .. })));
        let mut trailing = body.clone();
        trailing.put_u8(0);
        assert_eq!(offset_for_leader_epoch_v0_v1(trailing.freeze()), Err(LegacyDecodeError::Trailing(1)));
        let truncated = body.freeze().slice(..12);
        assert!(offset_for_leader_epoch_v0_v1(truncated).is_err());
    }
}
