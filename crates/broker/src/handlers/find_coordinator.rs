//! FindCoordinator: the node that coordinates a group is the leader of its `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition; each
//! topic is created on the first request, as Kafka does. Batched keys from v4.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::groups::{partition_for, OFFSETS_TOPIC};
use crate::transactions::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of one key: (node id, host, port) or why there is none.
fn locate(ctx: &Context, key: &str, key_type: i8) -> Result<(i32, String, i32), (ResponseError, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => Err((ResponseError::InvalidRequest, "empty group id")),
        KEY_TYPE_GROUP => {
            ctx.broker
                .groups
                .ensure_ready(ctx.broker.as_ref())
                .map_err(|e| (e, "the offsets topic is not available"))?;
            // The coordinator is the leader of the group's offsets partition.
            let image = ctx.broker.metadata.image();
            let unavailable = (ResponseError::CoordinatorNotAvailable, "the group's offsets partition has no leader");
            let topic = image.topic(OFFSETS_TOPIC).ok_or(unavailable)?;
            let count = i32::try_from(topic.partitions.len()).map_err(|_| unavailable)?;
            let leader = topic.partitions.get(partition_for(key, count) as usize).map_or(-1, |p| p.leader);
            let broker = image.brokers.get(&leader).filter(|b| !b.fenced).ok_or(unavailable)?;
            let (host, port) = broker.endpoint(ctx.session.listener.as_str()).ok_or(unavailable)?;
            Ok((leader, host.to_string(), port))
        }
        KEY_TYPE_TRANSACTION if !super::transactions::valid_id(key) => {
            Err((ResponseError::InvalidRequest, "invalid transactional id"))
        }
        KEY_TYPE_TRANSACTION => {
            let broker = ctx.broker.as_ref();
            broker
                .transactions
                .ensure_ready(broker)
                .map_err(|e| (e, "the transaction state topic is not available"))?;
            // The coordinator is the leader of the id's transaction state partition.
            let image = broker.metadata.image();
            let unavailable = (ResponseError::CoordinatorNotAvailable, "the transaction state partition has no leader");
            let index = TransactionCoordinator::partition_of(&image, key).ok_or(unavailable)?;
            let topic = image.topic(TRANSACTION_STATE_TOPIC).ok_or(unavailable)?;
            let leader = topic.partitions.get(index as usize).map_or(-1, |p| p.leader);
            let node = image.brokers.get(&leader).filter(|b| !b.fenced).ok_or(unavailable)?;
            let (host, port) = node.endpoint(ctx.session.listener.as_str()).ok_or(unavailable)?;
            Ok((leader, host.to_string(), port))
        }
        _ => Err((ResponseError::InvalidRequest, "unknown key type")),
    }
}

pub fn handle(ctx: &Context, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key.clone());
                match locate(ctx, key.as_str(), request.key_type) {
                    Ok((node, host, port)) => coordinator
                        .with_node_id(BrokerId(node))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port)
                        .with_error_message(None),
                    Err((error, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(ctx, request.key.as_str(), request.key_type) {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port)
            .with_error_message(None),
        Err((error, message)) => {
            let response = FindCoordinatorResponse::default()
                .with_error_code(error.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if ctx.version >= 1 {
                response.with_error_message(Some(StrBytes::from_static_str(message)))
            } else {
                response
            }
        }
    }
}
