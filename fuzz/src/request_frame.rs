//! `request_frame`: one Kafka request frame as the connection hands it to the dispatcher
//! (the bytes after the 4-byte size prefix), decoded exactly as
//! `crates/broker/src/handlers/mod.rs` `handle` decodes it: `peek_prefix`, the ApiVersions
//! escape for unknown versions, `runnel_protocol::frame::decode_header`, the
//! `runnel_protocol::api` version check, then the typed body of that API and version with
//! `kafka-protocol` (`decode_body`). Produce bodies go on through the produce handler's batch
//! checks. Must never panic, and never allocate more than the frame justifies.
//!
//! OffsetForLeaderEpoch v0-v1 and DescribeConfigs v0 go through the same hand-written
//! decoders as the broker's (`runnel_protocol::legacy`).

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use runnel_protocol::api::is_supported;
use runnel_protocol::frame::{check_size, decode_header, peek_prefix};

use crate::produce_batch;

/// `socket.request.max.bytes` default.
const SOCKET_REQUEST_MAX_BYTES: usize = 100 * 1024 * 1024;

fn decode<T: Decodable>(body: Bytes, version: i16) -> Option<T> {
    let mut body = body;
    T::decode(&mut body, version).ok()
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    // The connection's size check, with this frame's own length as the prefix.
    let size = i32::try_from(data.len()).unwrap_or(i32::MAX);
    if check_size(size.to_be_bytes(), SOCKET_REQUEST_MAX_BYTES).is_err() {
        return;
    }
    let frame = Bytes::copy_from_slice(data);
    let Ok(prefix) = peek_prefix(&frame) else { return };
    if prefix.api_key == ApiKey::ApiVersions as i16 && !is_supported(ApiKey::ApiVersions, prefix.api_version) {
        return; // answered with a canned v0 response, nothing decoded
    }
    let Ok((api, header, body)) = decode_header(frame) else { return };
    let version = header.request_api_version;
    if !is_supported(api, version) {
        return; // the connection is closed
    }
    decode_body(api, version, body);
}

/// Decodes `body` as the request `api` `version` names, as the dispatcher does.
pub fn decode_body(api: ApiKey, version: i16, body: Bytes) {
    match api {
        ApiKey::ApiVersions => drop(decode::<ApiVersionsRequest>(body, version)),
        ApiKey::Metadata => drop(decode::<MetadataRequest>(body, version)),
        ApiKey::CreateTopics => drop(decode::<CreateTopicsRequest>(body, version)),
        ApiKey::DeleteTopics => drop(decode::<DeleteTopicsRequest>(body, version)),
        ApiKey::DescribeConfigs if version == 0 => drop(runnel_protocol::legacy::describe_configs_v0(body)),
        ApiKey::DescribeConfigs => drop(decode::<DescribeConfigsRequest>(body, version)),
        ApiKey::DescribeCluster => drop(decode::<DescribeClusterRequest>(body, version)),
        ApiKey::ListOffsets => drop(decode::<ListOffsetsRequest>(body, version)),
        ApiKey::Produce => {
            if let Some(request) = decode::<ProduceRequest>(body, version) {
                produce(&request);
            }
        }
        ApiKey::Fetch => drop(decode::<FetchRequest>(body, version)),
        ApiKey::CreatePartitions => drop(decode::<CreatePartitionsRequest>(body, version)),
        ApiKey::ElectLeaders => drop(decode::<ElectLeadersRequest>(body, version)),
        ApiKey::AlterPartitionReassignments => drop(decode::<AlterPartitionReassignmentsRequest>(body, version)),
        ApiKey::ListPartitionReassignments => drop(decode::<ListPartitionReassignmentsRequest>(body, version)),
        ApiKey::DescribeLogDirs => drop(decode::<DescribeLogDirsRequest>(body, version)),
        ApiKey::DescribeQuorum => drop(decode::<DescribeQuorumRequest>(body, version)),
        ApiKey::AddRaftVoter => drop(decode::<AddRaftVoterRequest>(body, version)),
        ApiKey::RemoveRaftVoter => drop(decode::<RemoveRaftVoterRequest>(body, version)),
        ApiKey::OffsetForLeaderEpoch if version < 2 => {
            drop(runnel_protocol::legacy::offset_for_leader_epoch_v0_v1(body))
        }
        ApiKey::OffsetForLeaderEpoch => drop(decode::<OffsetForLeaderEpochRequest>(body, version)),
        ApiKey::InitProducerId => drop(decode::<InitProducerIdRequest>(body, version)),
        ApiKey::FindCoordinator => drop(decode::<FindCoordinatorRequest>(body, version)),
        ApiKey::JoinGroup => drop(decode::<JoinGroupRequest>(body, version)),
        ApiKey::SyncGroup => drop(decode::<SyncGroupRequest>(body, version)),
        ApiKey::Heartbeat => drop(decode::<HeartbeatRequest>(body, version)),
        ApiKey::LeaveGroup => drop(decode::<LeaveGroupRequest>(body, version)),
        ApiKey::OffsetCommit => drop(decode::<OffsetCommitRequest>(body, version)),
        ApiKey::OffsetFetch => drop(decode::<OffsetFetchRequest>(body, version)),
        ApiKey::OffsetDelete => drop(decode::<OffsetDeleteRequest>(body, version)),
        ApiKey::ListGroups => drop(decode::<ListGroupsRequest>(body, version)),
        ApiKey::DescribeGroups => drop(decode::<DescribeGroupsRequest>(body, version)),
        ApiKey::DeleteGroups => drop(decode::<DeleteGroupsRequest>(body, version)),
        ApiKey::SaslHandshake => drop(decode::<SaslHandshakeRequest>(body, version)),
        ApiKey::SaslAuthenticate => drop(decode::<SaslAuthenticateRequest>(body, version)),
        ApiKey::DescribeUserScramCredentials => drop(decode::<DescribeUserScramCredentialsRequest>(body, version)),
        ApiKey::DescribeClientQuotas => drop(decode::<DescribeClientQuotasRequest>(body, version)),
        ApiKey::AlterClientQuotas => drop(decode::<AlterClientQuotasRequest>(body, version)),
        ApiKey::AlterUserScramCredentials => drop(decode::<AlterUserScramCredentialsRequest>(body, version)),
        // The dispatcher refuses the rest; is_supported let none of them through.
        other => panic!("{other:?} v{version} passed is_supported but has no decoder here"),
    }
}

/// The produce handler's per-partition batch checks, and what follows an accepted batch.
fn produce(request: &ProduceRequest) {
    for topic in &request.topic_data {
        for data in &topic.partition_data {
            let Some(records) = data.records.as_ref() else { continue };
            if let Ok(batch) = produce_batch::single_batch(records, produce_batch::MAX_MESSAGE_BYTES) {
                produce_batch::after_append(batch.bytes(), 0, None);
            }
        }
    }
}
