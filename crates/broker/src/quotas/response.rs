//! Setting a response's `throttle_time_ms`, for every response type the broker encodes
//! from a typed message (the one field Kafka's responses share under one name).

use kafka_protocol::messages::*;

/// A response that can tell the client to wait.
pub trait Throttled {
    fn set_throttle_time_ms(&mut self, ms: i32);
}

macro_rules! throttled {
    ($($response:ty),* $(,)?) => {
        $(impl Throttled for $response {
            fn set_throttle_time_ms(&mut self, ms: i32) {
                self.throttle_time_ms = ms;
            }
        })*
    };
}

macro_rules! without_throttle_field {
    ($($response:ty),* $(,)?) => {
        $(impl Throttled for $response {
            fn set_throttle_time_ms(&mut self, _ms: i32) {}
        })*
    };
}

throttled!(
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse,
    AddRaftVoterResponse,
    AlterClientQuotasResponse,
    AlterConfigsResponse,
    AlterPartitionReassignmentsResponse,
    AlterUserScramCredentialsResponse,
    ApiVersionsResponse,
    CreateAclsResponse,
    CreatePartitionsResponse,
    CreateTopicsResponse,
    DeleteAclsResponse,
    DeleteGroupsResponse,
    DeleteRecordsResponse,
    DeleteTopicsResponse,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    DescribeClusterResponse,
    DescribeConfigsResponse,
    DescribeGroupsResponse,
    DescribeLogDirsResponse,
    DescribeProducersResponse,
    DescribeTopicPartitionsResponse,
    DescribeTransactionsResponse,
    DescribeUserScramCredentialsResponse,
    ElectLeadersResponse,
    EndTxnResponse,
    FindCoordinatorResponse,
    HeartbeatResponse,
    IncrementalAlterConfigsResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    ListGroupsResponse,
    ListOffsetsResponse,
    ListPartitionReassignmentsResponse,
    ListTransactionsResponse,
    MetadataResponse,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchResponse,
    OffsetForLeaderEpochResponse,
    ProduceResponse,
    RemoveRaftVoterResponse,
    SyncGroupResponse,
    TxnOffsetCommitResponse,
);

// Kafka's schemas give these no throttle time: the connection is still held.
without_throttle_field!(
    DescribeQuorumResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
    WriteTxnMarkersResponse
);
