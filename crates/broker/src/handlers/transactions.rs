//! The transaction coordinator's APIs (KIP-98): AddPartitionsToTxn (a client's, v0-3, and
//! the brokers' batched verification, v4, KIP-890), AddOffsetsToTxn, EndTxn,
//! DescribeTransactions and ListTransactions. InitProducerId with a transactional id is in
//! `init_producer_id.rs`, WriteTxnMarkers in `write_txn_markers.rs`.

use std::collections::BTreeSet;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::groups::{partition_for, OFFSETS_TOPIC};
use crate::transactions::decide::ProducerIdAndEpoch;
use crate::transactions::state::{TxnPartition, TxnState};
use crate::transactions::{markers, TRANSACTION_STATE_TOPIC};

/// Transactional ids are stored with int16 lengths, as group ids.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = super::GROUP_STRING_BYTES_MAX;

/// An id a coordinator can hold: not empty, short enough to store.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= TRANSACTIONAL_ID_BYTES_MAX
}

fn producer(producer_id: ProducerId, producer_epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch { producer_id: producer_id.0, producer_epoch }
}

fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    error_of: impl Fn(&str, i32) -> Option<ResponseError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|topic| {
            let results = topic
                .partitions
                .iter()
                .map(|&index| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(index)
                        .with_partition_error_code(error_of(topic.name.0.as_str(), index).map_or(0, |e| e.code()))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(topic.name.clone()).with_results_by_partition(results)
        })
        .collect()
}

/// The partitions a client may not add: missing ones, and the internal topics (Kafka's
/// coordinator adds `__consumer_offsets` itself, through AddOffsetsToTxn).
fn refused_partition(ctx: &Context, topic: &str, index: i32) -> Option<ResponseError> {
    if topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC {
        return Some(ResponseError::InvalidTopicException);
    }
    (!super::group_offsets::exists(ctx, topic, index)).then_some(ResponseError::UnknownTopicOrPartition)
}

pub async fn add_partitions(ctx: &Context<'_>, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    if ctx.version >= 4 {
        return verify(ctx, request);
    }
    let id = request.v3_and_below_transactional_id.0.to_string();
    let topics = &request.v3_and_below_topics;
    let respond = |error_of: &dyn Fn(&str, i32) -> Option<ResponseError>| {
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results(topics, error_of))
    };
    if !valid_id(&id) {
        return respond(&|_, _| Some(ResponseError::InvalidRequest));
    }
    // Kafka: one bad partition fails the request, the others are not attempted.
    if topics.iter().any(|t| t.partitions.iter().any(|&i| refused_partition(ctx, t.name.0.as_str(), i).is_some())) {
        return respond(&|topic, index| {
            Some(refused_partition(ctx, topic, index).unwrap_or(ResponseError::OperationNotAttempted))
        });
    }
    let partitions: BTreeSet<TxnPartition> =
        topics.iter().flat_map(|t| t.partitions.iter().map(|&i| (t.name.0.to_string(), i))).collect();
    let producer = producer(request.v3_and_below_producer_id, request.v3_and_below_producer_epoch);
    let broker = ctx.broker.as_ref();
    match broker.transactions.add_partitions(broker, &id, producer, &partitions).await {
        Ok(()) => respond(&|_, _| None),
        Err(error) => respond(&|_, _| Some(error)),
    }
}

/// v4+: brokers ask whether partitions are in transactions before appending transactional
/// batches (KIP-890 part 1); with `verify_only` nothing is added.
fn verify(ctx: &Context, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let results = request
        .transactions
        .iter()
        .map(|txn| {
            let id = txn.transactional_id.0.as_str();
            let partitions: Vec<TxnPartition> =
                txn.topics.iter().flat_map(|t| t.partitions.iter().map(|&i| (t.name.0.to_string(), i))).collect();
            let answer = if !txn.verify_only {
                // Adding for another broker is KIP-890 part 2 (transaction version 2).
                Err(ResponseError::UnsupportedVersion)
            } else if !valid_id(id) {
                Err(ResponseError::InvalidRequest)
            } else {
                ctx.broker.transactions.verify(id, producer(txn.producer_id, txn.producer_epoch), &partitions)
            };
            let error_of = |topic: &str, index: i32| match &answer {
                Err(error) => Some(*error),
                Ok(found) => found.iter().find(|((t, i), _)| t == topic && *i == index).and_then(|(_, e)| *e),
            };
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results(&txn.topics, error_of))
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub async fn add_offsets(ctx: &Context<'_>, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let response = AddOffsetsToTxnResponse::default();
    let id = request.transactional_id.0.as_str();
    let group_id = request.group_id.0.as_str();
    if !valid_id(id) || group_id.is_empty() {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    let broker = ctx.broker.as_ref();
    // The group's offsets partition joins the transaction: its commit marker makes the
    // transaction's offsets visible.
    if let Err(error) = broker.groups.ensure_ready(broker) {
        return response.with_error_code(error.code());
    }
    let image = broker.metadata.image();
    let Some(count) = image.topic(OFFSETS_TOPIC).and_then(|t| i32::try_from(t.partitions.len()).ok()) else {
        return response.with_error_code(ResponseError::CoordinatorNotAvailable.code());
    };
    let partitions = BTreeSet::from([(OFFSETS_TOPIC.to_string(), partition_for(group_id, count))]);
    let producer = producer(request.producer_id, request.producer_epoch);
    match broker.transactions.add_partitions(broker, id, producer, &partitions).await {
        Ok(()) => response,
        Err(error) => response.with_error_code(error.code()),
    }
}

pub async fn end(ctx: &Context<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let response = EndTxnResponse::default();
    let id = request.transactional_id.0.as_str();
    if !valid_id(id) {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    let broker = ctx.broker.as_ref();
    let producer = producer(request.producer_id, request.producer_epoch);
    let (answer, job) = broker.transactions.end_transaction(broker, id, producer, request.committed).await;
    if let Some(job) = job {
        markers::spawn(ctx.broker, job);
    }
    match answer {
        Ok(()) => response,
        Err(error) => response.with_error_code(error.code()),
    }
}

fn describe_one(
    ctx: &Context,
    id: &TransactionalId,
) -> kafka_protocol::messages::describe_transactions_response::TransactionState {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState as Described};
    let described = Described::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1));
    match ctx.broker.transactions.describe(id.0.as_str()) {
        Err(error) => described.with_error_code(error.code()),
        Ok(None) => described.with_error_code(ResponseError::TransactionalIdNotFound.code()),
        Ok(Some(m)) if m.state == TxnState::Dead => {
            described.with_error_code(ResponseError::TransactionalIdNotFound.code())
        }
        Ok(Some(m)) => {
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, index) in &m.partitions {
                match topics.last_mut() {
                    Some(last) if last.topic.0.as_str() == topic => last.partitions.push(*index),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partitions(vec![*index]),
                    ),
                }
            }
            described
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics)
        }
    }
}

pub fn describe(ctx: &Context, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = request.transactional_ids.iter().map(|id| describe_one(ctx, id)).collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: the ids this node coordinates, filtered by state, producer id, how
/// long the transaction has run (v1) and a regular expression on the id (v2). `visible`
/// is the gate's Describe check.
pub fn list(
    ctx: &Context,
    request: ListTransactionsRequest,
    visible: &dyn Fn(&str) -> bool,
) -> ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
    let response = ListTransactionsResponse::default();
    let mut unknown = Vec::new();
    let mut states = BTreeSet::new();
    for name in &request.state_filters {
        match TxnState::ALL.iter().find(|s| s.name() == name.as_str()) {
            Some(state) => {
                states.insert(*state);
            }
            None => unknown.push(name.clone()),
        }
    }
    let pattern = match request.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(pattern) => match regex::RegexBuilder::new(pattern).size_limit(1 << 20).build() {
            Ok(regex) => Some(regex),
            Err(_) => return response.with_error_code(ResponseError::InvalidRegularExpression.code()),
        },
    };
    let now = crate::clock::now_ms();
    let listed = ctx
        .broker
        .transactions
        .list()
        .into_iter()
        .filter(|(id, m)| {
            (states.is_empty() || states.contains(&m.state))
                && (request.producer_id_filters.is_empty()
                    || request.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
                && (request.duration_filter < 0
                    || (m.state == TxnState::Ongoing && now - m.start_ms >= request.duration_filter))
                && pattern.as_ref().is_none_or(|regex| regex.is_match(id))
                && visible(id)
        })
        .map(|(id, m)| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    response.with_unknown_state_filters(unknown).with_transaction_states(listed)
}

/// Whether the group's offsets partition is in the producer's ongoing transaction at the
/// request's epoch (KIP-890's verification, for offsets): a zombie's TxnOffsetCommit that
/// arrives after its transaction was fenced and aborted (when the abort wrote no marker to
/// that partition, because AddOffsetsToTxn never reached the coordinator) would otherwise
/// be held under the producer id and committed by its successor's next commit marker,
/// committing input offsets whose output was aborted. Found by the exactly-once chaos test.
async fn offsets_in_transaction(
    ctx: &Context<'_>,
    request: &kafka_protocol::messages::TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    let image = ctx.broker.metadata.image();
    let count = image.topic(OFFSETS_TOPIC).and_then(|t| i32::try_from(t.partitions.len()).ok());
    let count = count.filter(|c| *c > 0).ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = partition_for(request.group_id.0.as_str(), count);
    let producer = producer(request.producer_id, request.producer_epoch);
    let id = request.transactional_id.0.as_str();
    match crate::transactions::verify::in_transaction(ctx.broker, id, OFFSETS_TOPIC, partition, producer).await {
        Ok(()) => Ok(()),
        Err(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => Err(ResponseError::ProducerFenced),
        Err(ResponseError::InvalidTxnState | ResponseError::InvalidProducerIdMapping) => {
            Err(ResponseError::InvalidTxnState)
        }
        // The coordinator moved or is loading: the client finds it again and retries.
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// TxnOffsetCommit: the group's offsets, committed with the transaction (see
/// `groups::txn_offsets`), once the transaction coordinator confirms the group's offsets
/// partition is in the producer's ongoing transaction. Partitions that do not exist are
/// answered here.
pub async fn txn_offset_commit(
    ctx: &Context<'_>,
    request: kafka_protocol::messages::TxnOffsetCommitRequest,
) -> kafka_protocol::messages::TxnOffsetCommitResponse {
    use kafka_protocol::messages::TxnOffsetCommitResponse;
    let exists = |topic: &str, index: i32| super::group_offsets::exists(ctx, topic, index);
    let topics: Vec<(String, Vec<crate::groups::offsets::CommitPartition>)> = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .filter(|p| exists(&name, p.partition_index))
                .map(|p| crate::groups::offsets::CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: -1,
                })
                .collect();
            (name, partitions)
        })
        .collect();
    let results = if !valid_id(request.transactional_id.0.as_str()) {
        let all = topics.iter();
        all.map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, Some(ResponseError::InvalidRequest))).collect()))
            .collect()
    } else if topics.iter().all(|(_, ps)| ps.is_empty()) {
        Vec::new()
    } else if let Err(error) = offsets_in_transaction(ctx, &request).await {
        let all = topics.iter();
        all.map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, Some(error))).collect())).collect()
    } else {
        let commit = crate::groups::txn_offsets::TxnCommitRequest {
            group_id: request.group_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
            generation_id: if ctx.version >= 3 { request.generation_id } else { -1 },
            member_id: if ctx.version >= 3 { request.member_id.to_string() } else { String::new() },
            instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            topics,
        };
        ctx.broker.groups.txn_commit(ctx.broker.as_ref(), &commit).await
    };
    // Answered in request order through a map: a request may name very many partitions.
    let answered = super::group_offsets::by_partition(&results);
    let code_of = |topic: &str, index: i32| match answered.get(&(topic, index)) {
        Some(error) => error.map_or(0, |e| e.code()),
        None if !exists(topic, index) => ResponseError::UnknownTopicOrPartition.code(),
        None => ResponseError::UnknownServerError.code(),
    };
    TxnOffsetCommitResponse::default()
        .with_topics(crate::access::transactions::txn_offset_topics(&request.topics, code_of))
}
