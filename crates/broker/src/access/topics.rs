//! The gates of the APIs that act on topics and their partitions, with Kafka's rules:
//! Produce needs Write, Fetch Read (a follower's fetch ClusterAction on the cluster),
//! ListOffsets and OffsetForLeaderEpoch Describe (a follower's ClusterAction), Metadata
//! Describe (and Create, on the cluster or the topic, to auto-create one), CreateTopics
//! Create, DeleteTopics and DeleteRecords Delete, CreatePartitions Alter, DescribeConfigs
//! DescribeConfigs.
//! A denied topic gets TOPIC_AUTHORIZATION_FAILED in its place of the response.

use std::collections::BTreeSet;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::acl::{Operation, ResourceType};
use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::{completion_if, message, partition_by, Access, Gate};

const DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

/// A Produce topic answered with `error` in every partition.
fn refused_topic(topic: produce_request::TopicProduceData, error: ResponseError) -> TopicProduceResponse {
    let partitions = topic
        .partition_data
        .iter()
        .map(|p| {
            PartitionProduceResponse::default()
                .with_index(p.index)
                .with_error_code(error.code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions)
}

pub fn produce(access: &Access, mut request: ProduceRequest) -> Gate<ProduceRequest, ProduceResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    // A transactional producer needs Write on its transactional id: otherwise nothing is
    // written (Kafka answers every partition with the error).
    if let Some(id) = &request.transactional_id {
        if !access.allows(Operation::Write, ResourceType::TransactionalId, id.0.as_str()) {
            let error = ResponseError::TransactionalIdAuthorizationFailed;
            let responses = request.topic_data.into_iter().map(|topic| refused_topic(topic, error)).collect();
            return Gate::Refuse(ProduceResponse::default().with_responses(responses));
        }
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.topic_data), |t| {
        access.allows_topic(Operation::Write, t.name.0.as_str())
    });
    request.topic_data = kept;
    let complete =
        completion_if(denied, |response: &mut ProduceResponse, denied: Vec<produce_request::TopicProduceData>| {
            response.responses.extend(denied.into_iter().map(|topic| refused_topic(topic, DENIED)));
        });
    Gate::pass_completing(request, complete)
}

/// The topics of a Fetch (by their index in the request) that answer
/// TOPIC_AUTHORIZATION_FAILED.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchDenied(BTreeSet<usize>);

impl FetchDenied {
    pub fn contains(&self, topic_index: usize) -> bool {
        self.0.contains(&topic_index)
    }
}

/// A follower's fetch (a replica id, v15+ in its replica state) needs ClusterAction; a
/// consumer's needs Read on each topic. Topics by id (v13+) that do not exist are left to
/// the handler (UNKNOWN_TOPIC_ID discloses nothing).
/// `image` is taken only when topics are named by id and a check is due, so an
/// unrestricted fetch (the hot path without an authorizer) does not touch the image.
pub fn fetch<I: std::ops::Deref<Target = MetadataImage>>(
    access: &Access,
    request: &FetchRequest,
    version: i16,
    image: impl FnOnce() -> I,
) -> FetchDenied {
    if access.is_unrestricted() {
        return FetchDenied::default();
    }
    let replica_id = if version >= 15 { request.replica_state.replica_id.0 } else { request.replica_id.0 };
    if replica_id >= 0 {
        if access.allows_cluster(Operation::ClusterAction) {
            return FetchDenied::default();
        }
        return FetchDenied((0..request.topics.len()).collect());
    }
    let image = (version >= 13).then(image);
    let denied = request
        .topics
        .iter()
        .enumerate()
        .filter(|(_, topic)| {
            let name = if version >= 13 {
                match image.as_deref().and_then(|image| image.topic_by_id(&topic.topic_id)) {
                    Some(t) => t.name.as_str(),
                    None => return false,
                }
            } else {
                topic.topic.0.as_str()
            };
            !access.allows_topic(Operation::Read, name)
        })
        .map(|(index, _)| index)
        .collect();
    FetchDenied(denied)
}

pub fn list_offsets(access: &Access, mut request: ListOffsetsRequest) -> Gate<ListOffsetsRequest, ListOffsetsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.topics), |t| {
        access.allows_topic(Operation::Describe, t.name.0.as_str())
    });
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut ListOffsetsResponse, denied: Vec<list_offsets_request::ListOffsetsTopic>| {
            for topic in denied {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(DENIED.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                    })
                    .collect();
                response
                    .topics
                    .push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
            }
        },
    );
    Gate::pass_completing(request, complete)
}

pub fn offset_for_leader_epoch(
    access: &Access,
    mut request: OffsetForLeaderEpochRequest,
) -> Gate<OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let follower = request.replica_id.0 >= 0;
    let cluster_action = follower && access.allows_cluster(Operation::ClusterAction);
    let (kept, denied) = partition_by(std::mem::take(&mut request.topics), |t| {
        if follower {
            cluster_action
        } else {
            access.allows_topic(Operation::Describe, t.topic.0.as_str())
        }
    });
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut OffsetForLeaderEpochResponse,
         denied: Vec<offset_for_leader_epoch_request::OffsetForLeaderTopic>| {
            for topic in denied {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_error_code(DENIED.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    })
                    .collect();
                response
                    .topics
                    .push(OffsetForLeaderTopicResult::default().with_topic(topic.topic).with_partitions(partitions));
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// What Metadata may disclose and create. `all_topics`: the request asks for every topic
/// (the handler's answer is then filtered); `auto_create`: it would create missing topics.
pub fn metadata(
    access: &Access,
    mut request: MetadataRequest,
    image: &MetadataImage,
    all_topics: bool,
    auto_create: bool,
) -> Gate<MetadataRequest, MetadataResponse> {
    let topic_operations = request.include_topic_authorized_operations;
    let cluster_operations = request.include_cluster_authorized_operations;
    if access.is_unrestricted() && !topic_operations && !cluster_operations {
        return Gate::pass(request);
    }
    let may_create_any = access.allows_cluster(Operation::Create);
    let mut denied: Vec<(Option<String>, Uuid)> = Vec::new();
    if !all_topics {
        let requested = request.topics.take().unwrap_or_default();
        let (kept, refused) = partition_by(requested, |t| {
            let name = match &t.name {
                Some(name) => name.0.to_string(),
                None => match image.topic_by_id(&t.topic_id) {
                    Some(topic) => topic.name.clone(),
                    // An unknown id answers UNKNOWN_TOPIC_ID, which discloses nothing.
                    None => return true,
                },
            };
            if !access.allows_topic(Operation::Describe, &name) {
                return false;
            }
            // A topic that would be auto-created needs Create on the cluster or on itself.
            image.topic(&name).is_some()
                || !auto_create
                || may_create_any
                || access.allows_topic(Operation::Create, &name)
        });
        denied = refused.into_iter().map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)).collect();
        request.topics = Some(kept);
    }
    let access = access.clone();
    let complete = move |response: &mut MetadataResponse| {
        if all_topics {
            // Every topic: the ones the principal may not Describe are left out.
            response
                .topics
                .retain(|t| t.name.as_ref().is_none_or(|n| access.allows_topic(Operation::Describe, n.0.as_str())));
        }
        for (name, id) in denied {
            response.topics.push(
                MetadataResponseTopic::default()
                    .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                    .with_topic_id(id)
                    .with_error_code(DENIED.code())
                    .with_topic_authorized_operations(i32::MIN),
            );
        }
        if topic_operations {
            for topic in response.topics.iter_mut().filter(|t| t.error_code == 0) {
                if let Some(name) = &topic.name {
                    topic.topic_authorized_operations =
                        access.authorized_operations(ResourceType::Topic, name.0.as_str());
                }
            }
        }
        if cluster_operations {
            response.cluster_authorized_operations =
                access.authorized_operations(ResourceType::Cluster, runnel_metadata::acl::CLUSTER_NAME);
        }
    };
    Gate::pass_completing(request, Some(Box::new(complete)))
}

/// CreateTopics: Create on the cluster admits every topic; otherwise Create on each.
pub fn create_topics(
    access: &Access,
    mut request: CreateTopicsRequest,
) -> Gate<CreateTopicsRequest, CreateTopicsResponse> {
    if access.is_unrestricted() || access.allows_cluster(Operation::Create) {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.topics), |t| {
        access.allows_topic(Operation::Create, t.name.0.as_str())
    });
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut CreateTopicsResponse, denied: Vec<create_topics_request::CreatableTopic>| {
            for topic in denied {
                response.topics.push(
                    CreatableTopicResult::default()
                        .with_name(topic.name)
                        .with_error_code(DENIED.code())
                        .with_error_message(message(DENIED))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_topic_config_error_code(DENIED.code()),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// DeleteTopics: Delete on each topic, named or by id (an id the principal may not
/// Describe answers as if unknown would disclose it; Kafka answers the authorization
/// error there too).
pub fn delete_topics(
    access: &Access,
    mut request: DeleteTopicsRequest,
    image: &MetadataImage,
) -> Gate<DeleteTopicsRequest, DeleteTopicsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (names, denied_names) = partition_by(std::mem::take(&mut request.topic_names), |name| {
        access.allows_topic(Operation::Delete, name.0.as_str())
    });
    request.topic_names = names;
    let (states, denied_states) = partition_by(std::mem::take(&mut request.topics), |state| {
        let name = match &state.name {
            Some(name) => name.0.to_string(),
            None => match image.topic_by_id(&state.topic_id) {
                Some(topic) => topic.name.clone(),
                None => return true,
            },
        };
        access.allows_topic(Operation::Delete, &name)
    });
    request.topics = states;
    let denied: Vec<(Option<TopicName>, Uuid)> = denied_names
        .into_iter()
        .map(|n| (Some(n), Uuid::nil()))
        .chain(denied_states.into_iter().map(|s| (s.name, s.topic_id)))
        .collect();
    let complete =
        completion_if(denied, |response: &mut DeleteTopicsResponse, denied: Vec<(Option<TopicName>, Uuid)>| {
            for (name, id) in denied {
                response.responses.push(
                    DeletableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(DENIED.code())
                        .with_error_message(message(DENIED)),
                );
            }
        });
    Gate::pass_completing(request, complete)
}

pub fn create_partitions(
    access: &Access,
    mut request: CreatePartitionsRequest,
) -> Gate<CreatePartitionsRequest, CreatePartitionsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.topics), |t| access.allows_topic(Operation::Alter, t.name.0.as_str()));
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut CreatePartitionsResponse, denied: Vec<create_partitions_request::CreatePartitionsTopic>| {
            for topic in denied {
                response.results.push(
                    CreatePartitionsTopicResult::default()
                        .with_name(topic.name)
                        .with_error_code(DENIED.code())
                        .with_error_message(message(DENIED)),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// DescribeConfigs: DescribeConfigs on each topic; on the cluster for broker resources.
pub fn describe_configs(
    access: &Access,
    mut request: DescribeConfigsRequest,
) -> Gate<DescribeConfigsRequest, DescribeConfigsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.resources), |r| {
        super::configs::allows(access, Operation::DescribeConfigs, r.resource_type, r.resource_name.as_str())
    });
    request.resources = kept;
    let complete = completion_if(
        denied,
        |response: &mut DescribeConfigsResponse, denied: Vec<describe_configs_request::DescribeConfigsResource>| {
            for resource in denied {
                let error = super::configs::denial(resource.resource_type);
                response.results.push(
                    DescribeConfigsResult::default()
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name)
                        .with_error_code(error.code())
                        .with_error_message(message(error)),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// DeleteRecords: Delete on each topic.
pub fn delete_records(
    access: &Access,
    mut request: DeleteRecordsRequest,
) -> Gate<DeleteRecordsRequest, DeleteRecordsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.topics), |t| {
        access.allows_topic(Operation::Delete, t.name.0.as_str())
    });
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut DeleteRecordsResponse, denied: Vec<delete_records_request::DeleteRecordsTopic>| {
            for topic in denied {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        delete_records_response::DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1)
                            .with_error_code(DENIED.code())
                    })
                    .collect();
                response.topics.push(
                    delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// DescribeProducers: Read on each topic (as Kafka's `handleDescribeProducersRequest`).
pub fn describe_producers(
    access: &Access,
    mut request: DescribeProducersRequest,
) -> Gate<DescribeProducersRequest, DescribeProducersResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.topics), |t| access.allows_topic(Operation::Read, t.name.0.as_str()));
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut DescribeProducersResponse, denied: Vec<describe_producers_request::TopicRequest>| {
            for topic in denied {
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        describe_producers_response::PartitionResponse::default()
                            .with_partition_index(*p)
                            .with_error_code(DENIED.code())
                    })
                    .collect();
                response.topics.push(
                    describe_producers_response::TopicResponse::default()
                        .with_name(topic.name)
                        .with_partitions(partitions),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

/// DescribeTopicPartitions: Describe on each topic. Listing every topic lists the ones the
/// principal may describe; a named topic it may not gets TOPIC_AUTHORIZATION_FAILED.
pub fn describe_topic_partitions(
    access: &Access,
    mut request: DescribeTopicPartitionsRequest,
    image: &MetadataImage,
) -> Gate<DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if request.topics.is_empty() {
        let allowed: Vec<describe_topic_partitions_request::TopicRequest> = image
            .topics
            .keys()
            .filter(|name| access.allows_topic(Operation::Describe, name))
            .map(|name| {
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
            })
            .collect();
        if allowed.is_empty() {
            return Gate::Refuse(DescribeTopicPartitionsResponse::default());
        }
        request.topics = allowed;
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.topics), |t| {
        access.allows_topic(Operation::Describe, t.name.as_str())
    });
    if kept.is_empty() {
        let mut response = DescribeTopicPartitionsResponse::default();
        deny_topic_partitions(&mut response, denied);
        return Gate::Refuse(response);
    }
    request.topics = kept;
    Gate::pass_completing(request, completion_if(denied, deny_topic_partitions))
}

fn deny_topic_partitions(
    response: &mut DescribeTopicPartitionsResponse,
    denied: Vec<describe_topic_partitions_request::TopicRequest>,
) {
    for topic in denied {
        response.topics.push(
            describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic.name))
                .with_error_code(DENIED.code())
                .with_topic_authorized_operations(i32::MIN),
        );
    }
}
