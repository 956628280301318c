//! ElectLeaders v0-2 (KIP-183, KIP-460): an operator asks for preferred leaders back
//! (election type 0) or for an unclean election of leaderless partitions (type 1).
//!
//! The decisions are the controller's pure ones ([`preferred_leaders`], [`unclean_leaders`]),
//! committed through the metadata log as conditional partition changes. Each partition's
//! answer compares the image the decision ran against with the committed image, so a change
//! that lost a race (skipped on apply) is reported as not done rather than assumed done.
//! As in Kafka, a request for all partitions (null `topic_partitions`) leaves out the
//! partitions that needed no election.

use std::convert::Infallible;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::election::{preferred_leaders, unclean_leaders};
use runnel_metadata::{MetadataImage, MetadataRecord, PartitionImage};
use runnel_protocol::ResponseError;

use super::Context;
use crate::metadata_store::blocking;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

type Decide = fn(&MetadataImage, Option<&[(String, i32)]>) -> Vec<MetadataRecord>;

/// One requested topic: its partitions as the decision saw them (`None`: unknown).
struct Asked {
    topic: String,
    partitions: Vec<(i32, Option<PartitionImage>)>,
}

/// The partitions a request names, or every partition when it names none.
fn resolve(image: &MetadataImage, request: &ElectLeadersRequest) -> Vec<Asked> {
    let Some(requested) = &request.topic_partitions else {
        return image
            .topics
            .values()
            .map(|t| Asked {
                topic: t.name.clone(),
                partitions: t.partitions.iter().map(|p| (p.partition, Some(p.clone()))).collect(),
            })
            .collect();
    };
    requested
        .iter()
        .map(|t| {
            let topic = image.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|i| {
                    let found = topic.and_then(|topic| usize::try_from(*i).ok().and_then(|i| topic.partitions.get(i)));
                    (*i, found.cloned())
                })
                .collect();
            Asked { topic: t.topic.0.to_string(), partitions }
        })
        .collect()
}

fn known(asked: &[Asked]) -> Vec<(String, i32)> {
    asked
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|(_, p)| p.is_some()).map(|(i, _)| (t.topic.clone(), *i)))
        .collect()
}

/// The answer for one known partition (`None`: elected): `before` as decided against,
/// `after` as committed.
fn outcome(election_type: i8, before: &PartitionImage, after: Option<&PartitionImage>) -> Option<ResponseError> {
    let after_leader = after.map_or(-1, |p| p.leader);
    match election_type {
        PREFERRED => {
            let preferred = before.replicas.first().copied();
            if preferred == Some(before.leader) {
                Some(ResponseError::ElectionNotNeeded)
            } else if preferred.is_some() && preferred == Some(after_leader) {
                None
            } else {
                Some(ResponseError::PreferredLeaderNotAvailable)
            }
        }
        _ => {
            if before.leader >= 0 {
                Some(ResponseError::ElectionNotNeeded)
            } else if after_leader >= 0 {
                None
            } else {
                Some(ResponseError::EligibleLeadersNotAvailable)
            }
        }
    }
}

fn partition_result(index: i32, error: Option<ResponseError>, message: Option<String>) -> PartitionResult {
    let message = error.map(|error| message.unwrap_or_else(|| error.to_string()));
    PartitionResult::default()
        .with_partition_id(index)
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_error_message(message.map(StrBytes::from_string))
}

fn respond(version: i16, error: Option<ResponseError>, results: Vec<ReplicaElectionResult>) -> ElectLeadersResponse {
    let response = ElectLeadersResponse::default().with_replica_election_results(results);
    // The top-level error exists from v1; v0 carries errors per partition only.
    if version >= 1 {
        response.with_error_code(error.map_or(0, |e| e.code()))
    } else {
        response
    }
}

fn topic_result(topic: &str, partitions: Vec<PartitionResult>) -> ReplicaElectionResult {
    ReplicaElectionResult::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_result(partitions)
}

/// Every named partition refused with `error` (an election type Runnel does not know).
fn refuse_all(request: &ElectLeadersRequest, version: i16, error: ResponseError) -> ElectLeadersResponse {
    let results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let partitions = t.partitions.iter().map(|i| partition_result(*i, Some(error), None)).collect();
            topic_result(t.topic.0.as_str(), partitions)
        })
        .collect();
    respond(version, Some(error), results)
}

pub fn handle(ctx: &Context, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let decide: Decide = match request.election_type {
        PREFERRED => preferred_leaders,
        UNCLEAN => unclean_leaders,
        _ => return refuse_all(&request, ctx.version, ResponseError::InvalidRequest),
    };
    let broker = ctx.broker;
    let mut asked = Vec::new();
    let mut changes = 0;
    let committed = broker.metadata.commit(|image| {
        asked = resolve(image, &request);
        let records = decide(image, Some(&known(&asked)));
        changes = records.len();
        Ok::<_, Infallible>(records)
    });
    let (after, failure) = match committed {
        Ok(Ok(image)) => (Some(image), None),
        Ok(Err(never)) => match never {},
        Err(e) => (None, Some(e.to_string())),
    };
    if let Some(image) = after.as_ref().filter(|_| changes > 0) {
        tracing::info!(election_type = request.election_type, changes, "leader election requested");
        // Take the new roles now rather than waiting for the image follower (a single
        // node has none).
        if let Err(e) = blocking(|| broker.publish(image)) {
            tracing::warn!(error = %e, "applying elected leaders failed");
        }
    }
    let all = request.topic_partitions.is_none();
    let mut results = Vec::new();
    for t in &asked {
        let after_topic = after.as_ref().and_then(|image| image.topic(&t.topic));
        let mut partitions = Vec::new();
        for (index, before) in &t.partitions {
            let (error, message) = match (before, &failure) {
                (None, _) => (Some(ResponseError::UnknownTopicOrPartition), None),
                (Some(_), Some(why)) => (Some(ResponseError::KafkaStorageError), Some(why.clone())),
                (Some(before), None) => {
                    let after = after_topic.and_then(|topic| topic.partitions.get(before.partition as usize));
                    (outcome(request.election_type, before, after), None)
                }
            };
            if !(all && error == Some(ResponseError::ElectionNotNeeded)) {
                partitions.push(partition_result(*index, error, message));
            }
        }
        if !(all && partitions.is_empty()) {
            results.push(topic_result(&t.topic, partitions));
        }
    }
    respond(ctx.version, None, results)
}
