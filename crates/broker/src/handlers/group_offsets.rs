//! OffsetCommit (v0-9), OffsetFetch (v0-9, several groups per request from v8) and
//! OffsetDelete (v0), over the group coordinator. OffsetFetch with `require_stable` (v7+,
//! KIP-447) answers UNSTABLE_OFFSET_COMMIT for a partition whose offset an open transaction
//! is committing, so a read_committed consumer never starts from an offset about to move.
//!
//! Version 0 of OffsetCommit and OffsetFetch kept offsets in ZooKeeper; Kafka 3.9 in KRaft
//! mode decodes them and answers every partition with UNSUPPORTED_VERSION, and so does
//! Runnel (after the access gates and, for a commit, the unknown-partition check).
//! OffsetCommit v1 is a coordinator commit like v2, with no retention time and a
//! per-partition commit timestamp (-1: now).

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;
use std::collections::HashMap;

use super::Context;
use crate::groups::offsets::{CommitPartition, CommitRequest, FetchedOffset};

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Whether `topic`-`partition` exists; offsets of other partitions are refused.
pub(super) fn exists(ctx: &Context, topic: &str, partition: i32) -> bool {
    ctx.broker
        .metadata
        .image()
        .topic(topic)
        .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
}

pub async fn commit(ctx: &Context<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    // Partitions that do not exist are answered here; the rest go to the coordinator.
    let mut refused: Vec<(String, i32, ResponseError)> = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            if group_id.is_empty() {
                refused.push((name.clone(), p.partition_index, ResponseError::InvalidGroupId));
            } else if !exists(ctx, &name, p.partition_index) {
                refused.push((name.clone(), p.partition_index, ResponseError::UnknownTopicOrPartition));
            } else {
                partitions.push(CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: p.commit_timestamp,
                });
            }
        }
        topics.push((name, partitions));
    }
    let commit = CommitRequest {
        group_id,
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_time_ms: if (2..=4).contains(&ctx.version) { request.retention_time_ms } else { -1 },
        topics,
        version: ctx.version,
    };
    let any = commit.topics.iter().any(|(_, ps)| !ps.is_empty());
    if any && ctx.version == 0 {
        // Kafka 3.9 (KRaft) fails the whole request: no ZooKeeper to store v0 offsets in.
        return unsupported_commit(&request);
    }
    let results = if any { ctx.broker.groups.commit(ctx.broker.as_ref(), &commit).await } else { Vec::new() };
    // Answer in request order, through maps: a request may name very many partitions.
    let refused_by: HashMap<(&str, i32), ResponseError> =
        refused.iter().map(|(t, i, e)| ((t.as_str(), *i), *e)).collect();
    let committed_by = by_partition(&results);
    let responses = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let index = p.partition_index;
                    let error = refused_by
                        .get(&(name, index))
                        .map(|e| Some(*e))
                        .or_else(|| committed_by.get(&(name, index)).copied())
                        .unwrap_or(Some(ResponseError::UnknownServerError));
                    OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code(error))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(responses)
}

/// Every partition of `request` with UNSUPPORTED_VERSION (OffsetCommit v0).
fn unsupported_commit(request: &OffsetCommitRequest) -> OffsetCommitResponse {
    let error = ResponseError::UnsupportedVersion.code();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Every requested partition with UNSUPPORTED_VERSION, offset -1 and no metadata, as Kafka
/// 3.9's error response to OffsetFetch v0 (whose topic list is never null).
fn unsupported_fetch(request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let error = ResponseError::UnsupportedVersion.code();
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(-1)
                        .with_metadata(Some(StrBytes::default()))
                        .with_error_code(error)
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn fetched_v1(version: i16, offset: FetchedOffset) -> OffsetFetchResponsePartition {
    let partition = OffsetFetchResponsePartition::default()
        .with_partition_index(offset.partition)
        .with_committed_offset(offset.offset)
        .with_metadata(Some(StrBytes::from_string(offset.metadata)));
    if version >= 5 {
        partition.with_committed_leader_epoch(offset.leader_epoch)
    } else {
        partition
    }
}

fn fetched_v8(offset: FetchedOffset) -> OffsetFetchResponsePartitions {
    OffsetFetchResponsePartitions::default()
        .with_partition_index(offset.partition)
        .with_committed_offset(offset.offset)
        .with_committed_leader_epoch(offset.leader_epoch)
        .with_metadata(Some(StrBytes::from_string(offset.metadata)))
}

pub async fn fetch(ctx: &Context<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = &ctx.broker.groups;
    if ctx.version == 0 {
        return unsupported_fetch(&request);
    }
    if ctx.version < 8 {
        let wanted: Option<Vec<(String, Vec<i32>)>> = request
            .topics
            .as_ref()
            .map(|topics| topics.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
        let offsets = match groups.fetch(ctx.broker.as_ref(), request.group_id.0.as_str(), wanted.as_deref()).await {
            Ok(offsets) => offsets,
            // The top-level error exists from v2; v0-v1 clients see it as an empty answer.
            Err(error) => return OffsetFetchResponse::default().with_error_code(error.code()),
        };
        let topics = offsets
            .into_iter()
            .map(|(topic, partitions)| {
                let group_id = request.group_id.0.as_str();
                let partitions = partitions
                    .into_iter()
                    .map(|o| {
                        // v7: KIP-447's require_stable.
                        let unstable = request.require_stable && groups.has_pending(group_id, &topic, o.partition);
                        let fetched = fetched_v1(ctx.version, o);
                        if unstable {
                            fetched.with_error_code(ResponseError::UnstableOffsetCommit.code())
                        } else {
                            fetched
                        }
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(topic_name(&topic)).with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let mut results = Vec::with_capacity(request.groups.len());
    for group in &request.groups {
        let wanted: Option<Vec<(String, Vec<i32>)>> = group
            .topics
            .as_ref()
            .map(|topics| topics.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
        let answer = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
        let offsets = match groups.fetch(ctx.broker.as_ref(), group.group_id.0.as_str(), wanted.as_deref()).await {
            Ok(offsets) => offsets,
            Err(error) => {
                results.push(answer.with_error_code(error.code()));
                continue;
            }
        };
        let group_id = group.group_id.0.as_str();
        let topics = offsets
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|offset| {
                        let unstable = request.require_stable && groups.has_pending(group_id, &topic, offset.partition);
                        let fetched = fetched_v8(offset);
                        if unstable {
                            fetched.with_error_code(ResponseError::UnstableOffsetCommit.code())
                        } else {
                            fetched
                        }
                    })
                    .collect();
                OffsetFetchResponseTopics::default().with_name(topic_name(&topic)).with_partitions(partitions)
            })
            .collect();
        results.push(answer.with_topics(topics));
    }
    OffsetFetchResponse::default().with_groups(results)
}

pub async fn delete(ctx: &Context<'_>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id: &GroupId = &request.group_id;
    let mut wanted = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let partitions =
            topic.partitions.iter().map(|p| p.partition_index).filter(|p| exists(ctx, &name, *p)).collect();
        wanted.push((name, partitions));
    }
    let result = ctx.broker.groups.delete_offsets(ctx.broker.as_ref(), group_id.0.as_str(), &wanted).await;
    let results = match result {
        Ok(results) => results,
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
    };
    let done = by_partition(&results);
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = match done.get(&(name, p.partition_index)) {
                        Some(error) => *error,
                        None => Some(ResponseError::UnknownTopicOrPartition),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// A topic's partitions with their outcome, as the coordinator answers.
pub(super) type TopicResults = (String, Vec<(i32, Option<ResponseError>)>);

/// Per-topic partition results indexed by (topic, partition), for answering in request
/// order without a scan per partition.
pub(super) fn by_partition(results: &[TopicResults]) -> HashMap<(&str, i32), Option<ResponseError>> {
    results.iter().flat_map(|(t, ps)| ps.iter().map(move |(i, e)| ((t.as_str(), *i), *e))).collect()
}
