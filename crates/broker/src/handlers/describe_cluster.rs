//! DescribeCluster: the brokers, the cluster id and the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::Context;

pub fn handle(ctx: &Context, _request: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = ctx.broker.metadata.image();
    // Fenced brokers are left out, as Kafka does: clients should not connect to them.
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| Some((b, b.endpoint(ctx.session.listener.as_str())?)))
        .map(|(b, (host, port))| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.broker.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.broker.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}
