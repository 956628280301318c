//! The gates' decisions, without I/O: requests in, what is served and what is answered out.

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::acl::{binding_from_codes, AclBinding, Acls, AuthorizerConfig, Operation};
use runnel_metadata::{MetadataImage, MetadataRecord};
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::{cluster, groups, topics, Access, Gate};

/// (resource type code, name, pattern code, principal, operation code, permission code).
fn acls(bindings: &[(i8, &str, i8, &str, Operation, bool)]) -> Acls {
    bindings
        .iter()
        .enumerate()
        .map(|(i, (kind, name, pattern, principal, op, allow))| {
            let binding: AclBinding =
                binding_from_codes(*kind, name, *pattern, principal, "*", op.code(), if *allow { 3 } else { 2 })
                    .unwrap();
            (Uuid::from_u128(i as u128 + 1), binding)
        })
        .collect()
}

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;

fn alice(bindings: &[(i8, &str, i8, &str, Operation, bool)]) -> Access {
    Access::checked(AuthorizerConfig::default(), &acls(bindings), "User:alice", "127.0.0.1")
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn image_with(topics: &[&str]) -> MetadataImage {
    let records: Vec<MetadataRecord> = topics
        .iter()
        .enumerate()
        .map(|(i, name)| MetadataRecord::Topic { name: name.to_string(), topic_id: Uuid::from_u128(i as u128 + 1) })
        .collect();
    MetadataImage::default().apply(&records)
}

#[test]
fn a_produce_writes_the_allowed_topics_and_answers_the_others_topic_authorization_failed() {
    let access = alice(&[(TOPIC, "a", LITERAL, "User:alice", Operation::Write, true)]);
    let request = ProduceRequest::default().with_acks(-1).with_topic_data(
        ["a", "b"]
            .iter()
            .map(|t| {
                TopicProduceData::default()
                    .with_name(topic_name(t))
                    .with_partition_data(vec![PartitionProduceData::default().with_index(0)])
            })
            .collect(),
    );
    let gate = topics::produce(&access, request);
    assert!(gate.denied_anything());
    let response = gate.serve(|served| {
        assert_eq!(served.topic_data.len(), 1, "only the allowed topic reaches the handler");
        assert_eq!(served.topic_data[0].name.0.as_str(), "a");
        ProduceResponse::default()
    });
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].name.0.as_str(), "b");
    assert_eq!(response.responses[0].partition_responses[0].error_code, ResponseError::TopicAuthorizationFailed.code());
    // Unrestricted: nothing is taken out.
    assert!(!topics::produce(&Access::Unrestricted, ProduceRequest::default()).denied_anything());
}

#[test]
fn metadata_hides_what_may_not_be_described_and_auto_creates_only_with_create() {
    let access = alice(&[
        (TOPIC, "seen", LITERAL, "User:alice", Operation::Read, true),
        (TOPIC, "new", LITERAL, "User:alice", Operation::Describe, true),
        (TOPIC, "made", LITERAL, "User:alice", Operation::Create, true),
        (TOPIC, "made", LITERAL, "User:alice", Operation::Describe, true),
    ]);
    let image = image_with(&["seen", "hidden"]);
    // Every topic: the handler's answer is filtered.
    let gate = topics::metadata(&access, MetadataRequest::default(), &image, true, false);
    let response = gate.serve(|_| {
        MetadataResponse::default().with_topics(
            ["seen", "hidden"]
                .iter()
                .map(|t| metadata_response::MetadataResponseTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        )
    });
    let names: Vec<&str> = response.topics.iter().map(|t| t.name.as_ref().unwrap().0.as_str()).collect();
    assert_eq!(names, ["seen"]);
    // Named topics: hidden is refused whether or not it exists; new would be created
    // without Create (refused), made with it (served).
    let named = MetadataRequest::default().with_topics(Some(
        ["seen", "hidden", "nowhere", "new", "made"]
            .iter()
            .map(|t| metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ));
    let gate = topics::metadata(&access, named, &image, false, true);
    let response = gate.serve(|served| {
        let served: Vec<String> =
            served.topics.unwrap().iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect();
        assert_eq!(served, ["seen", "made"]);
        MetadataResponse::default()
    });
    let refused: Vec<(&str, i16)> =
        response.topics.iter().map(|t| (t.name.as_ref().unwrap().0.as_str(), t.error_code)).collect();
    let denied = ResponseError::TopicAuthorizationFailed.code();
    assert_eq!(refused, [("hidden", denied), ("nowhere", denied), ("new", denied)]);
}

#[test]
fn a_follower_fetch_needs_cluster_action_and_a_consumer_fetch_read() {
    let consumer = alice(&[(TOPIC, "a", LITERAL, "User:alice", Operation::Read, true)]);
    let image = image_with(&["a", "b"]);
    let request = FetchRequest::default().with_topics(
        ["a", "b"].iter().map(|t| fetch_request::FetchTopic::default().with_topic(topic_name(t))).collect(),
    );
    let denied = topics::fetch(&consumer, &request, 12, || &image);
    assert!(!denied.contains(0) && denied.contains(1));
    // v13+ names topics by id: "a" (id 1) is readable, "b" (id 2) is not, an unknown id is
    // left to the handler (UNKNOWN_TOPIC_ID).
    let by_id = FetchRequest::default().with_topics(
        [1u128, 2, 9]
            .iter()
            .map(|id| fetch_request::FetchTopic::default().with_topic_id(Uuid::from_u128(*id)))
            .collect(),
    );
    let denied = topics::fetch(&consumer, &by_id, 13, || &image);
    assert!(!denied.contains(0) && denied.contains(1) && !denied.contains(2));
    let as_follower = request.clone().with_replica_id(BrokerId(2));
    let denied = topics::fetch(&consumer, &as_follower, 12, || &image);
    assert!(denied.contains(0) && denied.contains(1), "a replica id without ClusterAction gets nothing");
    let broker = alice(&[(CLUSTER, "kafka-cluster", LITERAL, "User:alice", Operation::ClusterAction, true)]);
    assert_eq!(topics::fetch(&broker, &as_follower, 12, || &image), topics::FetchDenied::default());
}

#[test]
fn an_idempotent_producer_needs_write_somewhere_or_idempotent_write() {
    let request = InitProducerIdRequest::default().with_transactional_id(None);
    let nothing = alice(&[]);
    let Gate::Refuse(response) = cluster::init_producer_id(&nothing, request.clone()) else {
        panic!("no ACL: refused")
    };
    assert_eq!(response.error_code, ResponseError::ClusterAuthorizationFailed.code());
    let writer = alice(&[(TOPIC, "a", LITERAL, "User:alice", Operation::Write, true)]);
    assert!(!cluster::init_producer_id(&writer, request.clone()).denied_anything());
    let transactional = request.with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))));
    let Gate::Refuse(response) = cluster::init_producer_id(&writer, transactional) else {
        panic!("a transactional id needs Write on it")
    };
    assert_eq!(response.error_code, ResponseError::TransactionalIdAuthorizationFailed.code());
}

#[test]
fn voter_changes_need_alter_on_the_cluster() {
    let describer = alice(&[(CLUSTER, "kafka-cluster", LITERAL, "User:alice", Operation::Describe, true)]);
    let Gate::Refuse(response) = cluster::add_raft_voter(&describer, AddRaftVoterRequest::default()) else {
        panic!("Describe is not enough to add a voter")
    };
    assert_eq!(response.error_code, ResponseError::ClusterAuthorizationFailed.code());
    let Gate::Refuse(response) = cluster::remove_raft_voter(&describer, RemoveRaftVoterRequest::default()) else {
        panic!("Describe is not enough to remove a voter")
    };
    assert_eq!(response.error_code, ResponseError::ClusterAuthorizationFailed.code());
    let operator = alice(&[(CLUSTER, "kafka-cluster", LITERAL, "User:alice", Operation::Alter, true)]);
    assert!(!cluster::add_raft_voter(&operator, AddRaftVoterRequest::default()).denied_anything());
    assert!(!cluster::remove_raft_voter(&operator, RemoveRaftVoterRequest::default()).denied_anything());
}

#[test]
fn group_apis_need_the_group_and_commits_the_topics() {
    let access = alice(&[
        (GROUP, "g", LITERAL, "User:alice", Operation::Read, true),
        (TOPIC, "a", LITERAL, "User:alice", Operation::Read, true),
    ]);
    let join = JoinGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("other")));
    let Gate::Refuse(response) = groups::join_group(&access, join) else { panic!("another group is refused") };
    assert_eq!(response.error_code, ResponseError::GroupAuthorizationFailed.code());
    let commit = OffsetCommitRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_topics(
        ["a", "b"]
            .iter()
            .map(|t| {
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()])
            })
            .collect(),
    );
    let response = groups::offset_commit(&access, commit).serve(|served| {
        assert_eq!(served.topics.len(), 1);
        OffsetCommitResponse::default()
    });
    assert_eq!(response.topics[0].name.0.as_str(), "b");
    assert_eq!(response.topics[0].partitions[0].error_code, ResponseError::TopicAuthorizationFailed.code());
}

/// Every answer a gate writes encodes in every version the API is served in: no field is
/// set that a version lacks (the codec refuses those).
#[test]
fn refusals_and_completions_encode_in_every_supported_version() {
    use kafka_protocol::protocol::Encodable;
    fn every_version<R: Encodable>(api: ApiKey, make: impl Fn(i16) -> R) {
        let range = runnel_protocol::api::supported_range(api).expect("served");
        let hand_coded = runnel_protocol::api::HAND_CODED;
        for version in range.min..=range.max {
            if hand_coded.contains(&(api, version)) {
                continue;
            }
            let mut buf = bytes::BytesMut::new();
            make(version).encode(&mut buf, version).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        }
    }
    let nobody = alice(&[]);
    let group = GroupId(StrBytes::from_static_str("g"));
    fn refusal<Req, Resp>(gate: Gate<Req, Resp>) -> Resp {
        match gate {
            Gate::Refuse(response) => response,
            Gate::Pass(..) => panic!("expected a refusal"),
        }
    }
    fn completed<Req, Resp: Default>(gate: Gate<Req, Resp>) -> Resp {
        gate.serve(|_| Resp::default())
    }
    let topic = |t: &str| topic_name(t);
    every_version(ApiKey::JoinGroup, |_| {
        refusal(groups::join_group(&nobody, JoinGroupRequest::default().with_group_id(group.clone())))
    });
    every_version(ApiKey::SyncGroup, |_| {
        refusal(groups::sync_group(&nobody, SyncGroupRequest::default().with_group_id(group.clone())))
    });
    every_version(ApiKey::Heartbeat, |_| {
        refusal(groups::heartbeat(&nobody, HeartbeatRequest::default().with_group_id(group.clone())))
    });
    every_version(ApiKey::LeaveGroup, |_| {
        refusal(groups::leave_group(&nobody, LeaveGroupRequest::default().with_group_id(group.clone())))
    });
    every_version(ApiKey::OffsetCommit, |_| {
        let topics = vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()])];
        refusal(groups::offset_commit(
            &nobody,
            OffsetCommitRequest::default().with_group_id(group.clone()).with_topics(topics),
        ))
    });
    every_version(ApiKey::OffsetFetch, |version| {
        let topics = Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(topic("t"))
            .with_partition_indexes(vec![0])]);
        let groups_v8 = vec![offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group.clone())
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0])]))];
        let request = if version < 8 {
            OffsetFetchRequest::default().with_group_id(group.clone()).with_topics(topics)
        } else {
            OffsetFetchRequest::default().with_groups(groups_v8)
        };
        match groups::offset_fetch(&nobody, request, version) {
            Gate::Refuse(response) => response,
            gate => completed(gate),
        }
    });
    every_version(ApiKey::FindCoordinator, |version| {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("g"))
            .with_coordinator_keys(if version >= 4 { vec![StrBytes::from_static_str("g")] } else { Vec::new() });
        match groups::find_coordinator(&nobody, request, version) {
            Gate::Refuse(response) => response,
            gate => completed(gate),
        }
    });
    every_version(ApiKey::DescribeGroups, |_| {
        completed(groups::describe_groups(&nobody, DescribeGroupsRequest::default().with_groups(vec![group.clone()])))
    });
    every_version(ApiKey::DeleteGroups, |_| {
        completed(groups::delete_groups(&nobody, DeleteGroupsRequest::default().with_groups_names(vec![group.clone()])))
    });
    every_version(ApiKey::OffsetDelete, |_| {
        refusal(groups::offset_delete(&nobody, OffsetDeleteRequest::default().with_group_id(group.clone())))
    });
    let image = image_with(&["t"]);
    every_version(ApiKey::Metadata, |_| {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(topic("t")))]));
        completed(topics::metadata(&nobody, request, &image, false, false))
    });
    every_version(ApiKey::Produce, |_| {
        let request = ProduceRequest::default().with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("t"))
            .with_partition_data(vec![PartitionProduceData::default()])]);
        completed(topics::produce(&nobody, request))
    });
    every_version(ApiKey::ListOffsets, |_| {
        let request = ListOffsetsRequest::default()
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()])]);
        completed(topics::list_offsets(&nobody, request))
    });
    every_version(ApiKey::OffsetForLeaderEpoch, |_| {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic("t"))
                .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()]),
        ]);
        completed(topics::offset_for_leader_epoch(&nobody, request))
    });
    every_version(ApiKey::CreateTopics, |_| {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![create_topics_request::CreatableTopic::default().with_name(topic("t"))]);
        completed(topics::create_topics(&nobody, request))
    });
    every_version(ApiKey::DeleteTopics, |version| {
        let request = if version >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(topic("t")))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic("t")])
        };
        completed(topics::delete_topics(&nobody, request, &image))
    });
    every_version(ApiKey::CreatePartitions, |_| {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default().with_name(topic("t"))]);
        completed(topics::create_partitions(&nobody, request))
    });
    every_version(ApiKey::DescribeConfigs, |_| {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t")),
        ]);
        completed(topics::describe_configs(&nobody, request))
    });
    every_version(ApiKey::IncrementalAlterConfigs, |_| {
        let resources = [(2, "t"), (4, "1")].map(|(kind, name)| {
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_static_str(name))
        });
        let response = completed(super::configs::incremental_alter_configs(
            &nobody,
            IncrementalAlterConfigsRequest::default().with_resources(resources.to_vec()),
        ));
        let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [29, 31], "topic, then cluster authorization failed");
        response
    });
    every_version(ApiKey::DescribeTopicPartitions, |_| {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![describe_topic_partitions_request::TopicRequest::default().with_name(topic("t"))]);
        let response = refusal(topics::describe_topic_partitions(&nobody, request, &image));
        assert_eq!(response.topics[0].error_code, 29);
        let all =
            refusal(topics::describe_topic_partitions(&nobody, DescribeTopicPartitionsRequest::default(), &image));
        assert!(all.topics.is_empty(), "listing every topic discloses none");
        response
    });
    every_version(ApiKey::DeleteRecords, |_| {
        let request =
            DeleteRecordsRequest::default().with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default()])]);
        let response = completed(topics::delete_records(&nobody, request));
        assert_eq!(response.topics[0].partitions[0].error_code, 29);
        response
    });
    every_version(ApiKey::DescribeProducers, |_| {
        let request =
            DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0])]);
        let response = completed(topics::describe_producers(&nobody, request));
        assert_eq!(response.topics[0].partitions[0].error_code, 29);
        response
    });
    every_version(ApiKey::AlterConfigs, |_| {
        let request =
            AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))]);
        completed(super::configs::alter_configs(&nobody, request))
    });
    every_version(ApiKey::DescribeCluster, |_| {
        refusal(cluster::describe_cluster(&nobody, DescribeClusterRequest::default()))
    });
    every_version(ApiKey::DescribeLogDirs, |_| {
        refusal(cluster::describe_log_dirs(&nobody, DescribeLogDirsRequest::default()))
    });
    every_version(ApiKey::DescribeQuorum, |_| {
        refusal(cluster::describe_quorum(&nobody, DescribeQuorumRequest::default()))
    });
    every_version(ApiKey::AddRaftVoter, |_| refusal(cluster::add_raft_voter(&nobody, AddRaftVoterRequest::default())));
    every_version(ApiKey::RemoveRaftVoter, |_| {
        refusal(cluster::remove_raft_voter(&nobody, RemoveRaftVoterRequest::default()))
    });
    every_version(ApiKey::ElectLeaders, |version| {
        let request = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default().with_topic(topic("t")).with_partitions(vec![0]),
        ]));
        refusal(cluster::elect_leaders(&nobody, request, version))
    });
    every_version(ApiKey::AlterPartitionReassignments, |_| {
        refusal(cluster::alter_partition_reassignments(&nobody, AlterPartitionReassignmentsRequest::default()))
    });
    every_version(ApiKey::ListPartitionReassignments, |_| {
        refusal(cluster::list_partition_reassignments(&nobody, ListPartitionReassignmentsRequest::default()))
    });
    every_version(ApiKey::InitProducerId, |_| {
        refusal(cluster::init_producer_id(&nobody, InitProducerIdRequest::default().with_transactional_id(None)))
    });
    every_version(ApiKey::DescribeUserScramCredentials, |_| {
        refusal(cluster::describe_user_scram_credentials(&nobody, DescribeUserScramCredentialsRequest::default()))
    });
    every_version(ApiKey::AlterUserScramCredentials, |_| {
        let request = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("u"))]);
        refusal(cluster::alter_user_scram_credentials(&nobody, request))
    });
    every_version(ApiKey::DescribeAcls, |_| refusal(cluster::describe_acls(&nobody, DescribeAclsRequest::default())));
    every_version(ApiKey::CreateAcls, |_| {
        let request = CreateAclsRequest::default().with_creations(vec![create_acls_request::AclCreation::default()]);
        refusal(cluster::create_acls(&nobody, request))
    });
    every_version(ApiKey::DeleteAcls, |_| {
        let request = DeleteAclsRequest::default().with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]);
        refusal(cluster::delete_acls(&nobody, request))
    });
}
