//! Every advertised version of every API through the codec: a request and a response are
//! encoded at that version and decode back equal. The APIs whose oldest versions Runnel
//! takes from Kafka 3.9 (ListOffsets v0, OffsetCommit v0-1, OffsetFetch v0, CreateTopics
//! v0-1, DeleteTopics v0, the ACL APIs v0, DescribeLogDirs v0) get messages with a
//! non-default value in every field their version carries; the other APIs, whose codecs
//! are kafka-protocol's unpatched, go through with their default messages. Hand-coded
//! versions (`HAND_CODED`) are checked by the broker's own tests of those encoders.

use std::fmt::Debug;

use bytes::BytesMut;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use super::*;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

fn topic(value: &'static str) -> TopicName {
    TopicName(s(value))
}

/// Encodes `message` at `version` and checks that it decodes back equal, every byte read.
fn round_trip<M: Encodable + Decodable + PartialEq + Debug>(what: &str, version: i16, message: &M) {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, version).unwrap_or_else(|e| panic!("{what} v{version}: encode: {e}"));
    let size = message.compute_size(version).unwrap_or_else(|e| panic!("{what} v{version}: size: {e}"));
    assert_eq!(size, buf.len(), "{what} v{version}: compute_size");
    let mut bytes = buf.freeze();
    let decoded = M::decode(&mut bytes, version).unwrap_or_else(|e| panic!("{what} v{version}: decode: {e}"));
    assert!(bytes.is_empty(), "{what} v{version}: {} bytes left over", bytes.len());
    assert_eq!(&decoded, message, "{what} v{version}");
}

fn versions(key: ApiKey) -> impl Iterator<Item = i16> {
    let range = supported_range(key).expect("implemented");
    (range.min..=range.max).filter(move |v| !HAND_CODED.contains(&(key, *v)))
}

/// The default request and response of every advertised version.
fn defaults<Req, Resp>(range: &ApiRange)
where
    Req: Message + Encodable + Decodable + Default + PartialEq + Debug,
    Resp: Message + Encodable + Decodable + Default + PartialEq + Debug,
{
    for version in versions(range.key) {
        assert!(Req::VERSIONS.min <= version && version <= Req::VERSIONS.max, "{range:?} v{version}");
        assert!(Resp::VERSIONS.min <= version && version <= Resp::VERSIONS.max, "{range:?} v{version}");
        round_trip(&format!("{:?} request", range.key), version, &Req::default());
        round_trip(&format!("{:?} response", range.key), version, &Resp::default());
    }
}

#[test]
fn every_advertised_version_round_trips() {
    for range in SUPPORTED {
        match range.key {
            ApiKey::Produce => defaults::<ProduceRequest, ProduceResponse>(range),
            ApiKey::Fetch => defaults::<FetchRequest, FetchResponse>(range),
            ApiKey::ListOffsets => defaults::<ListOffsetsRequest, ListOffsetsResponse>(range),
            ApiKey::Metadata => defaults::<MetadataRequest, MetadataResponse>(range),
            ApiKey::ApiVersions => defaults::<ApiVersionsRequest, ApiVersionsResponse>(range),
            ApiKey::CreateTopics => defaults::<CreateTopicsRequest, CreateTopicsResponse>(range),
            ApiKey::DeleteTopics => defaults::<DeleteTopicsRequest, DeleteTopicsResponse>(range),
            ApiKey::DeleteRecords => defaults::<DeleteRecordsRequest, DeleteRecordsResponse>(range),
            ApiKey::InitProducerId => defaults::<InitProducerIdRequest, InitProducerIdResponse>(range),
            ApiKey::OffsetForLeaderEpoch => {
                defaults::<OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse>(range)
            }
            ApiKey::DescribeConfigs => defaults::<DescribeConfigsRequest, DescribeConfigsResponse>(range),
            ApiKey::AlterConfigs => defaults::<AlterConfigsRequest, AlterConfigsResponse>(range),
            ApiKey::IncrementalAlterConfigs => {
                defaults::<IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse>(range)
            }
            ApiKey::CreatePartitions => defaults::<CreatePartitionsRequest, CreatePartitionsResponse>(range),
            ApiKey::DescribeCluster => defaults::<DescribeClusterRequest, DescribeClusterResponse>(range),
            ApiKey::DescribeTopicPartitions => {
                defaults::<DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse>(range)
            }
            ApiKey::DescribeProducers => defaults::<DescribeProducersRequest, DescribeProducersResponse>(range),
            ApiKey::DescribeAcls => defaults::<DescribeAclsRequest, DescribeAclsResponse>(range),
            ApiKey::CreateAcls => defaults::<CreateAclsRequest, CreateAclsResponse>(range),
            ApiKey::DeleteAcls => defaults::<DeleteAclsRequest, DeleteAclsResponse>(range),
            ApiKey::DescribeQuorum => defaults::<DescribeQuorumRequest, DescribeQuorumResponse>(range),
            ApiKey::OffsetCommit => defaults::<OffsetCommitRequest, OffsetCommitResponse>(range),
            ApiKey::OffsetFetch => defaults::<OffsetFetchRequest, OffsetFetchResponse>(range),
            ApiKey::FindCoordinator => defaults::<FindCoordinatorRequest, FindCoordinatorResponse>(range),
            ApiKey::JoinGroup => defaults::<JoinGroupRequest, JoinGroupResponse>(range),
            ApiKey::Heartbeat => defaults::<HeartbeatRequest, HeartbeatResponse>(range),
            ApiKey::LeaveGroup => defaults::<LeaveGroupRequest, LeaveGroupResponse>(range),
            ApiKey::SyncGroup => defaults::<SyncGroupRequest, SyncGroupResponse>(range),
            ApiKey::DescribeGroups => defaults::<DescribeGroupsRequest, DescribeGroupsResponse>(range),
            ApiKey::ListGroups => defaults::<ListGroupsRequest, ListGroupsResponse>(range),
            ApiKey::DeleteGroups => defaults::<DeleteGroupsRequest, DeleteGroupsResponse>(range),
            ApiKey::OffsetDelete => defaults::<OffsetDeleteRequest, OffsetDeleteResponse>(range),
            ApiKey::DescribeLogDirs => defaults::<DescribeLogDirsRequest, DescribeLogDirsResponse>(range),
            ApiKey::ElectLeaders => defaults::<ElectLeadersRequest, ElectLeadersResponse>(range),
            ApiKey::AlterPartitionReassignments => {
                defaults::<AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse>(range)
            }
            ApiKey::ListPartitionReassignments => {
                defaults::<ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse>(range)
            }
            ApiKey::SaslHandshake => defaults::<SaslHandshakeRequest, SaslHandshakeResponse>(range),
            ApiKey::SaslAuthenticate => defaults::<SaslAuthenticateRequest, SaslAuthenticateResponse>(range),
            ApiKey::DescribeUserScramCredentials => {
                defaults::<DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse>(range)
            }
            ApiKey::AlterUserScramCredentials => {
                defaults::<AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse>(range)
            }
            ApiKey::DescribeClientQuotas => {
                defaults::<DescribeClientQuotasRequest, DescribeClientQuotasResponse>(range)
            }
            ApiKey::AlterClientQuotas => defaults::<AlterClientQuotasRequest, AlterClientQuotasResponse>(range),
            ApiKey::AddRaftVoter => defaults::<AddRaftVoterRequest, AddRaftVoterResponse>(range),
            ApiKey::AddPartitionsToTxn => defaults::<AddPartitionsToTxnRequest, AddPartitionsToTxnResponse>(range),
            ApiKey::AddOffsetsToTxn => defaults::<AddOffsetsToTxnRequest, AddOffsetsToTxnResponse>(range),
            ApiKey::EndTxn => defaults::<EndTxnRequest, EndTxnResponse>(range),
            ApiKey::WriteTxnMarkers => defaults::<WriteTxnMarkersRequest, WriteTxnMarkersResponse>(range),
            ApiKey::TxnOffsetCommit => defaults::<TxnOffsetCommitRequest, TxnOffsetCommitResponse>(range),
            ApiKey::DescribeTransactions => {
                defaults::<DescribeTransactionsRequest, DescribeTransactionsResponse>(range)
            }
            ApiKey::ListTransactions => defaults::<ListTransactionsRequest, ListTransactionsResponse>(range),
            ApiKey::RemoveRaftVoter => defaults::<RemoveRaftVoterRequest, RemoveRaftVoterResponse>(range),
            other => panic!("no codec check for {other:?}"),
        }
    }
}

#[test]
fn kafka_3_9_minimums_are_advertised() {
    let minimum = |key| supported_range(key).expect("implemented").min;
    for range in SUPPORTED {
        let expected = match range.key {
            ApiKey::Produce => 3,
            ApiKey::Fetch => 4,
            // Sent only by Runnel's own coordinators; v0 left Kafka in 4.0 (KIP-896).
            ApiKey::WriteTxnMarkers => 1,
            _ => 0,
        };
        assert_eq!(range.min, expected, "{range:?}");
    }
    assert_eq!(minimum(ApiKey::ListOffsets), 0);
}

#[test]
fn list_offsets_in_every_version() {
    for v in versions(ApiKey::ListOffsets) {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(3)
            .with_current_leader_epoch(if v >= 4 { 7 } else { -1 })
            .with_timestamp(1_700_000_000_000)
            .with_max_num_offsets(if v == 0 { 5 } else { 1 });
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(if v >= 2 { 1 } else { 0 })
            .with_topics(vec![ListOffsetsTopic::default().with_name(topic("t")).with_partitions(vec![partition])]);
        round_trip("ListOffsets request", v, &request);
        let partition = ListOffsetsPartitionResponse::default().with_partition_index(3).with_error_code(6);
        let partition = if v == 0 {
            partition.with_old_style_offsets(vec![42, 10, 0])
        } else {
            partition.with_timestamp(99).with_offset(42).with_leader_epoch(if v >= 4 { 4 } else { -1 })
        };
        let response =
            ListOffsetsResponse::default().with_throttle_time_ms(if v >= 2 { 9 } else { 0 }).with_topics(vec![
                ListOffsetsTopicResponse::default().with_name(topic("t")).with_partitions(vec![partition]),
            ]);
        round_trip("ListOffsets response", v, &response);
    }
    // What v0 cannot carry is refused rather than dropped.
    let v1_only = ListOffsetsPartitionResponse::default().with_offset(3);
    assert!(v1_only.encode(&mut BytesMut::new(), 0).is_err());
    let v0_only = ListOffsetsPartitionResponse::default().with_old_style_offsets(vec![1]);
    assert!(v0_only.encode(&mut BytesMut::new(), 1).is_err());
}

#[test]
fn offset_commit_and_fetch_in_every_version() {
    for v in versions(ApiKey::OffsetCommit) {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(1)
            .with_committed_offset(77)
            .with_committed_leader_epoch(if v >= 6 { 2 } else { -1 })
            .with_commit_timestamp(if v == 1 { 1_600_000_000_000 } else { -1 })
            .with_committed_metadata(Some(s("md")));
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(if v >= 1 { 3 } else { -1 })
            .with_member_id(if v >= 1 { s("m") } else { StrBytes::default() })
            .with_group_instance_id(if v >= 7 { Some(s("i")) } else { None })
            .with_retention_time_ms(if (2..=4).contains(&v) { 1000 } else { -1 })
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![partition])]);
        round_trip("OffsetCommit request", v, &request);
        let response =
            OffsetCommitResponse::default().with_throttle_time_ms(if v >= 3 { 8 } else { 0 }).with_topics(vec![
                OffsetCommitResponseTopic::default().with_name(topic("t")).with_partitions(vec![
                    OffsetCommitResponsePartition::default().with_partition_index(1).with_error_code(35),
                ]),
            ]);
        round_trip("OffsetCommit response", v, &response);
    }
    let v1_only = OffsetCommitRequestPartition::default().with_commit_timestamp(5);
    assert!(v1_only.encode(&mut BytesMut::new(), 2).is_err());
    for v in versions(ApiKey::OffsetFetch) {
        let (request, response) = if v < 8 {
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0, 1])]))
                .with_require_stable(v >= 7);
            let partition = OffsetFetchResponsePartition::default()
                .with_partition_index(1)
                .with_committed_offset(12)
                .with_committed_leader_epoch(if v >= 5 { 3 } else { -1 })
                .with_metadata(Some(s("x")))
                .with_error_code(35);
            let response = OffsetFetchResponse::default()
                .with_throttle_time_ms(if v >= 3 { 4 } else { 0 })
                .with_topics(vec![OffsetFetchResponseTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![partition])])
                .with_error_code(if v >= 2 { 16 } else { 0 });
            (request, response)
        } else {
            let group = OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g"))).with_topics(Some(vec![
                OffsetFetchRequestTopics::default().with_name(topic("t")).with_partition_indexes(vec![0, 1]),
            ]));
            let request = OffsetFetchRequest::default().with_groups(vec![group]).with_require_stable(true);
            let partition = OffsetFetchResponsePartitions::default()
                .with_partition_index(1)
                .with_committed_offset(12)
                .with_committed_leader_epoch(3)
                .with_metadata(Some(s("x")));
            let group = OffsetFetchResponseGroup::default().with_group_id(GroupId(s("g"))).with_topics(vec![
                OffsetFetchResponseTopics::default().with_name(topic("t")).with_partitions(vec![partition]),
            ]);
            (request, OffsetFetchResponse::default().with_throttle_time_ms(4).with_groups(vec![group]))
        };
        round_trip("OffsetFetch request", v, &request);
        round_trip("OffsetFetch response", v, &response);
    }
}

#[test]
fn create_and_delete_topics_in_every_version() {
    for v in versions(ApiKey::CreateTopics) {
        let created = CreatableTopic::default()
            .with_name(topic("t"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1)])])
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))]);
        let request =
            CreateTopicsRequest::default().with_topics(vec![created]).with_timeout_ms(1234).with_validate_only(v >= 1);
        round_trip("CreateTopics request", v, &request);
        let mut result = CreatableTopicResult::default().with_name(topic("t")).with_error_code(36);
        if v >= 1 {
            result = result.with_error_message(Some(s("exists")));
        }
        if v >= 5 {
            result = result.with_num_partitions(3).with_replication_factor(1).with_configs(Some(vec![
                CreatableTopicConfigs::default().with_name(s("cleanup.policy")).with_value(Some(s("compact"))),
            ]));
        }
        if v >= 7 {
            result = result.with_topic_id(uuid::Uuid::from_u128(7));
        }
        let response =
            CreateTopicsResponse::default().with_throttle_time_ms(if v >= 2 { 6 } else { 0 }).with_topics(vec![result]);
        round_trip("CreateTopics response", v, &response);
    }
    let v1_only = CreateTopicsRequest::default().with_validate_only(true);
    assert!(v1_only.encode(&mut BytesMut::new(), 0).is_err());
    for v in versions(ApiKey::DeleteTopics) {
        let request = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()
                .with_name(Some(topic("a")))
                .with_topic_id(uuid::Uuid::from_u128(9))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic("a"), topic("b")])
        };
        round_trip("DeleteTopics request", v, &request.with_timeout_ms(900));
        let mut result = DeletableTopicResult::default().with_name(Some(topic("a"))).with_error_code(3);
        if v >= 5 {
            result = result.with_error_message(Some(s("gone")));
        }
        if v >= 6 {
            result = result.with_topic_id(uuid::Uuid::from_u128(9));
        }
        let response = DeleteTopicsResponse::default()
            .with_throttle_time_ms(if v >= 1 { 2 } else { 0 })
            .with_responses(vec![result]);
        round_trip("DeleteTopics response", v, &response);
    }
}

#[test]
fn acls_in_every_version_v0_literal() {
    // PREFIXED (4) from v1; v0 carries no pattern type, which means LITERAL (3).
    let pattern = |v: i16| if v >= 1 { 4 } else { 3 };
    for v in versions(ApiKey::DescribeAcls) {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("t")))
            .with_pattern_type_filter(pattern(v))
            .with_principal_filter(Some(s("User:a")))
            .with_host_filter(Some(s("*")))
            .with_operation(3)
            .with_permission_type(3);
        round_trip("DescribeAcls request", v, &request);
        let acl = AclDescription::default()
            .with_principal(s("User:a"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let resource = DescribeAclsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_pattern_type(pattern(v))
            .with_acls(vec![acl]);
        let response = DescribeAclsResponse::default()
            .with_throttle_time_ms(5)
            .with_error_code(31)
            .with_error_message(Some(s("no")))
            .with_resources(vec![resource]);
        round_trip("DescribeAcls response", v, &response);
    }
    for v in versions(ApiKey::CreateAcls) {
        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_resource_pattern_type(pattern(v))
            .with_principal(s("User:a"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        round_trip("CreateAcls request", v, &CreateAclsRequest::default().with_creations(vec![creation]));
        let result = AclCreationResult::default().with_error_code(31).with_error_message(Some(s("no")));
        round_trip(
            "CreateAcls response",
            v,
            &CreateAclsResponse::default().with_throttle_time_ms(5).with_results(vec![result]),
        );
    }
    for v in versions(ApiKey::DeleteAcls) {
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("t")))
            .with_pattern_type_filter(pattern(v))
            .with_principal_filter(Some(s("User:a")))
            .with_host_filter(None)
            .with_operation(3)
            .with_permission_type(3);
        round_trip("DeleteAcls request", v, &DeleteAclsRequest::default().with_filters(vec![filter]));
        let matching = DeleteAclsMatchingAcl::default()
            .with_error_code(0)
            .with_error_message(Some(s("m")))
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_pattern_type(pattern(v))
            .with_principal(s("User:a"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let result = DeleteAclsFilterResult::default()
            .with_error_code(31)
            .with_error_message(Some(s("no")))
            .with_matching_acls(vec![matching]);
        let response = DeleteAclsResponse::default().with_throttle_time_ms(5).with_filter_results(vec![result]);
        round_trip("DeleteAcls response", v, &response);
    }
    let prefixed = DescribeAclsRequest::default().with_pattern_type_filter(4);
    assert!(prefixed.encode(&mut BytesMut::new(), 0).is_err());
}

#[test]
fn describe_log_dirs_in_every_version() {
    for v in versions(ApiKey::DescribeLogDirs) {
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![0, 1])]));
        round_trip("DescribeLogDirs request", v, &request);
        let partition = DescribeLogDirsPartition::default()
            .with_partition_index(1)
            .with_partition_size(100)
            .with_offset_lag(2)
            .with_is_future_key(true);
        let mut result = DescribeLogDirsResult::default()
            .with_error_code(57)
            .with_log_dir(s("/d"))
            .with_topics(vec![DescribeLogDirsTopic::default().with_name(topic("t")).with_partitions(vec![partition])]);
        if v >= 4 {
            result = result.with_total_bytes(1000).with_usable_bytes(500);
        }
        let response = DescribeLogDirsResponse::default()
            .with_throttle_time_ms(7)
            .with_error_code(if v >= 3 { 31 } else { 0 })
            .with_results(vec![result]);
        round_trip("DescribeLogDirs response", v, &response);
    }
}

/// KIP-853's voter changes and DescribeQuorum v2 with every field set.
#[test]
fn controller_membership_messages_in_every_version() {
    use kafka_protocol::messages::add_raft_voter_request::Listener;
    use kafka_protocol::messages::describe_quorum_response::{self as dq, Node, ReplicaState};
    let directory = uuid::Uuid::from_u128(0x853);
    for v in versions(ApiKey::AddRaftVoter) {
        let listener = Listener::default().with_name(s("CONTROLLER")).with_host(s("10.0.0.4")).with_port(9193);
        let request = AddRaftVoterRequest::default()
            .with_cluster_id(Some(s("abc")))
            .with_timeout_ms(30_000)
            .with_voter_id(4)
            .with_voter_directory_id(directory)
            .with_listeners(vec![listener]);
        round_trip("AddRaftVoter request", v, &request);
        let response = AddRaftVoterResponse::default()
            .with_throttle_time_ms(5)
            .with_error_code(119)
            .with_error_message(Some(s("duplicate")));
        round_trip("AddRaftVoter response", v, &response);
    }
    for v in versions(ApiKey::RemoveRaftVoter) {
        let request = RemoveRaftVoterRequest::default()
            .with_cluster_id(Some(s("abc")))
            .with_voter_id(2)
            .with_voter_directory_id(directory);
        round_trip("RemoveRaftVoter request", v, &request);
        let response = RemoveRaftVoterResponse::default()
            .with_throttle_time_ms(5)
            .with_error_code(120)
            .with_error_message(Some(s("not found")));
        round_trip("RemoveRaftVoter response", v, &response);
    }
    for v in versions(ApiKey::DescribeQuorum) {
        let replica = ReplicaState::default()
            .with_replica_id(BrokerId(2))
            .with_replica_directory_id(if v >= 2 { directory } else { uuid::Uuid::nil() })
            .with_log_end_offset(42)
            .with_last_fetch_timestamp(if v >= 1 { 7 } else { -1 })
            .with_last_caught_up_timestamp(if v >= 1 { 8 } else { -1 });
        let partition = dq::PartitionData::default()
            .with_partition_index(0)
            .with_error_message(if v >= 2 { Some(s("none")) } else { Some(s("")) })
            .with_leader_id(BrokerId(2))
            .with_leader_epoch(3)
            .with_high_watermark(42)
            .with_current_voters(vec![replica.clone()])
            .with_observers(vec![replica]);
        let topic =
            dq::TopicData::default().with_topic_name(topic("__cluster_metadata")).with_partitions(vec![partition]);
        let mut response = DescribeQuorumResponse::default()
            .with_error_message(if v >= 2 { Some(s("none")) } else { Some(s("")) })
            .with_topics(vec![topic]);
        if v >= 2 {
            let listener = dq::Listener::default().with_name(s("CONTROLLER")).with_host(s("h")).with_port(9193);
            response =
                response.with_nodes(vec![Node::default().with_node_id(BrokerId(2)).with_listeners(vec![listener])]);
        }
        round_trip("DescribeQuorum response", v, &response);
    }
}
