//! `runnel producers describe TOPIC [--partition N]`: each partition leader's active
//! producers (DescribeProducers), as Kafka's `kafka-transactions.sh describe-producers`
//! shows them: producer id, epoch, last sequence, last timestamp, coordinator epoch, and the
//! first offset of the open transaction.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{DescribeProducersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

#[derive(Parser)]
pub struct ProducersArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: ProducersCommand,
}

#[derive(Subcommand)]
enum ProducersCommand {
    /// The active producers of a topic's partitions, asked of each partition's leader.
    Describe {
        topic: String,
        /// Only this partition.
        #[arg(long)]
        partition: Option<i32>,
    },
}

pub async fn run(args: ProducersArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, security) = args.connect.connect().await?;
    let ProducersCommand::Describe { topic, partition } = args.command;
    let metadata = crate::offsets::metadata(&mut conn, Some(&[topic.as_str()])).await?;
    let described = metadata.topics.first().context("Metadata answered no topic")?;
    crate::connect::check(described.error_code, None, &format!("topic {topic}"))?;
    let mut by_leader: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    for p in described.partitions.iter().filter(|p| partition.is_none_or(|only| only == p.partition_index)) {
        by_leader.entry(p.leader_id.0).or_default().insert(p.partition_index);
    }
    if let Some(only) = partition {
        anyhow::ensure!(!by_leader.is_empty(), "topic {topic} has no partition {only}");
    }
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for (leader, partitions) in by_leader {
        anyhow::ensure!(leader >= 0, "{topic}: partitions {partitions:?} have no leader now");
        let mut leader_conn = crate::connect::connect_to_node(&metadata, leader, &security).await?;
        let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_indexes(partitions.into_iter().collect())]);
        let response = leader_conn.send(&request, 0).await?;
        for t in &response.topics {
            for p in &t.partitions {
                crate::connect::check(
                    p.error_code,
                    p.error_message.as_ref(),
                    &format!("{topic}-{}", p.partition_index),
                )?;
                for producer in &p.active_producers {
                    rows.push(serde_json::json!({
                        "partition": p.partition_index,
                        "producer_id": producer.producer_id.0,
                        "producer_epoch": producer.producer_epoch,
                        "last_sequence": producer.last_sequence,
                        "last_timestamp": producer.last_timestamp,
                        "coordinator_epoch": producer.coordinator_epoch,
                        "current_transaction_start_offset": producer.current_txn_start_offset,
                    }));
                }
            }
        }
    }
    rows.sort_by_key(|r| (r["partition"].as_i64(), r["producer_id"].as_i64()));
    if json {
        crate::connect::print_json(&serde_json::json!({ "topic": topic, "producers": rows }));
        return Ok(());
    }
    println!(
        "{:<10} {:<12} {:<8} {:<14} {:<15} {:<18} CURRENT-TXN-START-OFFSET",
        "PARTITION", "PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "COORDINATOR-EPOCH"
    );
    for r in &rows {
        println!(
            "{:<10} {:<12} {:<8} {:<14} {:<15} {:<18} {}",
            r["partition"],
            r["producer_id"],
            r["producer_epoch"],
            r["last_sequence"],
            r["last_timestamp"],
            r["coordinator_epoch"],
            r["current_transaction_start_offset"]
        );
    }
    Ok(())
}
