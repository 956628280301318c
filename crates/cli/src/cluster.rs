//! `runnel cluster info`: the nodes, their roles and racks, the active controller, the
//! quorum's voters and observers, and how far each node has applied the metadata log.
//! `runnel cluster add-controller` / `remove-controller`: AddRaftVoter and RemoveRaftVoter
//! (KIP-853), as `kafka-metadata-quorum.sh add-controller` / `remove-controller` send them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, DescribeClusterRequest, DescribeQuorumRequest, RemoveRaftVoterRequest, TopicName,
};
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
    /// Nodes, roles, racks, the active controller, voters and observers, and each node's
    /// metadata offset.
    Info,
    /// Makes a node a controller voter (AddRaftVoter). Start the node first with
    /// `--roles controller` (or broker,controller) and the cluster's `--controller-quorum` or
    /// `--controller-bootstrap`: it joins as an observer and must catch up before it votes.
    AddController {
        /// The node to add.
        #[arg(long)]
        node_id: i32,
        /// Its quorum address (`--controller-listen`/`--controller-advertise`), HOST:PORT;
        /// needed only if the node is not an observer of the quorum already.
        #[arg(long)]
        address: Option<String>,
        /// How long the node may take to catch up, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: i32,
    },
    /// Takes a node out of the controller voters (RemoveRaftVoter); a running one stays an
    /// observer. Replaces a dead controller together with add-controller.
    RemoveController {
        /// The node to remove.
        #[arg(long)]
        node_id: i32,
    },
}

/// The listener name the quorum's endpoints go by (Kafka's `controller.listener.names`).
const CONTROLLER_LISTENER: &str = "CONTROLLER";

#[derive(Default)]
struct NodeRow {
    broker: Option<(String, Option<String>)>,
    controller: bool,
    /// "voter", "observer", or empty when the quorum does not list the node.
    quorum: &'static str,
    metadata_offset: Option<i64>,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info => info(args.connect).await,
        ClusterCommand::AddController { node_id, address, timeout_ms } => {
            let listeners = match address {
                None => vec![],
                Some(address) => {
                    let (host, port) = address.rsplit_once(':').context("--address: expected HOST:PORT")?;
                    let port: u16 = port.parse().context("--address: bad port")?;
                    vec![Listener::default()
                        .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port)]
                }
            };
            let (mut conn, _security) = args.connect.connect().await?;
            // The node may take the whole timeout to catch up: wait a little longer for the answer.
            let wait = u64::try_from(timeout_ms).unwrap_or(0);
            conn.set_timeout(std::time::Duration::from_millis(wait) + std::time::Duration::from_secs(10));
            let request = AddRaftVoterRequest::default()
                .with_cluster_id(None)
                .with_timeout_ms(timeout_ms)
                .with_voter_id(node_id)
                .with_listeners(listeners);
            let response = conn.send(&request, 0).await?;
            crate::connect::check(response.error_code, response.error_message.as_ref(), "add-controller")?;
            println!("node {node_id} is now a controller voter");
            Ok(())
        }
        ClusterCommand::RemoveController { node_id } => {
            let (mut conn, _security) = args.connect.connect().await?;
            let request = RemoveRaftVoterRequest::default().with_cluster_id(None).with_voter_id(node_id);
            let response = conn.send(&request, 0).await?;
            crate::connect::check(response.error_code, response.error_message.as_ref(), "remove-controller")?;
            println!("node {node_id} is no longer a controller voter");
            Ok(())
        }
    }
}

async fn info(connect: crate::connect::ConnectArgs) -> anyhow::Result<()> {
    let (mut conn, _security) = connect.connect().await?;
    let info = info_value(&mut conn).await?;
    if connect.json() {
        crate::connect::print_json(&info);
    } else {
        print_info(&info);
    }
    Ok(())
}

/// `cluster info --output json`: DescribeCluster and DescribeQuorum of the metadata log.
pub async fn info_value(conn: &mut runnel_client::Connection) -> anyhow::Result<serde_json::Value> {
    let cluster = conn.send(&DescribeClusterRequest::default(), 1).await?;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let quorum = conn.send(&request, 2).await?;
    crate::connect::check(quorum.error_code, quorum.error_message.as_ref(), "describe quorum")?;
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
        row.quorum = "voter";
        row.metadata_offset = Some(voter.log_end_offset);
    }
    for observer in &partition.observers {
        let row = nodes.entry(observer.replica_id.0).or_default();
        row.quorum = "observer";
        row.metadata_offset = Some(observer.log_end_offset);
    }
    let voters: Vec<i32> = partition.current_voters.iter().map(|v| v.replica_id.0).collect();
    let observers: Vec<i32> = partition.observers.iter().map(|o| o.replica_id.0).collect();
    let endpoints: Vec<String> = quorum
        .nodes
        .iter()
        .flat_map(|n| n.listeners.iter().map(move |l| format!("{}@{}:{}", n.node_id.0, l.host, l.port)))
        .collect();
    let roles = |row: &NodeRow| {
        let mut roles = Vec::new();
        if row.broker.is_some() {
            roles.push("broker");
        }
        if row.controller {
            roles.push("controller");
        }
        roles
    };
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(id, row)| {
            let (address, rack) = row.broker.clone().map_or((None, None), |(a, r)| (Some(a), r));
            serde_json::json!({
                "node": id,
                "roles": roles(row),
                "rack": rack,
                "quorum": (!row.quorum.is_empty()).then_some(row.quorum),
                "kafka_address": address,
                "metadata_offset": row.metadata_offset,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "cluster_id": cluster.cluster_id.to_string(),
        "active_controller": partition.leader_id.0,
        "metadata_committed_index": partition.high_watermark,
        "metadata_epoch": partition.leader_epoch,
        "voters": voters,
        "observers": observers,
        "voter_endpoints": endpoints,
        "nodes": nodes,
    }))
}

/// `cluster info` as text, from its JSON document.
fn print_info(info: &serde_json::Value) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let ids = |v: &serde_json::Value| {
        let ids: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.join(",")
        }
    };
    println!("cluster id: {}", text(&info["cluster_id"]));
    println!("active controller: {}", text(&info["active_controller"]));
    println!(
        "metadata log: committed index {}, epoch {}",
        text(&info["metadata_committed_index"]),
        text(&info["metadata_epoch"])
    );
    let endpoints = ids(&info["voter_endpoints"]);
    println!("voters: {}", if endpoints == "-" { ids(&info["voters"]) } else { endpoints });
    println!("observers: {}", ids(&info["observers"]));
    println!("{:<6} {:<18} {:<9} {:<8} {:<22} metadata offset", "node", "roles", "quorum", "rack", "kafka address");
    for node in info["nodes"].as_array().into_iter().flatten() {
        let roles = ids(&node["roles"]);
        println!(
            "{:<6} {roles:<18} {:<9} {:<8} {:<22} {}",
            text(&node["node"]),
            text(&node["quorum"]),
            text(&node["rack"]),
            text(&node["kafka_address"]),
            text(&node["metadata_offset"])
        );
    }
}
