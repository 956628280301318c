//! The gates of the consumer group APIs, with Kafka's rules: joining, syncing, heartbeats,
//! leaving and committing need Read on the group (a commit also Read on each topic);
//! OffsetFetch and FindCoordinator need Describe on the group (OffsetFetch also Describe on
//! each topic); DescribeGroups Describe; DeleteGroups Delete; OffsetDelete Delete on the
//! group and Read on each topic; ListGroups lists every group to Describe on the cluster
//! and otherwise the groups the principal may Describe.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use runnel_metadata::acl::{Operation, ResourceType};
use runnel_protocol::ResponseError;

use super::{completion_if, message, partition_by, Access, Gate};

const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;
const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

pub fn join_group(access: &Access, request: JoinGroupRequest) -> Gate<JoinGroupRequest, JoinGroupResponse> {
    if access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        return Gate::pass(request);
    }
    Gate::Refuse(JoinGroupResponse::default().with_error_code(GROUP_DENIED.code()))
}

pub fn sync_group(access: &Access, request: SyncGroupRequest) -> Gate<SyncGroupRequest, SyncGroupResponse> {
    if access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        return Gate::pass(request);
    }
    Gate::Refuse(SyncGroupResponse::default().with_error_code(GROUP_DENIED.code()))
}

pub fn heartbeat(access: &Access, request: HeartbeatRequest) -> Gate<HeartbeatRequest, HeartbeatResponse> {
    if access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        return Gate::pass(request);
    }
    Gate::Refuse(HeartbeatResponse::default().with_error_code(GROUP_DENIED.code()))
}

pub fn leave_group(access: &Access, request: LeaveGroupRequest) -> Gate<LeaveGroupRequest, LeaveGroupResponse> {
    if access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        return Gate::pass(request);
    }
    Gate::Refuse(LeaveGroupResponse::default().with_error_code(GROUP_DENIED.code()))
}

fn commit_errors(
    topic: offset_commit_request::OffsetCommitRequestTopic,
    error: ResponseError,
) -> OffsetCommitResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(error.code())
        })
        .collect();
    OffsetCommitResponseTopic::default().with_name(topic.name).with_topic_id(topic.topic_id).with_partitions(partitions)
}

pub fn offset_commit(
    access: &Access,
    mut request: OffsetCommitRequest,
) -> Gate<OffsetCommitRequest, OffsetCommitResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if !access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        let topics = request.topics.into_iter().map(|t| commit_errors(t, GROUP_DENIED)).collect();
        return Gate::Refuse(OffsetCommitResponse::default().with_topics(topics));
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.topics), |t| access.allows_topic(Operation::Read, t.name.0.as_str()));
    request.topics = kept;
    let complete = completion_if(denied, |response: &mut OffsetCommitResponse, denied: Vec<_>| {
        response.topics.extend(denied.into_iter().map(|t| commit_errors(t, TOPIC_DENIED)));
    });
    Gate::pass_completing(request, complete)
}

/// OffsetFetch: v0-7 name one group, v8+ several. For each group: Describe on the group,
/// else GROUP_AUTHORIZATION_FAILED; topics named explicitly need Describe (the others
/// answer TOPIC_AUTHORIZATION_FAILED); "every topic" leaves out those it may not Describe.
pub fn offset_fetch(
    access: &Access,
    mut request: OffsetFetchRequest,
    version: i16,
) -> Gate<OffsetFetchRequest, OffsetFetchResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if version < 8 {
        if !access.allows_group(Operation::Describe, request.group_id.0.as_str()) {
            // v0-1 have no top-level error: each partition carries it.
            let response = if version < 2 {
                let topics =
                    request.topics.unwrap_or_default().into_iter().map(|t| fetch_errors(t, GROUP_DENIED)).collect();
                OffsetFetchResponse::default().with_topics(topics)
            } else {
                OffsetFetchResponse::default().with_error_code(GROUP_DENIED.code())
            };
            return Gate::Refuse(response);
        }
        let explicit = request.topics.take();
        let every_topic = explicit.is_none();
        let (kept, denied) =
            partition_by(explicit.unwrap_or_default(), |t| access.allows_topic(Operation::Describe, t.name.0.as_str()));
        request.topics = (!every_topic).then_some(kept);
        let access = access.clone();
        return Gate::pass_completing(
            request,
            Some(Box::new(move |response: &mut OffsetFetchResponse| {
                if every_topic {
                    response.topics.retain(|t| access.allows_topic(Operation::Describe, t.name.0.as_str()));
                }
                response.topics.extend(denied.into_iter().map(|t| fetch_errors(t, TOPIC_DENIED)));
            })),
        );
    }
    let (groups, denied_groups) = partition_by(std::mem::take(&mut request.groups), |g| {
        access.allows_group(Operation::Describe, g.group_id.0.as_str())
    });
    let mut denied_topics: Vec<(GroupId, Vec<offset_fetch_request::OffsetFetchRequestTopics>)> = Vec::new();
    let mut every_topic: Vec<GroupId> = Vec::new();
    request.groups = groups
        .into_iter()
        .map(|mut group| {
            match group.topics.take() {
                None => every_topic.push(group.group_id.clone()),
                Some(topics) => {
                    let (kept, denied) =
                        partition_by(topics, |t| access.allows_topic(Operation::Describe, t.name.0.as_str()));
                    if !denied.is_empty() {
                        denied_topics.push((group.group_id.clone(), denied));
                    }
                    group.topics = Some(kept);
                }
            }
            group
        })
        .collect();
    let access = access.clone();
    Gate::pass_completing(
        request,
        Some(Box::new(move |response: &mut OffsetFetchResponse| {
            for group in response.groups.iter_mut() {
                if every_topic.contains(&group.group_id) {
                    group.topics.retain(|t| access.allows_topic(Operation::Describe, t.name.0.as_str()));
                }
                if let Some((_, denied)) = denied_topics.iter_mut().find(|(id, _)| *id == group.group_id) {
                    group.topics.extend(std::mem::take(denied).into_iter().map(|t| {
                        let partitions = t
                            .partition_indexes
                            .iter()
                            .map(|i| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(*i)
                                    .with_committed_offset(-1)
                                    .with_error_code(TOPIC_DENIED.code())
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(t.name).with_partitions(partitions)
                    }));
                }
            }
            response.groups.extend(denied_groups.into_iter().map(|g| {
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(GROUP_DENIED.code())
            }));
        })),
    )
}

fn fetch_errors(
    topic: offset_fetch_request::OffsetFetchRequestTopic,
    error: ResponseError,
) -> OffsetFetchResponseTopic {
    let partitions = topic
        .partition_indexes
        .iter()
        .map(|i| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(*i)
                .with_committed_offset(-1)
                .with_error_code(error.code())
        })
        .collect();
    OffsetFetchResponseTopic::default().with_name(topic.name).with_partitions(partitions)
}

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator: Describe on the group, or on the transactional id.
pub fn find_coordinator(
    access: &Access,
    mut request: FindCoordinatorRequest,
    version: i16,
) -> Gate<FindCoordinatorRequest, FindCoordinatorResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (resource_type, error) = match request.key_type {
        KEY_TYPE_GROUP => (ResourceType::Group, GROUP_DENIED),
        KEY_TYPE_TRANSACTION => (ResourceType::TransactionalId, ResponseError::TransactionalIdAuthorizationFailed),
        _ => return Gate::pass(request),
    };
    let allowed = |key: &str| access.allows(Operation::Describe, resource_type, key);
    if version < 4 {
        if allowed(request.key.as_str()) {
            return Gate::pass(request);
        }
        return Gate::Refuse(
            FindCoordinatorResponse::default()
                .with_error_code(error.code())
                .with_error_message(message(error))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        );
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.coordinator_keys), |key| allowed(key.as_str()));
    request.coordinator_keys = kept;
    let complete = completion_if(denied, move |response: &mut FindCoordinatorResponse, denied: Vec<_>| {
        response.coordinators.extend(denied.into_iter().map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(error.code())
                .with_error_message(message(error))
        }));
    });
    Gate::pass_completing(request, complete)
}

pub fn describe_groups(
    access: &Access,
    mut request: DescribeGroupsRequest,
) -> Gate<DescribeGroupsRequest, DescribeGroupsResponse> {
    let operations = request.include_authorized_operations;
    if access.is_unrestricted() && !operations {
        return Gate::pass(request);
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.groups), |g| access.allows_group(Operation::Describe, g.0.as_str()));
    request.groups = kept;
    let access = access.clone();
    Gate::pass_completing(
        request,
        Some(Box::new(move |response: &mut DescribeGroupsResponse| {
            if operations {
                for group in response.groups.iter_mut().filter(|g| g.error_code == 0) {
                    group.authorized_operations =
                        access.authorized_operations(ResourceType::Group, group.group_id.0.as_str());
                }
            }
            response.groups.extend(denied.into_iter().map(|g| {
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(GROUP_DENIED.code())
                    .with_authorized_operations(i32::MIN)
            }));
        })),
    )
}

pub fn list_groups(access: &Access, request: ListGroupsRequest) -> Gate<ListGroupsRequest, ListGroupsResponse> {
    if access.is_unrestricted() || access.allows_cluster(Operation::Describe) {
        return Gate::pass(request);
    }
    let access = access.clone();
    Gate::pass_completing(
        request,
        Some(Box::new(move |response: &mut ListGroupsResponse| {
            response.groups.retain(|g| access.allows_group(Operation::Describe, g.group_id.0.as_str()));
        })),
    )
}

pub fn delete_groups(
    access: &Access,
    mut request: DeleteGroupsRequest,
) -> Gate<DeleteGroupsRequest, DeleteGroupsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.groups_names), |g| {
        access.allows_group(Operation::Delete, g.0.as_str())
    });
    request.groups_names = kept;
    let complete = completion_if(denied, |response: &mut DeleteGroupsResponse, denied: Vec<GroupId>| {
        response.results.extend(
            denied
                .into_iter()
                .map(|g| DeletableGroupResult::default().with_group_id(g).with_error_code(GROUP_DENIED.code())),
        );
    });
    Gate::pass_completing(request, complete)
}

pub fn offset_delete(
    access: &Access,
    mut request: OffsetDeleteRequest,
) -> Gate<OffsetDeleteRequest, OffsetDeleteResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if !access.allows_group(Operation::Delete, request.group_id.0.as_str()) {
        return Gate::Refuse(OffsetDeleteResponse::default().with_error_code(GROUP_DENIED.code()));
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.topics), |t| access.allows_topic(Operation::Read, t.name.0.as_str()));
    request.topics = kept;
    let complete = completion_if(
        denied,
        |response: &mut OffsetDeleteResponse, denied: Vec<offset_delete_request::OffsetDeleteRequestTopic>| {
            response.topics.extend(denied.into_iter().map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(TOPIC_DENIED.code())
                    })
                    .collect();
                OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
            }));
        },
    );
    Gate::pass_completing(request, complete)
}
