//! DescribeQuorum v0-v2: the metadata quorum's leader, epoch (Raft term), committed index,
//! and each member's applied index. Kafka answers only on the active controller; Runnel
//! answers on any node, asking each member for its applied index over the quorum's
//! transport, so `runnel cluster info` can bootstrap from any node. A single node reports
//! itself as the only voter, its offset being the count of metadata records applied.
//!
//! Voters are the Raft voters, observers the learners (brokers, and controllers not yet
//! added with AddRaftVoter). v2 adds each voter's endpoint on the controller listener
//! (`nodes`); Runnel keeps no directory ids, so every `replica_directory_id` is zero.

use std::time::Duration;

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Context;

use runnel_metadata::controller::METADATA_TOPIC;
/// How long to wait for one member's answer; a silent member reports -1.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(1);

fn replica(id: i64, offset: i64) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(id as i32))
        .with_log_end_offset(offset)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

/// The voters' endpoints on the controller listener, for v2's `nodes`.
fn voter_nodes(ctx: &Context<'_>) -> Vec<Node> {
    let Some(quorum) = ctx.broker.metadata.quorum() else { return vec![] };
    let name = StrBytes::from_string(ctx.broker.config.controller_listener_name.as_str().to_string());
    let mut nodes = Vec::new();
    for (id, (node, voter)) in quorum.metrics().members {
        let Some((host, port)) = node.controller_addr.rsplit_once(':') else { continue };
        let (Ok(port), Ok(id)) = (port.parse::<u16>(), i32::try_from(id)) else { continue };
        if voter {
            let listener = Listener::default()
                .with_name(name.clone())
                .with_host(StrBytes::from_string(host.trim_matches(['[', ']']).to_string()))
                .with_port(port);
            nodes.push(Node::default().with_node_id(BrokerId(id)).with_listeners(vec![listener]));
        }
    }
    nodes
}

async fn partition(ctx: &Context<'_>) -> PartitionData {
    let data = PartitionData::default().with_partition_index(0).with_error_message(None);
    let Some(quorum) = ctx.broker.metadata.quorum() else {
        let applied = ctx.broker.metadata.image().records_applied as i64;
        return data
            .with_leader_id(BrokerId(ctx.broker.config.node_id))
            .with_high_watermark(applied)
            .with_current_voters(vec![replica(i64::from(ctx.broker.config.node_id), applied)]);
    };
    let metrics = quorum.metrics();
    let (mut voters, mut observers) = (Vec::new(), Vec::new());
    for (id, (_, is_voter)) in &metrics.members {
        let status = tokio::time::timeout(MEMBER_STATUS_TIMEOUT, quorum.node_status(*id)).await;
        let applied = match status {
            Ok(Ok(status)) => status.last_applied_index.map_or(-1, |i| i as i64),
            _ => -1,
        };
        let state = replica(*id as i64, applied);
        if *is_voter {
            voters.push(state);
        } else {
            observers.push(state);
        }
    }
    data.with_leader_id(BrokerId(metrics.current_leader.map_or(-1, |id| id as i32)))
        .with_leader_epoch(metrics.current_term as i32)
        .with_high_watermark(metrics.last_applied_index.map_or(-1, |i| i as i64))
        .with_current_voters(voters)
        .with_observers(observers)
}

pub async fn handle(ctx: &Context<'_>, _request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let topic = TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition(ctx).await]);
    let response = DescribeQuorumResponse::default().with_error_message(None).with_topics(vec![topic]);
    if ctx.version >= 2 {
        response.with_nodes(voter_nodes(ctx))
    } else {
        response
    }
}
