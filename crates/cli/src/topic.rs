//! `runnel topic create|list|describe|delete|add-partitions|reassign|reassignments|elect-leaders`,
//! over the Kafka protocol.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    ElectLeadersRequest, ListPartitionReassignmentsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;

#[derive(Parser)]
pub struct TopicArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    List,
    /// Show partitions, leaders and replicas.
    Describe { name: String },
    /// Delete a topic.
    Delete { name: String },
    /// Grow a topic to a total of --partitions partitions.
    AddPartitions {
        name: String,
        #[arg(long)]
        partitions: i32,
    },
    /// Move a partition's replicas (AlterPartitionReassignments): the new replicas copy the
    /// data and join the ISR before the old ones are dropped. --cancel undoes one in progress.
    Reassign {
        name: String,
        #[arg(long)]
        partition: i32,
        /// Target replicas, comma-separated broker ids; the first is the preferred leader.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<i32>,
        #[arg(long)]
        cancel: bool,
        /// Wait for the move to complete, with a progress bar of the new replicas' copy.
        #[arg(long, conflicts_with = "cancel")]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Delete records below --offset (DeleteRecords) in one partition, or in every
    /// partition: the log start offset moves there on every replica (the command returns
    /// once every live replica has moved); -1 deletes up to the high watermark.
    DeleteRecords {
        name: String,
        /// One partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<i32>,
        #[arg(long, allow_hyphen_values = true)]
        offset: i64,
    },
    /// List reassignments in progress (ListPartitionReassignments).
    Reassignments,
    /// Elect leaders (ElectLeaders): the preferred replica of every partition of NAME (or of
    /// every topic), or with --unclean a live replica for leaderless partitions.
    ElectLeaders {
        name: Option<String>,
        #[arg(long)]
        unclean: bool,
    },
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn check(error_code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if error_code != 0 {
        let error = kafka_protocol::error::ResponseError::try_from_code(error_code);
        bail!("{what}: {error:?} {}", message.map(|m| m.as_str()).unwrap_or(""));
    }
    Ok(())
}

/// Broker ids as a comma-separated list, `-` when there are none.
fn id_list(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

/// What `topic describe` prints for one topic: a summary line, then per partition its
/// leader, replicas, in-sync replicas, and offline replicas (those Metadata names as
/// offline or that are not among the `live` brokers it lists).
fn describe_lines(topic: &str, t: &MetadataResponseTopic, live: &BTreeSet<i32>) -> Vec<String> {
    let ids = |nodes: &[BrokerId]| nodes.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let replication_factor = partitions.iter().map(|p| p.replica_nodes.len()).max().unwrap_or(0);
    let mut lines = vec![format!(
        "topic {topic} id {} partitions {} replication factor {replication_factor}",
        t.topic_id,
        partitions.len()
    )];
    for p in partitions {
        let replicas = ids(&p.replica_nodes);
        let listed_offline = ids(&p.offline_replicas);
        let offline: Vec<i32> =
            replicas.iter().copied().filter(|id| listed_offline.contains(id) || !live.contains(id)).collect();
        let leader = if p.leader_id.0 < 0 { "none".to_string() } else { p.leader_id.0.to_string() };
        lines.push(format!(
            "  partition {} leader {leader} epoch {} replicas {} isr {} offline {}",
            p.partition_index,
            p.leader_epoch,
            id_list(&replicas),
            id_list(&ids(&p.isr_nodes)),
            id_list(&offline)
        ));
    }
    lines
}

/// `topic describe --output json`: the topic, its partitions and its own settings.
fn describe_json(
    t: &MetadataResponseTopic,
    live: &BTreeSet<i32>,
    configs: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let ids = |nodes: &[BrokerId]| nodes.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let partitions: Vec<serde_json::Value> = partitions
        .iter()
        .map(|p| {
            let replicas = ids(&p.replica_nodes);
            let listed_offline = ids(&p.offline_replicas);
            let offline: Vec<i32> =
                replicas.iter().copied().filter(|id| listed_offline.contains(id) || !live.contains(id)).collect();
            serde_json::json!({
                "partition": p.partition_index,
                "leader": (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                "leader_epoch": p.leader_epoch,
                "replicas": replicas,
                "isr": ids(&p.isr_nodes),
                "offline": offline,
            })
        })
        .collect();
    serde_json::json!({
        "name": t.name.as_ref().map(|n| n.0.to_string()),
        "topic_id": t.topic_id.to_string(),
        "partitions": partitions,
        "configs": configs,
    })
}

/// Creates `topic` (CreateTopics v7): the partitions it got and its id.
pub async fn create(
    conn: &mut Connection,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> anyhow::Result<(i32, String)> {
    let mut creatable = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor);
    for (k, v) in configs {
        creatable.configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone()))),
        );
    }
    let request = CreateTopicsRequest::default().with_topics(vec![creatable]).with_timeout_ms(30_000);
    let response = conn.send(&request, 7).await?;
    let t = response.topics.first().context("CreateTopics answered no topic")?;
    check(t.error_code, t.error_message.as_ref(), &t.name.0)?;
    Ok((t.num_partitions, t.topic_id.to_string()))
}

/// Deletes `topic` (DeleteTopics v6).
pub async fn delete(conn: &mut Connection, topic: &str) -> anyhow::Result<()> {
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(name(topic)))])
        .with_timeout_ms(30_000);
    let response = conn.send(&request, 6).await?;
    for r in &response.responses {
        check(r.error_code, r.error_message.as_ref(), topic)?;
    }
    Ok(())
}

/// `topic list --output json`.
pub async fn list_value(conn: &mut Connection) -> anyhow::Result<serde_json::Value> {
    let response = conn.send(&MetadataRequest::default().with_topics(None), 12).await?;
    let topics: Vec<serde_json::Value> = response
        .topics
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name.as_ref().map(|n| n.0.to_string()),
                "topic_id": t.topic_id.to_string(),
                "partitions": t.partitions.len(),
                "internal": t.is_internal,
            })
        })
        .collect();
    Ok(serde_json::json!({ "topics": topics }))
}

/// `topic describe --output json`: partitions (leader, replicas, ISR, offline) and the
/// topic's own settings.
pub async fn describe_value(conn: &mut Connection, topic: &str) -> anyhow::Result<serde_json::Value> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    let response = conn.send(&request, 12).await?;
    // Metadata lists only live (unfenced) brokers, so a replica missing from the list is offline.
    let live: BTreeSet<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
    let t = response.topics.first().context("no topic in the Metadata response")?;
    check(t.error_code, None, topic)?;
    let configs: serde_json::Map<String, serde_json::Value> = crate::config::describe_topic(conn, topic)
        .await?
        .into_iter()
        .filter(|e| e.config_source == 1)
        .map(|e| (e.name.to_string(), e.value.map(|v| v.to_string()).into()))
        .collect();
    Ok(describe_json(t, &live, configs))
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, security) = args.connect.connect().await?;
    match args.command {
        TopicCommand::Create { name: topic, partitions, replication_factor, configs } => {
            let configs: Vec<(String, String)> = configs
                .iter()
                .map(|config| {
                    let (k, v) =
                        config.split_once('=').with_context(|| format!("--config {config}: expected KEY=VALUE"))?;
                    Ok((k.to_string(), v.to_string()))
                })
                .collect::<anyhow::Result<_>>()?;
            let (partitions, id) = create(&mut conn, &topic, partitions, replication_factor, &configs).await?;
            println!("created {topic} ({partitions} partitions, id {id})");
        }
        TopicCommand::List => {
            if json {
                crate::connect::print_json(&list_value(&mut conn).await?);
                return Ok(());
            }
            let response = conn.send(&MetadataRequest::default().with_topics(None), 12).await?;
            for t in &response.topics {
                println!("{}", t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?"));
            }
        }
        TopicCommand::Describe { name: topic } => {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(&topic)))]));
            if json {
                crate::connect::print_json(&describe_value(&mut conn, &topic).await?);
                return Ok(());
            }
            let response = conn.send(&request, 12).await?;
            // Metadata lists only live (unfenced) brokers, so a replica missing from the list is offline.
            let live: BTreeSet<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
            for t in &response.topics {
                check(t.error_code, None, &topic)?;
                for line in describe_lines(&topic, t, &live) {
                    println!("{line}");
                }
                for line in crate::topic_cleaner::lines(&response, t, &security).await {
                    println!("{line}");
                }
                // The topic's own settings (those not at the broker's default).
                for entry in crate::config::describe_topic(&mut conn, &topic).await? {
                    if entry.config_source == 1 {
                        println!("  config {}={}", entry.name.as_str(), entry.value.as_deref().unwrap_or(""));
                    }
                }
            }
        }
        TopicCommand::DeleteRecords { name: topic, partition, offset } => {
            crate::delete_records::run(&mut conn, &security, &topic, partition, offset).await?;
        }
        TopicCommand::AddPartitions { name: topic, partitions } => {
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default().with_name(name(&topic)).with_count(partitions)])
                .with_timeout_ms(30_000);
            let response = conn.send(&request, 3).await?;
            for r in &response.results {
                check(r.error_code, r.error_message.as_ref(), &topic)?;
                println!("{topic} now has {partitions} partitions");
            }
        }
        TopicCommand::Reassign { name: topic, partition, replicas, cancel, wait, timeout } => {
            let target = (!cancel).then(|| replicas.iter().copied().map(BrokerId).collect());
            let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![ReassignableTopic::default()
                .with_name(name(&topic))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(partition)
                    .with_replicas(target)])]);
            let response = conn.send(&request, 0).await?;
            check(response.error_code, response.error_message.as_ref(), &topic)?;
            for t in &response.responses {
                for p in &t.partitions {
                    check(p.error_code, p.error_message.as_ref(), &format!("{topic}-{}", p.partition_index))?;
                    match cancel {
                        true => println!("cancelled the reassignment of {topic}-{partition}"),
                        false => println!("reassigning {topic}-{partition} to {}", id_list(&replicas)),
                    }
                }
            }
            if wait {
                let timeout = std::time::Duration::from_secs(timeout);
                crate::reassign_wait::wait(&mut conn, &security, &topic, partition, timeout).await?;
                println!("reassigned {topic}-{partition} to {}", id_list(&replicas));
            }
        }
        TopicCommand::Reassignments => {
            let response = conn.send(&ListPartitionReassignmentsRequest::default(), 0).await?;
            check(response.error_code, response.error_message.as_ref(), "reassignments")?;
            let ids = |v: &[BrokerId]| id_list(&v.iter().map(|b| b.0).collect::<Vec<_>>());
            if json {
                let nodes = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
                let reassignments: Vec<serde_json::Value> = response
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            serde_json::json!({
                                "topic": t.name.0.to_string(),
                                "partition": p.partition_index,
                                "replicas": nodes(&p.replicas),
                                "adding": nodes(&p.adding_replicas),
                                "removing": nodes(&p.removing_replicas),
                            })
                        })
                    })
                    .collect();
                crate::connect::print_json(&serde_json::json!({ "reassignments": reassignments }));
                return Ok(());
            }
            for t in &response.topics {
                for p in &t.partitions {
                    println!(
                        "{}-{} replicas {} adding {} removing {}",
                        t.name.0,
                        p.partition_index,
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas)
                    );
                }
            }
        }
        TopicCommand::ElectLeaders { name: topic, unclean } => {
            let partitions = match &topic {
                None => None,
                Some(topic) => {
                    let request = MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
                    let response = conn.send(&request, 12).await?;
                    let t = response.topics.first().context("no metadata for the topic")?;
                    check(t.error_code, None, topic)?;
                    let indexes = t.partitions.iter().map(|p| p.partition_index).collect();
                    Some(vec![TopicPartitions::default().with_topic(name(topic)).with_partitions(indexes)])
                }
            };
            let request = ElectLeadersRequest::default()
                .with_election_type(i8::from(unclean))
                .with_topic_partitions(partitions)
                .with_timeout_ms(30_000);
            let response = conn.send(&request, 2).await?;
            check(response.error_code, None, "elect leaders")?;
            for t in &response.replica_election_results {
                for p in &t.partition_result {
                    let outcome = match kafka_protocol::error::ResponseError::try_from_code(p.error_code) {
                        None => "elected".to_string(),
                        Some(error) => format!("{error:?}"),
                    };
                    println!("{}-{} {outcome}", t.topic.0, p.partition_id);
                }
            }
        }
        TopicCommand::Delete { name: topic } => {
            delete(&mut conn, &topic).await?;
            println!("deleted {topic}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponsePartition;

    fn partition(index: i32, leader: i32, replicas: &[i32], isr: &[i32], offline: &[i32]) -> MetadataResponsePartition {
        let nodes = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(4)
            .with_replica_nodes(nodes(replicas))
            .with_isr_nodes(nodes(isr))
            .with_offline_replicas(nodes(offline))
    }

    #[test]
    fn describe_shows_leader_replicas_isr_and_offline_replicas_per_partition() {
        let t = MetadataResponseTopic::default().with_partitions(vec![
            partition(1, -1, &[3, 1], &[3], &[]),
            partition(0, 1, &[1, 2, 3], &[1, 2], &[]),
            partition(2, 2, &[2, 1], &[2, 1], &[1]),
        ]);
        let live = BTreeSet::from([1, 2]);
        let lines = describe_lines("t", &t, &live);
        assert_eq!(
            lines[1..],
            [
                "  partition 0 leader 1 epoch 4 replicas 1,2,3 isr 1,2 offline 3",
                "  partition 1 leader none epoch 4 replicas 3,1 isr 3 offline 3",
                "  partition 2 leader 2 epoch 4 replicas 2,1 isr 2,1 offline 1",
            ]
        );
        assert!(lines[0].ends_with("partitions 3 replication factor 3"), "{}", lines[0]);
    }
}
