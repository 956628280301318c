//! The API versions Runnel implements. ApiVersions advertises exactly this table, and the
//! dispatcher refuses anything outside it, so the two cannot drift apart.

use kafka_protocol::messages::ApiKey;

/// One implemented API and its inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Implemented APIs, in key order. Every minimum is Kafka 3.9's, except Produce (v3) and
/// Fetch (v4), whose earlier versions carry records in formats before v2. The transaction
/// APIs stop before the versions of KIP-890 part 2 (transaction version 2: an epoch bump
/// per transaction), which Runnel does not implement; AddPartitionsToTxn v4 is the brokers'
/// verification (part 1).
pub const SUPPORTED: &[ApiRange] = &[
    ApiRange { key: ApiKey::Produce, min: 3, max: 11 },
    ApiRange { key: ApiKey::Fetch, min: 4, max: 16 },
    ApiRange { key: ApiKey::ListOffsets, min: 0, max: 9 },
    ApiRange { key: ApiKey::Metadata, min: 0, max: 12 },
    ApiRange { key: ApiKey::OffsetCommit, min: 0, max: 9 },
    ApiRange { key: ApiKey::OffsetFetch, min: 0, max: 9 },
    ApiRange { key: ApiKey::FindCoordinator, min: 0, max: 6 },
    ApiRange { key: ApiKey::JoinGroup, min: 0, max: 9 },
    ApiRange { key: ApiKey::Heartbeat, min: 0, max: 4 },
    ApiRange { key: ApiKey::LeaveGroup, min: 0, max: 5 },
    ApiRange { key: ApiKey::SyncGroup, min: 0, max: 5 },
    ApiRange { key: ApiKey::DescribeGroups, min: 0, max: 5 },
    ApiRange { key: ApiKey::ListGroups, min: 0, max: 5 },
    ApiRange { key: ApiKey::SaslHandshake, min: 0, max: 1 },
    ApiRange { key: ApiKey::ApiVersions, min: 0, max: 4 },
    ApiRange { key: ApiKey::CreateTopics, min: 0, max: 7 },
    ApiRange { key: ApiKey::DeleteTopics, min: 0, max: 6 },
    ApiRange { key: ApiKey::DeleteRecords, min: 0, max: 2 },
    ApiRange { key: ApiKey::OffsetForLeaderEpoch, min: 0, max: 4 },
    ApiRange { key: ApiKey::InitProducerId, min: 0, max: 5 },
    ApiRange { key: ApiKey::AddPartitionsToTxn, min: 0, max: 4 },
    ApiRange { key: ApiKey::AddOffsetsToTxn, min: 0, max: 3 },
    ApiRange { key: ApiKey::EndTxn, min: 0, max: 3 },
    ApiRange { key: ApiKey::WriteTxnMarkers, min: 1, max: 1 },
    ApiRange { key: ApiKey::TxnOffsetCommit, min: 0, max: 3 },
    ApiRange { key: ApiKey::DeleteGroups, min: 0, max: 2 },
    ApiRange { key: ApiKey::DescribeAcls, min: 0, max: 3 },
    ApiRange { key: ApiKey::CreateAcls, min: 0, max: 3 },
    ApiRange { key: ApiKey::DeleteAcls, min: 0, max: 3 },
    ApiRange { key: ApiKey::DescribeConfigs, min: 0, max: 4 },
    ApiRange { key: ApiKey::AlterConfigs, min: 0, max: 2 },
    ApiRange { key: ApiKey::DescribeLogDirs, min: 0, max: 4 },
    ApiRange { key: ApiKey::SaslAuthenticate, min: 0, max: 2 },
    ApiRange { key: ApiKey::CreatePartitions, min: 0, max: 3 },
    ApiRange { key: ApiKey::ElectLeaders, min: 0, max: 2 },
    ApiRange { key: ApiKey::IncrementalAlterConfigs, min: 0, max: 1 },
    ApiRange { key: ApiKey::AlterPartitionReassignments, min: 0, max: 1 },
    ApiRange { key: ApiKey::ListPartitionReassignments, min: 0, max: 0 },
    ApiRange { key: ApiKey::OffsetDelete, min: 0, max: 0 },
    ApiRange { key: ApiKey::DescribeQuorum, min: 0, max: 2 },
    ApiRange { key: ApiKey::DescribeClientQuotas, min: 0, max: 1 },
    ApiRange { key: ApiKey::AlterClientQuotas, min: 0, max: 1 },
    ApiRange { key: ApiKey::DescribeUserScramCredentials, min: 0, max: 0 },
    ApiRange { key: ApiKey::AlterUserScramCredentials, min: 0, max: 0 },
    ApiRange { key: ApiKey::DescribeCluster, min: 0, max: 1 },
    ApiRange { key: ApiKey::DescribeProducers, min: 0, max: 0 },
    ApiRange { key: ApiKey::DescribeTransactions, min: 0, max: 0 },
    ApiRange { key: ApiKey::ListTransactions, min: 0, max: 2 },
    ApiRange { key: ApiKey::DescribeTopicPartitions, min: 0, max: 0 },
    ApiRange { key: ApiKey::AddRaftVoter, min: 0, max: 0 },
    ApiRange { key: ApiKey::RemoveRaftVoter, min: 0, max: 0 },
];

/// Versions the `kafka-protocol` crate has no codec for, which the broker encodes itself.
pub const HAND_CODED: &[(ApiKey, i16)] =
    &[(ApiKey::DescribeConfigs, 0), (ApiKey::OffsetForLeaderEpoch, 0), (ApiKey::OffsetForLeaderEpoch, 1)];

/// The implemented range of `key`, if the API is implemented at all.
pub fn supported_range(key: ApiKey) -> Option<ApiRange> {
    SUPPORTED.iter().copied().find(|range| range.key == key)
}

/// Whether `version` of `key` is implemented.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported_range(key).is_some_and(|range| (range.min..=range.max).contains(&version))
}

#[cfg(test)]
#[path = "api_codec_tests.rs"]
mod codec_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised version must be one the message crate can decode and encode.
    #[test]
    fn advertised_versions_lie_within_the_codec() {
        fn within<M: Message>(range: &ApiRange) {
            let hand_coded_below = HAND_CODED.iter().filter(|(key, _)| *key == range.key).map(|(_, v)| *v + 1).max();
            let min = hand_coded_below.unwrap_or(range.min).max(range.min);
            assert!(M::VERSIONS.min <= min && range.max <= M::VERSIONS.max, "{range:?}");
        }
        for range in SUPPORTED {
            match range.key {
                ApiKey::Produce => within::<ProduceRequest>(range),
                ApiKey::Fetch => within::<FetchRequest>(range),
                ApiKey::ListOffsets => within::<ListOffsetsRequest>(range),
                ApiKey::Metadata => within::<MetadataRequest>(range),
                ApiKey::ApiVersions => within::<ApiVersionsRequest>(range),
                ApiKey::CreateTopics => within::<CreateTopicsRequest>(range),
                ApiKey::DeleteTopics => within::<DeleteTopicsRequest>(range),
                ApiKey::DeleteRecords => within::<DeleteRecordsRequest>(range),
                ApiKey::InitProducerId => within::<InitProducerIdRequest>(range),
                ApiKey::AddPartitionsToTxn => within::<AddPartitionsToTxnRequest>(range),
                ApiKey::AddOffsetsToTxn => within::<AddOffsetsToTxnRequest>(range),
                ApiKey::EndTxn => within::<EndTxnRequest>(range),
                ApiKey::WriteTxnMarkers => within::<WriteTxnMarkersRequest>(range),
                ApiKey::TxnOffsetCommit => within::<TxnOffsetCommitRequest>(range),
                ApiKey::DescribeTransactions => within::<DescribeTransactionsRequest>(range),
                ApiKey::ListTransactions => within::<ListTransactionsRequest>(range),
                ApiKey::OffsetForLeaderEpoch => within::<OffsetForLeaderEpochRequest>(range),
                ApiKey::DescribeConfigs => within::<DescribeConfigsRequest>(range),
                ApiKey::AlterConfigs => within::<AlterConfigsRequest>(range),
                ApiKey::IncrementalAlterConfigs => within::<IncrementalAlterConfigsRequest>(range),
                ApiKey::CreatePartitions => within::<CreatePartitionsRequest>(range),
                ApiKey::DescribeCluster => within::<DescribeClusterRequest>(range),
                ApiKey::DescribeTopicPartitions => within::<DescribeTopicPartitionsRequest>(range),
                ApiKey::DescribeProducers => within::<DescribeProducersRequest>(range),
                ApiKey::DescribeAcls => within::<DescribeAclsRequest>(range),
                ApiKey::CreateAcls => within::<CreateAclsRequest>(range),
                ApiKey::DeleteAcls => within::<DeleteAclsRequest>(range),
                ApiKey::DescribeQuorum => within::<DescribeQuorumRequest>(range),
                ApiKey::OffsetCommit => within::<OffsetCommitRequest>(range),
                ApiKey::OffsetFetch => within::<OffsetFetchRequest>(range),
                ApiKey::FindCoordinator => within::<FindCoordinatorRequest>(range),
                ApiKey::JoinGroup => within::<JoinGroupRequest>(range),
                ApiKey::Heartbeat => within::<HeartbeatRequest>(range),
                ApiKey::LeaveGroup => within::<LeaveGroupRequest>(range),
                ApiKey::SyncGroup => within::<SyncGroupRequest>(range),
                ApiKey::DescribeGroups => within::<DescribeGroupsRequest>(range),
                ApiKey::ListGroups => within::<ListGroupsRequest>(range),
                ApiKey::DeleteGroups => within::<DeleteGroupsRequest>(range),
                ApiKey::OffsetDelete => within::<OffsetDeleteRequest>(range),
                ApiKey::DescribeLogDirs => within::<DescribeLogDirsRequest>(range),
                ApiKey::ElectLeaders => within::<ElectLeadersRequest>(range),
                ApiKey::AlterPartitionReassignments => within::<AlterPartitionReassignmentsRequest>(range),
                ApiKey::ListPartitionReassignments => within::<ListPartitionReassignmentsRequest>(range),
                ApiKey::SaslHandshake => within::<SaslHandshakeRequest>(range),
                ApiKey::SaslAuthenticate => within::<SaslAuthenticateRequest>(range),
                ApiKey::DescribeUserScramCredentials => within::<DescribeUserScramCredentialsRequest>(range),
                ApiKey::DescribeClientQuotas => within::<DescribeClientQuotasRequest>(range),
                ApiKey::AlterClientQuotas => within::<AlterClientQuotasRequest>(range),
                ApiKey::AlterUserScramCredentials => within::<AlterUserScramCredentialsRequest>(range),
                ApiKey::AddRaftVoter => within::<AddRaftVoterRequest>(range),
                ApiKey::RemoveRaftVoter => within::<RemoveRaftVoterRequest>(range),
                other => panic!("no codec check for {other:?}"),
            }
        }
        assert!(is_supported(ApiKey::Fetch, 16));
        assert!(!is_supported(ApiKey::Produce, 2));
    }
}
