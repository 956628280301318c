//! DescribeTopicPartitions v0 (KIP-966): topics and their partitions in pages, for clusters
//! whose Metadata response would be too large. The topics named (or every topic) are taken
//! in name order from the cursor on, whole partitions at a time, until
//! `response_partition_limit` partitions (at most [`PARTITION_LIMIT_MAX`], Kafka's
//! `max.request.partition.size.limit` default) are in the response; `next_cursor` says
//! where the next page starts. A named topic that does not exist gets
//! UNKNOWN_TOPIC_OR_PARTITION. Partitions are described as Metadata v12 describes them
//! (leader, epoch, replicas, ISR, offline replicas); Runnel has no eligible leader
//! replicas (KIP-966's ELR), so those lists are empty.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::Context;
use crate::groups::OFFSETS_TOPIC;

/// Kafka's `max.request.partition.size.limit` default: the most partitions in one page.
pub const PARTITION_LIMIT_MAX: i32 = 2000;

/// A topic's partitions `[from, to)` in a page.
pub type Slice = (String, i32, i32);
/// Where a page starts: a topic and a partition.
pub type At = (String, i32);

/// One page: for each topic (in name order), the partitions `[from, to)` it contributes,
/// and where the next page starts (topic, partition) if there is more. Pure.
pub fn page(topics: &[(String, i32)], cursor: Option<(&str, i32)>, limit: i32) -> (Vec<Slice>, Option<At>) {
    let limit = limit.clamp(1, PARTITION_LIMIT_MAX);
    let mut left = limit;
    let mut out = Vec::new();
    for (name, partitions) in topics {
        let from = match cursor {
            Some((after, _)) if name.as_str() < after => continue,
            Some((at, partition)) if name == at => partition.clamp(0, *partitions),
            _ => 0,
        };
        if left == 0 {
            return (out, Some((name.clone(), from)));
        }
        let to = (from + left).min(*partitions);
        out.push((name.clone(), from, to));
        left -= to - from;
        if to < *partitions {
            return (out, Some((name.clone(), to)));
        }
    }
    (out, None)
}

fn text(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn handle(ctx: &Context, request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let image = ctx.broker.metadata.image();
    let mut missing = Vec::new();
    let mut topics: Vec<(String, i32)> = if request.topics.is_empty() {
        image.topics.values().map(|t| (t.name.clone(), t.partitions.len() as i32)).collect()
    } else {
        let mut named = Vec::new();
        for t in &request.topics {
            match image.topic(t.name.as_str()) {
                Some(topic) => named.push((topic.name.clone(), topic.partitions.len() as i32)),
                None => missing.push(t.name.to_string()),
            }
        }
        named
    };
    topics.sort();
    topics.dedup();
    let cursor = request.cursor.as_ref().map(|c| (c.topic_name.as_str(), c.partition_index));
    let (taken, next) = page(&topics, cursor, request.response_partition_limit);
    // Described as Metadata v12 describes them, then cut to the page.
    let mut described = Vec::new();
    for (name, from, to) in taken {
        let Some(topic) = image.topic(&name) else { continue };
        let metadata = super::metadata::describe_for_listener(ctx, &image, topic, 12);
        let partitions = metadata
            .partitions
            .into_iter()
            .filter(|p| (from..to).contains(&p.partition_index))
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(p.error_code)
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(p.offline_replicas)
            })
            .collect();
        described.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(text(&name)))
                .with_topic_id(topic.topic_id)
                .with_is_internal(name == OFFSETS_TOPIC)
                .with_partitions(partitions)
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
        );
    }
    for name in missing {
        described.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                .with_name(Some(text(&name)))
                .with_topic_id(Uuid::nil())
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
        );
    }
    DescribeTopicPartitionsResponse::default().with_topics(described).with_next_cursor(
        next.map(|(name, partition)| Cursor::default().with_topic_name(text(&name)).with_partition_index(partition)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_topics_at_the_limit_and_resume_at_the_cursor() {
        let topics = vec![("a".to_string(), 3), ("b".to_string(), 5), ("c".to_string(), 1)];
        let (first, next) = page(&topics, None, 4);
        assert_eq!(first, [("a".to_string(), 0, 3), ("b".to_string(), 0, 1)]);
        assert_eq!(next, Some(("b".to_string(), 1)));
        let (second, next) = page(&topics, Some(("b", 1)), 4);
        assert_eq!(second, [("b".to_string(), 1, 5)]);
        assert_eq!(next, Some(("c".to_string(), 0)));
        let (last, next) = page(&topics, Some(("c", 0)), 4);
        assert_eq!((last, next), (vec![("c".to_string(), 0, 1)], None));
        let (all, next) = page(&topics, None, 100);
        assert_eq!((all.len(), next), (3, None));
        assert_eq!(page(&topics, Some(("bb", 0)), 10).0, [("c".to_string(), 0, 1)], "a cursor between topics");
        assert_eq!(page(&topics, None, 0).0, [("a".to_string(), 0, 1)], "at least one partition a page");
    }
}
