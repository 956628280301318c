//! The gates of the APIs that act on the cluster as a whole, with Kafka's rules: describing
//! it (DescribeCluster, DescribeLogDirs, DescribeQuorum, ListPartitionReassignments,
//! DescribeAcls, DescribeUserScramCredentials) needs Describe on the cluster; changing it
//! (ElectLeaders, AlterPartitionReassignments, CreateAcls, DeleteAcls,
//! AlterUserScramCredentials, AddRaftVoter, RemoveRaftVoter) Alter; InitProducerId needs Write on its transactional id,
//! or for an idempotent producer IdempotentWrite on the cluster or Write on some topic.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::*;
use runnel_metadata::acl::{Operation, ResourceType, CLUSTER_NAME};
use runnel_protocol::ResponseError;

use super::{message, Access, Gate};

const DENIED: ResponseError = ResponseError::ClusterAuthorizationFailed;

/// Passes the request when the principal may perform `operation` on the cluster, else
/// answers `refusal`.
fn on_cluster<Req, Resp>(
    access: &Access,
    operation: Operation,
    request: Req,
    refusal: impl FnOnce(Req) -> Resp,
) -> Gate<Req, Resp> {
    if access.allows_cluster(operation) {
        Gate::pass(request)
    } else {
        Gate::Refuse(refusal(request))
    }
}

pub fn describe_cluster(
    access: &Access,
    request: DescribeClusterRequest,
) -> Gate<DescribeClusterRequest, DescribeClusterResponse> {
    let operations = request.include_cluster_authorized_operations;
    if !access.allows_cluster(Operation::Describe) {
        return Gate::Refuse(
            DescribeClusterResponse::default()
                .with_error_code(DENIED.code())
                .with_error_message(message(DENIED))
                .with_cluster_authorized_operations(i32::MIN),
        );
    }
    if !operations {
        return Gate::pass(request);
    }
    let bits = access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    Gate::pass_completing(
        request,
        Some(Box::new(move |response: &mut DescribeClusterResponse| response.cluster_authorized_operations = bits)),
    )
}

pub fn describe_log_dirs(
    access: &Access,
    request: DescribeLogDirsRequest,
) -> Gate<DescribeLogDirsRequest, DescribeLogDirsResponse> {
    // v1-2 have no error field: the answer is then simply empty, as in Kafka.
    on_cluster(access, Operation::Describe, request, |_| {
        DescribeLogDirsResponse::default().with_error_code(DENIED.code())
    })
}

pub fn describe_quorum(
    access: &Access,
    request: DescribeQuorumRequest,
) -> Gate<DescribeQuorumRequest, DescribeQuorumResponse> {
    on_cluster(access, Operation::Describe, request, |_| {
        DescribeQuorumResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

/// AddRaftVoter (KIP-853): Alter on the cluster, as Kafka's controller checks.
pub fn add_raft_voter(
    access: &Access,
    request: AddRaftVoterRequest,
) -> Gate<AddRaftVoterRequest, AddRaftVoterResponse> {
    on_cluster(access, Operation::Alter, request, |_| {
        AddRaftVoterResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

/// RemoveRaftVoter (KIP-853): Alter on the cluster.
pub fn remove_raft_voter(
    access: &Access,
    request: RemoveRaftVoterRequest,
) -> Gate<RemoveRaftVoterRequest, RemoveRaftVoterResponse> {
    on_cluster(access, Operation::Alter, request, |_| {
        RemoveRaftVoterResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

pub fn list_partition_reassignments(
    access: &Access,
    request: ListPartitionReassignmentsRequest,
) -> Gate<ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse> {
    on_cluster(access, Operation::Describe, request, |_| {
        ListPartitionReassignmentsResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

pub fn alter_partition_reassignments(
    access: &Access,
    request: AlterPartitionReassignmentsRequest,
) -> Gate<AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse> {
    on_cluster(access, Operation::Alter, request, |_| {
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(DENIED.code())
            .with_error_message(message(DENIED))
    })
}

/// ElectLeaders: every partition named answers the error; from v1 the response's own
/// error too (v0 has no such field).
pub fn elect_leaders(
    access: &Access,
    request: ElectLeadersRequest,
    version: i16,
) -> Gate<ElectLeadersRequest, ElectLeadersResponse> {
    on_cluster(access, Operation::Alter, request, |request| {
        let results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionResult::default()
                            .with_partition_id(*p)
                            .with_error_code(DENIED.code())
                            .with_error_message(message(DENIED))
                    })
                    .collect();
                ReplicaElectionResult::default().with_topic(topic.topic).with_partition_result(partitions)
            })
            .collect();
        let response = ElectLeadersResponse::default().with_replica_election_results(results);
        if version >= 1 {
            response.with_error_code(DENIED.code())
        } else {
            response
        }
    })
}

pub fn init_producer_id(
    access: &Access,
    request: InitProducerIdRequest,
) -> Gate<InitProducerIdRequest, InitProducerIdResponse> {
    let (allowed, error) = match &request.transactional_id {
        Some(id) => (
            access.allows(Operation::Write, ResourceType::TransactionalId, id.0.as_str()),
            ResponseError::TransactionalIdAuthorizationFailed,
        ),
        None => (
            access.allows_cluster(Operation::IdempotentWrite)
                || access.allows_any(Operation::Write, ResourceType::Topic),
            DENIED,
        ),
    };
    if allowed {
        return Gate::pass(request);
    }
    Gate::Refuse(
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

pub fn describe_user_scram_credentials(
    access: &Access,
    request: DescribeUserScramCredentialsRequest,
) -> Gate<DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse> {
    on_cluster(access, Operation::Describe, request, |_| {
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(DENIED.code())
            .with_error_message(message(DENIED))
    })
}

pub fn alter_user_scram_credentials(
    access: &Access,
    request: AlterUserScramCredentialsRequest,
) -> Gate<AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse> {
    on_cluster(access, Operation::Alter, request, |request| {
        let mut users: Vec<_> = request
            .deletions
            .iter()
            .map(|d| d.name.clone())
            .chain(request.upsertions.iter().map(|u| u.name.clone()))
            .collect();
        users.sort();
        users.dedup();
        let results = users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(DENIED.code())
                    .with_error_message(message(DENIED))
            })
            .collect();
        AlterUserScramCredentialsResponse::default().with_results(results)
    })
}

pub fn describe_acls(access: &Access, request: DescribeAclsRequest) -> Gate<DescribeAclsRequest, DescribeAclsResponse> {
    on_cluster(access, Operation::Describe, request, |_| {
        DescribeAclsResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

pub fn create_acls(access: &Access, request: CreateAclsRequest) -> Gate<CreateAclsRequest, CreateAclsResponse> {
    on_cluster(access, Operation::Alter, request, |request| {
        let results = request
            .creations
            .iter()
            .map(|_| AclCreationResult::default().with_error_code(DENIED.code()).with_error_message(message(DENIED)))
            .collect();
        CreateAclsResponse::default().with_results(results)
    })
}

pub fn delete_acls(access: &Access, request: DeleteAclsRequest) -> Gate<DeleteAclsRequest, DeleteAclsResponse> {
    on_cluster(access, Operation::Alter, request, |request| {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    })
}

/// DescribeClientQuotas needs DescribeConfigs on the cluster (Kafka's rule).
pub fn describe_client_quotas(
    access: &Access,
    request: DescribeClientQuotasRequest,
) -> Gate<DescribeClientQuotasRequest, DescribeClientQuotasResponse> {
    on_cluster(access, Operation::DescribeConfigs, request, |_| {
        DescribeClientQuotasResponse::default().with_error_code(DENIED.code()).with_error_message(message(DENIED))
    })
}

/// AlterClientQuotas needs AlterConfigs on the cluster; a refusal names every entry.
pub fn alter_client_quotas(
    access: &Access,
    request: AlterClientQuotasRequest,
) -> Gate<AlterClientQuotasRequest, AlterClientQuotasResponse> {
    on_cluster(access, Operation::AlterConfigs, request, |request| {
        let entries = request
            .entries
            .into_iter()
            .map(|entry| {
                let entity = entry
                    .entity
                    .into_iter()
                    .map(|e| {
                        alter_client_quotas_response::EntityData::default()
                            .with_entity_type(e.entity_type)
                            .with_entity_name(e.entity_name)
                    })
                    .collect();
                alter_client_quotas_response::EntryData::default()
                    .with_error_code(DENIED.code())
                    .with_error_message(message(DENIED))
                    .with_entity(entity)
            })
            .collect();
        AlterClientQuotasResponse::default().with_entries(entries)
    })
}
