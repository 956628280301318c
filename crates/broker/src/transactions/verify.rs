//! KIP-890 part 1 on the partition leader: before a transactional batch may open a
//! transaction on a partition, the leader asks the producer's transaction coordinator
//! whether the partition is in the producer's ongoing transaction (directly when this node
//! coordinates, else AddPartitionsToTxn v4 with `verify_only`). A late or stray batch is
//! refused rather than left to open a transaction nobody will end.

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::coordinator::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use super::decide::ProducerIdAndEpoch;
use crate::broker::Broker;

/// Whether `topic`-`index` is in `transactional_id`'s ongoing transaction for `producer`;
/// the coordinator's error otherwise.
pub async fn in_transaction(
    broker: &Broker,
    transactional_id: &str,
    topic: &str,
    index: i32,
    producer: ProducerIdAndEpoch,
) -> Result<(), ResponseError> {
    let image = broker.metadata.image();
    let state_partition =
        TransactionCoordinator::partition_of(&image, transactional_id).ok_or(ResponseError::CoordinatorNotAvailable)?;
    let leader = image
        .topic(TRANSACTION_STATE_TOPIC)
        .and_then(|t| t.partitions.get(usize::try_from(state_partition).ok()?))
        .map_or(-1, |p| p.leader);
    let partitions = [(topic.to_string(), index)];
    let answer = if leader == broker.config.node_id {
        broker.transactions.verify(transactional_id, producer, &partitions)?
    } else if leader >= 0 {
        return ask(broker, leader, transactional_id, topic, index, producer).await;
    } else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    match answer.first().and_then(|(_, error)| *error) {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

async fn ask(
    broker: &Broker,
    leader: i32,
    transactional_id: &str,
    topic: &str,
    index: i32,
    producer: ProducerIdAndEpoch,
) -> Result<(), ResponseError> {
    let unavailable = ResponseError::CoordinatorNotAvailable;
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
        .with_producer_id(ProducerId(producer.producer_id))
        .with_producer_epoch(producer.producer_epoch)
        .with_verify_only(true)
        .with_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![index])]);
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
    let response = broker.broker_connections.send(broker, leader, &request, 4).await.map_err(|error| {
        tracing::debug!(leader, %error, "verifying a transaction with its coordinator failed");
        unavailable
    })?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(error);
    }
    let code = response
        .results_by_transaction
        .iter()
        .flat_map(|t| t.topic_results.iter())
        .flat_map(|t| t.results_by_partition.iter())
        .find(|p| p.partition_index == index)
        .map_or(ResponseError::UnknownServerError.code(), |p| p.partition_error_code);
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(error),
    }
}
