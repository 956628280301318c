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

/// Partitions to ask about, by leader: leader -> topic -> partitions.
type ByLeader = BTreeMap<i32, BTreeMap<String, Vec<i32>>>;

/// Asks each leader once (one connection, one ListOffsets) for its partitions at
/// `timestamp`. Offsets found, by (topic, partition), and what went wrong for the others (a
/// leader that could not be asked, a partition that answered an error).
async fn ask_leaders(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    by_leader: ByLeader,
    timestamp: i64,
) -> (BTreeMap<(String, i32), i64>, Vec<anyhow::Error>) {
    let mut offsets = BTreeMap::new();
    let mut errors = Vec::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions
                        .iter()
                        .map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(timestamp));
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(partitions.collect())
                })
                .collect(),
        );
        let response = match crate::connect::connect_to_node(metadata, leader, security).await {
            Ok(mut conn) => conn.send(&request, LIST_OFFSETS_VERSION).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for t in &response.topics {
            for p in &t.partitions {
                let what = format!("listing offsets of {}-{}", t.name.0, p.partition_index);
                match crate::connect::check(p.error_code, None, &what) {
                    Ok(()) => {
                        offsets.insert((t.name.0.to_string(), p.partition_index), p.offset);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    (offsets, errors)
}

/// `topic`'s partitions among `partitions`, by leader; those without a leader apart.
fn leaders_of(
    metadata: &MetadataResponse,
    topic: &str,
    partitions: &BTreeSet<i32>,
) -> anyhow::Result<(ByLeader, Vec<i32>)> {
    let described = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .with_context(|| format!("no metadata for topic {topic}"))?;
    let mut by_leader = ByLeader::new();
    let mut leaderless = Vec::new();
    for p in described.partitions.iter().filter(|p| partitions.contains(&p.partition_index)) {
        if p.leader_id.0 < 0 {
            leaderless.push(p.partition_index);
        } else {
            by_leader.entry(p.leader_id.0).or_default().entry(topic.to_string()).or_default().push(p.partition_index);
        }
    }
    Ok((by_leader, leaderless))
}

/// The offset ListOffsets gives each partition of `topic` for `timestamp` ([`LATEST`],
/// [`EARLIEST`] or a time in epoch ms; -1 for a time past every record), each asked of the
/// partition's leader as `metadata` names it. Any partition that cannot be answered is an
/// error.
pub async fn of_partitions(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    topic: &str,
    partitions: &BTreeSet<i32>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let (by_leader, leaderless) = leaders_of(metadata, topic, partitions)?;
    if let Some(p) = leaderless.first() {
        anyhow::bail!("{topic}-{p} has no leader now");
    }
    let (offsets, errors) = ask_leaders(metadata, security, by_leader, timestamp).await;
    if let Some(error) = errors.into_iter().next() {
        return Err(error);
    }
    Ok(offsets.into_iter().map(|((_, p), offset)| (p, offset)).collect())
}

/// As [`of_partitions`], leaving out the partitions that cannot be answered now (no leader,
/// a leader that cannot be asked, an error): for views that show what is known.
pub async fn of_available_partitions(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    topic: &str,
    partitions: &BTreeSet<i32>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let (by_leader, _) = leaders_of(metadata, topic, partitions)?;
    let (offsets, _) = ask_leaders(metadata, security, by_leader, timestamp).await;
    Ok(offsets.into_iter().map(|((_, p), offset)| (p, offset)).collect())
}

/// The log end offset of every partition of the first `topics_max` topics of `metadata`
/// (internal ones left out), with one ListOffsets per leader; partitions without a leader,
/// or whose leader cannot be asked, are left out.
pub async fn latest_of_all(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    topics_max: usize,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_leader = ByLeader::new();
    for t in metadata.topics.iter().filter(|t| !t.is_internal && t.error_code == 0).take(topics_max) {
        let Some(name) = &t.name else { continue };
        for p in t.partitions.iter().filter(|p| p.leader_id.0 >= 0) {
            by_leader.entry(p.leader_id.0).or_default().entry(name.0.to_string()).or_default().push(p.partition_index);
        }
    }
    Ok(ask_leaders(metadata, security, by_leader, LATEST).await.0)
}
