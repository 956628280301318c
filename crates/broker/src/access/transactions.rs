//! Gates of the transaction APIs (Kafka's checks): a producer's requests need Write on its
//! transactional id; AddPartitionsToTxn also Write on each topic, AddOffsetsToTxn and
//! TxnOffsetCommit Read on the group (and TxnOffsetCommit Read on each topic); the brokers'
//! own requests (WriteTxnMarkers, AddPartitionsToTxn v4) ClusterAction; DescribeTransactions
//! and ListTransactions Describe on each id (a listing leaves out the ids it may not see).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use runnel_metadata::acl::{Operation, ResourceType};
use runnel_protocol::ResponseError;

use super::{completion_if, partition_by, Access, Gate};

const ID_DENIED: ResponseError = ResponseError::TransactionalIdAuthorizationFailed;

fn writes_id(access: &Access, id: &TransactionalId) -> bool {
    access.allows(Operation::Write, ResourceType::TransactionalId, id.0.as_str())
}

pub fn add_partitions_to_txn(
    access: &Access,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> Gate<AddPartitionsToTxnRequest, AddPartitionsToTxnResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if version >= 4 {
        if access.allows_cluster(Operation::ClusterAction) {
            return Gate::pass(request);
        }
        let error = ResponseError::ClusterAuthorizationFailed;
        return Gate::Refuse(AddPartitionsToTxnResponse::default().with_error_code(error.code()));
    }
    let id_allowed = writes_id(access, &request.v3_and_below_transactional_id);
    let topic_allowed = |name: &str| access.allows_topic(Operation::Write, name);
    if id_allowed && request.v3_and_below_topics.iter().all(|t| topic_allowed(t.name.0.as_str())) {
        return Gate::pass(request);
    }
    // Kafka fails the whole request: denied topics (or every partition, for the id) with
    // the authorization error, the rest OPERATION_NOT_ATTEMPTED.
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let error = match (id_allowed, topic_allowed(topic.name.0.as_str())) {
                (false, _) => ID_DENIED,
                (true, false) => ResponseError::TopicAuthorizationFailed,
                (true, true) => ResponseError::OperationNotAttempted,
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|&index| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(index)
                        .with_partition_error_code(error.code())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(topic.name.clone()).with_results_by_partition(partitions)
        })
        .collect();
    Gate::Refuse(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}

pub fn add_offsets_to_txn(
    access: &Access,
    request: AddOffsetsToTxnRequest,
) -> Gate<AddOffsetsToTxnRequest, AddOffsetsToTxnResponse> {
    if !writes_id(access, &request.transactional_id) {
        return Gate::Refuse(AddOffsetsToTxnResponse::default().with_error_code(ID_DENIED.code()));
    }
    if !access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        let error = ResponseError::GroupAuthorizationFailed;
        return Gate::Refuse(AddOffsetsToTxnResponse::default().with_error_code(error.code()));
    }
    Gate::pass(request)
}

pub fn end_txn(access: &Access, request: EndTxnRequest) -> Gate<EndTxnRequest, EndTxnResponse> {
    if !writes_id(access, &request.transactional_id) {
        return Gate::Refuse(EndTxnResponse::default().with_error_code(ID_DENIED.code()));
    }
    Gate::pass(request)
}

pub fn write_txn_markers(
    access: &Access,
    request: WriteTxnMarkersRequest,
) -> Gate<WriteTxnMarkersRequest, WriteTxnMarkersResponse> {
    if access.allows_cluster(Operation::ClusterAction) {
        return Gate::pass(request);
    }
    let error = ResponseError::ClusterAuthorizationFailed;
    let markers = request
        .markers
        .iter()
        .map(|marker| {
            let topics = marker
                .topics
                .iter()
                .map(|topic| {
                    let partitions = topic
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(error.code())
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(marker.producer_id).with_topics(topics)
        })
        .collect();
    Gate::Refuse(WriteTxnMarkersResponse::default().with_markers(markers))
}

/// TxnOffsetCommit's answer for `topics`, each partition with the code `code_of` gives it
/// (by topic name and partition; the gate's refusals and the handler's answers alike).
pub(crate) fn txn_offset_topics(
    topics: &[txn_offset_commit_request::TxnOffsetCommitRequestTopic],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code_of(topic.name.0.as_str(), p.partition_index))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect()
}

fn txn_offset_errors(
    topics: &[txn_offset_commit_request::TxnOffsetCommitRequestTopic],
    error: ResponseError,
) -> Vec<TxnOffsetCommitResponseTopic> {
    txn_offset_topics(topics, |_, _| error.code())
}

pub fn txn_offset_commit(
    access: &Access,
    mut request: TxnOffsetCommitRequest,
) -> Gate<TxnOffsetCommitRequest, TxnOffsetCommitResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    if !writes_id(access, &request.transactional_id) {
        return Gate::Refuse(
            TxnOffsetCommitResponse::default().with_topics(txn_offset_errors(&request.topics, ID_DENIED)),
        );
    }
    if !access.allows_group(Operation::Read, request.group_id.0.as_str()) {
        let topics = txn_offset_errors(&request.topics, ResponseError::GroupAuthorizationFailed);
        return Gate::Refuse(TxnOffsetCommitResponse::default().with_topics(topics));
    }
    let (kept, denied) =
        partition_by(std::mem::take(&mut request.topics), |t| access.allows_topic(Operation::Read, t.name.0.as_str()));
    request.topics = kept;
    let complete = completion_if(denied, |response: &mut TxnOffsetCommitResponse, denied: Vec<_>| {
        response.topics.extend(txn_offset_errors(&denied, ResponseError::TopicAuthorizationFailed));
    });
    Gate::pass_completing(request, complete)
}

pub fn describe_transactions(
    access: &Access,
    mut request: DescribeTransactionsRequest,
) -> Gate<DescribeTransactionsRequest, DescribeTransactionsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.transactional_ids), |id| {
        access.allows(Operation::Describe, ResourceType::TransactionalId, id.0.as_str())
    });
    request.transactional_ids = kept;
    let complete =
        completion_if(denied, |response: &mut DescribeTransactionsResponse, denied: Vec<TransactionalId>| {
            response.transaction_states.extend(denied.into_iter().map(|id| {
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ID_DENIED.code())
                    .with_producer_id(ProducerId(-1))
            }));
        });
    Gate::pass_completing(request, complete)
}

/// ListTransactions: the ids the principal may Describe (checked as they are listed).
pub fn visible_transactional_id(access: &Access, id: &str) -> bool {
    access.is_unrestricted() || access.allows(Operation::Describe, ResourceType::TransactionalId, id)
}
