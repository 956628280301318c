//! The error codes a response carries, for `runnel_request_errors_total` (Kafka's
//! `AbstractResponse.errorCounts`, without NONE): the top-level code and every per-resource
//! code (topic, partition, group, member, setting...), as each API's schema places them.
//! Fetch, encoded by hand, counts its partitions' codes itself.

use kafka_protocol::messages::*;

/// Calls `count` with every error code of the response (0 included; the caller skips it).
pub trait ErrorCodes {
    fn error_codes(&self, count: &mut dyn FnMut(i16));
}

/// Responses with only a top-level `error_code`.
macro_rules! top_level {
    ($($response:ty),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, count: &mut dyn FnMut(i16)) {
                count(self.error_code);
            }
        })*
    };
}

/// Responses whose codes are on the elements of one list: `type: list`.
macro_rules! per_item {
    ($($response:ty: $list:ident),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, count: &mut dyn FnMut(i16)) {
                self.$list.iter().for_each(|item| count(item.error_code));
            }
        })*
    };
}

/// Responses whose codes are on partitions within topics: `type: topics.partitions`.
macro_rules! per_partition {
    ($($response:ty: $topics:ident . $partitions:ident),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, count: &mut dyn FnMut(i16)) {
                self.$topics.iter().flat_map(|t| t.$partitions.iter()).for_each(|p| count(p.error_code));
            }
        })*
    };
}

top_level!(
    AddOffsetsToTxnResponse,
    AddRaftVoterResponse,
    EndTxnResponse,
    ListTransactionsResponse,
    ApiVersionsResponse,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    DescribeClusterResponse,
    HeartbeatResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    ListGroupsResponse,
    ListPartitionReassignmentsResponse,
    RemoveRaftVoterResponse,
    SyncGroupResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
);

per_item!(
    AlterClientQuotasResponse: entries,
    AlterConfigsResponse: responses,
    AlterUserScramCredentialsResponse: results,
    CreateAclsResponse: results,
    CreatePartitionsResponse: results,
    CreateTopicsResponse: topics,
    DeleteAclsResponse: filter_results,
    DeleteGroupsResponse: results,
    DeleteTopicsResponse: responses,
    DescribeConfigsResponse: results,
    DescribeGroupsResponse: groups,
    DescribeTransactionsResponse: transaction_states,
    IncrementalAlterConfigsResponse: responses,
);

per_partition!(
    DeleteRecordsResponse: topics.partitions,
    DescribeProducersResponse: topics.partitions,
    ListOffsetsResponse: topics.partitions,
    OffsetCommitResponse: topics.partitions,
    OffsetForLeaderEpochResponse: topics.partitions,
    ProduceResponse: responses.partition_responses,
    TxnOffsetCommitResponse: topics.partitions,
);

impl ErrorCodes for AddPartitionsToTxnResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        let v4 = self.results_by_transaction.iter().flat_map(|t| t.topic_results.iter());
        let topics = v4.chain(self.results_by_topic_v3_and_below.iter());
        topics.flat_map(|t| t.results_by_partition.iter()).for_each(|p| count(p.partition_error_code));
    }
}

impl ErrorCodes for WriteTxnMarkersResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        let topics = self.markers.iter().flat_map(|m| m.topics.iter());
        topics.flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for AlterPartitionReassignmentsResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DescribeLogDirsResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.results.iter().for_each(|dir| count(dir.error_code));
    }
}

impl ErrorCodes for DescribeTopicPartitionsResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            count(topic.error_code);
            topic.partitions.iter().for_each(|p| count(p.error_code));
        }
    }
}

impl ErrorCodes for DescribeUserScramCredentialsResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.results.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for DescribeQuorumResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for ElectLeadersResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.replica_election_results.iter().flat_map(|t| t.partition_result.iter()).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.coordinators.iter().for_each(|c| count(c.error_code));
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.members.iter().for_each(|m| count(m.error_code));
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            count(topic.error_code);
            topic.partitions.iter().for_each(|p| count(p.error_code));
        }
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn error_codes(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
        for group in &self.groups {
            count(group.error_code);
            group.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| count(p.error_code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

    #[test]
    fn every_partition_code_of_a_produce_response_is_counted() {
        let response = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(6),
                PartitionProduceResponse::default(),
                PartitionProduceResponse::default().with_error_code(19),
            ])]);
        let mut codes = Vec::new();
        response.error_codes(&mut |code| codes.push(code));
        assert_eq!(codes, [6, 0, 19]);
    }
}
