//! Every advertised version of every group API, end to end through the dispatcher against a
//! real broker over a temporary directory: requests encoded by `kafka-protocol`, responses
//! decoded by it. This catches fields set on versions that lack them (an encoding error
//! closes the connection) and checks what each version answers.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use runnel_protocol::api::supported_range;
use runnel_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::handlers::handle;

struct Node {
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
    _stop_tx: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn open(dir: tempfile::TempDir) -> Node {
    open_with_delay(dir, 0)
}

fn open_with_delay(dir: tempfile::TempDir, initial_rebalance_delay_ms: i64) -> Node {
    let mut config = BrokerConfig { data_dir: dir.path().to_path_buf(), ..BrokerConfig::default() };
    config.groups.initial_rebalance_delay_ms = initial_rebalance_delay_ms;
    config.offsets_topic_num_partitions = 3;
    let broker = tokio::task::block_in_place(|| Broker::open(config, None)).expect("open broker");
    let (stop_tx, stop) = watch::channel(false);
    Node { broker, stop, _stop_tx: stop_tx, _dir: dir }
}

async fn call<R: Request>(node: &Node, request: &R, version: i16) -> R::Response {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("tests")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, R::header_version(version)).unwrap();
    request.encode(&mut buf, version).unwrap();
    let frame = handle(
        &node.broker,
        buf.freeze(),
        &node.stop,
        &crate::session::Session::plaintext("127.0.0.1:1".parse().unwrap()),
    )
    .await
    .expect("handled")
    .frame
    .expect("a response");
    let mut bytes = BytesMut::new();
    for chunk in frame.chunks {
        match chunk {
            crate::response::Chunk::Bytes(b) => bytes.extend_from_slice(&b),
            crate::response::Chunk::File(_) => panic!("group responses are buffers"),
        }
    }
    let mut body: Bytes = bytes.freeze().slice(4..);
    let api = ApiKey::try_from(R::KEY).unwrap();
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let response = R::Response::decode(&mut body, version).unwrap();
    assert!(body.is_empty(), "{api:?} v{version}: trailing bytes");
    response
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let range = supported_range(key).expect("advertised");
    range.min..=range.max
}

fn consumer_subscription() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff])
}

/// Joins `group` alone and returns (member id, generation).
async fn join_alone(node: &Node, group: &str, version: i16) -> (String, i32) {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(consumer_subscription());
    let mut request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![protocol]);
    let mut response = call(node, &request, version).await;
    if version >= 4 {
        assert_eq!(response.error_code, ResponseError::MemberIdRequired.code(), "JoinGroup v{version}");
        request.member_id = response.member_id.clone();
        response = call(node, &request, version).await;
    }
    assert_eq!(response.error_code, 0, "JoinGroup v{version}");
    assert_eq!(response.leader, response.member_id, "alone, it leads");
    assert_eq!(response.members.len(), 1);
    assert_eq!(response.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    (response.member_id.to_string(), response.generation_id)
}

async fn sync_as_leader(node: &Node, group: &str, member: &str, generation: i32, version: i16) {
    let assignment = SyncGroupRequestAssignment::default()
        .with_member_id(StrBytes::from_string(member.into()))
        .with_assignment(Bytes::from_static(b"assigned"));
    let mut request = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_assignments(vec![assignment]);
    if version >= 5 {
        request = request
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")));
    }
    let response = call(node, &request, version).await;
    assert_eq!(response.error_code, 0, "SyncGroup v{version}");
    assert_eq!(response.assignment, Bytes::from_static(b"assigned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_apis_answer_every_advertised_version() {
    let node = open(tempfile::tempdir().unwrap());
    for version in versions(ApiKey::FindCoordinator) {
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("g"), StrBytes::new()])
        } else {
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"))
        };
        let response = call(&node, &request, version).await;
        if version >= 4 {
            assert_eq!(response.coordinators[0].node_id.0, node.broker.config.node_id);
            assert_eq!(response.coordinators[1].error_code, ResponseError::InvalidRequest.code());
        } else {
            assert_eq!((response.error_code, response.node_id.0), (0, node.broker.config.node_id));
        }
    }
    for version in versions(ApiKey::JoinGroup) {
        let group = format!("join-v{version}");
        let (member, generation) = join_alone(&node, &group, version).await;
        let sync_version = version.min(*versions(ApiKey::SyncGroup).end());
        sync_as_leader(&node, &group, &member, generation, sync_version).await;
        for hb_version in versions(ApiKey::Heartbeat) {
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member.clone()));
            assert_eq!(call(&node, &request, hb_version).await.error_code, 0, "Heartbeat v{hb_version}");
        }
        let leave_version = version.min(*versions(ApiKey::LeaveGroup).end());
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(group.clone())));
        if leave_version >= 3 {
            leave.members = vec![MemberIdentity::default().with_member_id(StrBytes::from_string(member.clone()))];
        } else {
            leave.member_id = StrBytes::from_string(member.clone());
        }
        let response = call(&node, &leave, leave_version).await;
        assert_eq!(response.error_code, 0, "LeaveGroup v{leave_version}");
        assert_eq!(node.broker.groups.describe(&group).unwrap().state.name(), "Empty");
    }
}

fn commit_request(group: &str, member: &str, generation: i32, offset: i64) -> OffsetCommitRequest {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(StrBytes::from_static_str("meta")));
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition])])
}

async fn fetch_offset(node: &Node, group: &str, version: i16) -> (i64, String) {
    let name = TopicName(StrBytes::from_static_str("t"));
    let request = if version >= 8 {
        let topic = kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default()
            .with_name(name)
            .with_partition_indexes(vec![0]);
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_topics(Some(vec![topic]))])
    } else {
        let topic = OffsetFetchRequestTopic::default().with_name(name).with_partition_indexes(vec![0]);
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_topics(Some(vec![topic]))
    };
    let response = call(node, &request, version).await;
    if version >= 8 {
        let p = &response.groups[0].topics[0].partitions[0];
        (p.committed_offset, p.metadata.as_ref().unwrap().to_string())
    } else {
        let p = &response.topics[0].partitions[0];
        (p.committed_offset, p.metadata.as_ref().unwrap().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_and_admin_apis_answer_every_advertised_version() {
    let node = open(tempfile::tempdir().unwrap());
    crate::topic_admin::create_topic(&node.broker, "t", 1, 1, &Default::default(), false).ok().unwrap();
    for version in versions(ApiKey::OffsetCommit) {
        let group = format!("commit-v{version}");
        let response = call(&node, &commit_request(&group, "", -1, 100 + i64::from(version)), version).await;
        // v0 stored offsets in ZooKeeper: Kafka 3.9 in KRaft mode refuses it, and so does Runnel.
        let expected = if version == 0 { ResponseError::UnsupportedVersion.code() } else { 0 };
        assert_eq!(response.topics[0].partitions[0].error_code, expected, "OffsetCommit v{version}");
        let unknown = commit_request(&group, "", -1, 1).with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("nope")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()])]);
        let response = call(&node, &unknown, version).await;
        assert_eq!(response.topics[0].partitions[0].error_code, ResponseError::UnknownTopicOrPartition.code());
        for fetch_version in versions(ApiKey::OffsetFetch) {
            let fetched = fetch_offset(&node, &group, fetch_version).await;
            let expected = if version == 0 || fetch_version == 0 {
                (-1, String::new())
            } else {
                (100 + i64::from(version), "meta".to_string())
            };
            assert_eq!(fetched, expected, "OffsetCommit v{version}, OffsetFetch v{fetch_version}");
        }
    }
    for version in versions(ApiKey::ListGroups) {
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request.states_filter = vec![StrBytes::from_static_str("empty")];
        }
        let response = call(&node, &request, version).await;
        // One group per OffsetCommit version from v1 (v0 commits nothing).
        assert_eq!(response.groups.len(), 9, "ListGroups v{version}");
        if version >= 4 {
            request.states_filter = vec![StrBytes::from_static_str("Stable")];
            assert!(call(&node, &request, version).await.groups.is_empty());
        }
    }
    for version in versions(ApiKey::DescribeGroups) {
        let request = DescribeGroupsRequest::default().with_groups(vec![
            GroupId(StrBytes::from_static_str("commit-v2")),
            GroupId(StrBytes::from_static_str("nobody")),
        ]);
        let response = call(&node, &request, version).await;
        assert_eq!(response.groups[0].group_state.as_str(), "Empty", "DescribeGroups v{version}");
        assert_eq!(response.groups[1].group_state.as_str(), "Dead");
    }
    let delete = |group: &str| {
        OffsetDeleteRequest::default().with_group_id(GroupId(StrBytes::from_string(group.into()))).with_topics(vec![
            kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![Default::default()]),
        ])
    };
    let response = call(&node, &delete("commit-v2"), 0).await;
    assert_eq!((response.error_code, response.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(fetch_offset(&node, "commit-v2", 8).await.0, -1, "the offset is gone");
    assert_eq!(call(&node, &delete("nobody"), 0).await.error_code, ResponseError::GroupIdNotFound.code());
    for version in versions(ApiKey::DeleteGroups) {
        let group = format!("commit-v{}", version + 3);
        let request = DeleteGroupsRequest::default().with_groups_names(vec![
            GroupId(StrBytes::from_string(group.clone())),
            GroupId(StrBytes::from_static_str("nobody")),
        ]);
        let response = call(&node, &request, version).await;
        assert_eq!(response.results[0].error_code, 0, "DeleteGroups v{version}");
        assert_eq!(response.results[1].error_code, ResponseError::GroupIdNotFound.code());
        assert!(node.broker.groups.describe(&group).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_generations_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let node = open(dir);
    crate::topic_admin::create_topic(&node.broker, "t", 1, 1, &Default::default(), false).ok().unwrap();
    let (member, generation) = join_alone(&node, "survivor", 9).await;
    sync_as_leader(&node, "survivor", &member, generation, 5).await;
    let response = call(&node, &commit_request("survivor", &member, generation, 77), 9).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    // No clean shutdown: the broker is dropped as a crash would leave it.
    let Node { broker, _dir: dir, .. } = node;
    drop(broker);
    let reopened = open(dir);
    assert_eq!(reopened.broker.config.data_dir, path);
    assert_eq!(fetch_offset(&reopened, "survivor", 9).await, (77, "meta".to_string()));
    let group = reopened.broker.groups.describe("survivor").expect("replayed");
    assert_eq!((group.state.name(), group.generation_id), ("Stable", generation));
    assert_eq!(group.member(&member).unwrap().assignment, Bytes::from_static(b"assigned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_join_leaves_other_requests_alone_and_ends_when_the_server_stops() {
    let node = Arc::new(open_with_delay(tempfile::tempdir().unwrap(), 600_000));
    let parked = {
        let node = node.clone();
        tokio::spawn(async move {
            let protocol = JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(consumer_subscription());
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("slow")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![protocol]);
            call(&node, &request, 3).await
        })
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.broker.groups.describe("slow").is_none_or(|g| g.members.is_empty()) {
        assert!(tokio::time::Instant::now() < deadline, "the join never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The group waits out its initial delay; other requests are answered meanwhile.
    let listed = call(&node, &ListGroupsRequest::default(), 4).await;
    assert_eq!(listed.groups[0].group_state.as_str(), "PreparingRebalance");
    assert!(!parked.is_finished());
    node._stop_tx.send(true).unwrap();
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), parked).await.expect("stop ends the wait");
    assert_eq!(answered.unwrap().error_code, ResponseError::NotCoordinator.code());
}
