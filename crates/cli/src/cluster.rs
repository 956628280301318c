//! `runnel cluster info`: the nodes, their roles and racks, the active controller, and how
//! far each node has applied the metadata log.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

#[derive(Parser)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Nodes, roles, racks, the active controller and each node's metadata offset.
    Info,
}

#[derive(Default)]
struct NodeRow {
    broker: Option<(String, Option<String>)>,
    controller: bool,
    metadata_offset: Option<i64>,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterCommand::Info = args.command;
    let json = args.connect.json();
    let (mut conn, _security) = args.connect.connect().await?;
    let cluster = conn.send(&DescribeClusterRequest::default(), 1).await?;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let quorum = conn.send(&request, 1).await?;
    let mut nodes: BTreeMap<i32, NodeRow> = BTreeMap::new();
    for b in &cluster.brokers {
        nodes.entry(b.broker_id.0).or_default().broker =
            Some((format!("{}:{}", b.host, b.port), b.rack.as_ref().map(|r| r.to_string())));
    }
    let partition =
        quorum.topics.first().and_then(|t| t.partitions.first()).context("no quorum partition in the answer")?;
    for voter in &partition.current_voters {
        let row = nodes.entry(voter.replica_id.0).or_default();
        row.controller = true;
        row.metadata_offset = Some(voter.log_end_offset);
    }
    for observer in &partition.observers {
        nodes.entry(observer.replica_id.0).or_default().metadata_offset = Some(observer.log_end_offset);
    }
    let roles = |row: &NodeRow| match (row.broker.is_some(), row.controller) {
        (true, true) => "broker,controller",
        (true, false) => "broker",
        (false, true) => "controller",
        (false, false) => "-",
    };
    if json {
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(id, row)| {
                let (address, rack) = row.broker.clone().map_or((None, None), |(a, r)| (Some(a), r));
                serde_json::json!({
                    "node": id,
                    "roles": roles(row).split(',').filter(|r| *r != "-").collect::<Vec<_>>(),
                    "rack": rack,
                    "kafka_address": address,
                    "metadata_offset": row.metadata_offset,
                })
            })
            .collect();
        crate::connect::print_json(&serde_json::json!({
            "cluster_id": cluster.cluster_id.to_string(),
            "active_controller": partition.leader_id.0,
            "metadata_committed_index": partition.high_watermark,
            "metadata_epoch": partition.leader_epoch,
            "nodes": nodes,
        }));
        return Ok(());
    }
    println!("cluster id: {}", cluster.cluster_id);
    println!("active controller: {}", partition.leader_id.0);
    println!("metadata log: committed index {}, epoch {}", partition.high_watermark, partition.leader_epoch);
    println!("{:<6} {:<18} {:<8} {:<22} metadata offset", "node", "roles", "rack", "kafka address");
    for (id, row) in &nodes {
        let roles = roles(row);
        let (address, rack) = row.broker.clone().unwrap_or_else(|| ("-".into(), None));
        let offset = row.metadata_offset.map_or("-".to_string(), |o| o.to_string());
        println!("{id:<6} {roles:<18} {:<8} {address:<22} {offset}", rack.unwrap_or_else(|| "-".into()));
    }
    Ok(())
}
