//! ListOffsets for a topic's partitions, each asked of its leader (a follower answers
//! NOT_LEADER_OR_FOLLOWER, as in Kafka): used by `group describe`, `group reset-offsets` and
//! the console.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;

const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// Metadata for `topics` (every topic when `None`).
pub async fn metadata(conn: &mut Connection, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.to_string())))))
            .collect()
    });
    Ok(conn.send(&MetadataRequest::default().with_topics(topics), 12).await?)
}

/// The offset ListOffsets gives each partition of `topic` for `timestamp` ([`LATEST`],
/// [`EARLIEST`] or a time in epoch ms; -1 for a time past every record), each asked of the
/// partition's leader as `metadata` names it.
pub async fn of_partitions(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    topic: &str,
    partitions: &BTreeSet<i32>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let described = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .with_context(|| format!("no metadata for topic {topic}"))?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in described.partitions.iter().filter(|p| partitions.contains(&p.partition_index)) {
        anyhow::ensure!(p.leader_id.0 >= 0, "{topic}-{} has no leader now", p.partition_index);
        by_leader.entry(p.leader_id.0).or_default().push(p.partition_index);
    }
    let mut offsets = BTreeMap::new();
    for (leader, indexes) in by_leader {
        let mut conn = crate::connect::connect_to_node(metadata, leader, security).await?;
        let request =
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    indexes
                        .iter()
                        .map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(timestamp))
                        .collect(),
                )]);
        let response = conn.send(&request, LIST_OFFSETS_VERSION).await?;
        for t in &response.topics {
            for p in &t.partitions {
                crate::connect::check(
                    p.error_code,
                    None,
                    &format!("listing offsets of {topic}-{}", p.partition_index),
                )?;
                offsets.insert(p.partition_index, p.offset);
            }
        }
    }
    Ok(offsets)
}

/// The log end offset of every partition of the first `topics_max` topics of `metadata`
/// (internal ones left out), with one ListOffsets per leader; partitions without a leader,
/// or whose leader cannot be asked, are left out.
pub async fn latest_of_all(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    topics_max: usize,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in metadata.topics.iter().filter(|t| !t.is_internal && t.error_code == 0).take(topics_max) {
        let Some(name) = &t.name else { continue };
        for p in t.partitions.iter().filter(|p| p.leader_id.0 >= 0) {
            by_leader.entry(p.leader_id.0).or_default().entry(name.0.to_string()).or_default().push(p.partition_index);
        }
    }
    let mut offsets = BTreeMap::new();
    for (leader, topics) in by_leader {
        let Ok(mut conn) = crate::connect::connect_to_node(metadata, leader, security).await else { continue };
        let request = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(LATEST)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let Ok(response) = conn.send(&request, LIST_OFFSETS_VERSION).await else { continue };
        for t in &response.topics {
            for p in t.partitions.iter().filter(|p| p.error_code == 0) {
                offsets.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(offsets)
}
