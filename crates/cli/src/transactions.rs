//! `runnel transactions list|describe|abort`, as Kafka's `kafka-transactions.sh`:
//! - `list` asks every broker for the transactional ids it coordinates (ListTransactions),
//!   optionally filtered by state, producer id and how long the transaction has been open;
//! - `describe ID` asks the id's coordinator (FindCoordinator, DescribeTransactions);
//! - `abort --topic T --partition P --start-offset O` ends a hanging transaction: the
//!   producer whose open transaction starts at O on that partition (DescribeProducers) gets
//!   an abort marker written by the partition's leader (WriteTxnMarkers; needs
//!   ClusterAction, as in Kafka).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, FindCoordinatorRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::connect::check;

#[derive(Parser)]
pub struct TransactionsArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Subcommand)]
enum TransactionsCommand {
    /// Every transactional id, from every broker.
    List {
        /// Only ids in this state (Empty, Ongoing, PrepareCommit, PrepareAbort,
        /// CompleteCommit, CompleteAbort, PrepareEpochFence; repeatable).
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only ids of this producer id (repeatable).
        #[arg(long = "producer-id")]
        producer_ids: Vec<i64>,
        /// Only transactions open at least this long.
        #[arg(long = "duration-ms")]
        duration_ms: Option<i64>,
    },
    /// One transactional id's state, producer and partitions.
    Describe { transactional_id: String },
    /// Aborts the open transaction that starts at an offset of a partition (a hanging
    /// transaction whose producer will never end it).
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The transaction's first offset (DescribeProducers' current transaction start).
        #[arg(long = "start-offset")]
        start_offset: i64,
    },
}

pub async fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, security) = args.connect.connect().await?;
    match args.command {
        TransactionsCommand::List { states, producer_ids, duration_ms } => {
            let metadata = crate::offsets::metadata(&mut conn, Some(&[])).await?;
            let request = ListTransactionsRequest::default()
                .with_state_filters(states.into_iter().map(StrBytes::from_string).collect())
                .with_producer_id_filters(producer_ids.into_iter().map(ProducerId).collect())
                .with_duration_filter(duration_ms.unwrap_or(-1));
            let mut rows = Vec::new();
            for broker in &metadata.brokers {
                let mut node = crate::connect::connect_to_node(&metadata, broker.node_id.0, &security).await?;
                let response = node.send(&request, 1).await?;
                check(response.error_code, None, &format!("listing the transactions of node {}", broker.node_id.0))?;
                for state in &response.transaction_states {
                    rows.push(serde_json::json!({
                        "transactional_id": state.transactional_id.0.to_string(),
                        "coordinator": broker.node_id.0,
                        "state": state.transaction_state.to_string(),
                        "producer_id": state.producer_id.0,
                    }));
                }
            }
            rows.sort_by(|a, b| a["transactional_id"].as_str().cmp(&b["transactional_id"].as_str()));
            if json {
                crate::connect::print_json(&serde_json::json!({ "transactions": rows }));
                return Ok(());
            }
            println!("{:<40} {:<12} {:<18} PRODUCER-ID", "TRANSACTIONAL-ID", "COORDINATOR", "STATE");
            for r in &rows {
                let state = r["state"].as_str().unwrap_or_default();
                let id = r["transactional_id"].as_str().unwrap_or_default();
                println!("{id:<40} {:<12} {state:<18} {}", r["coordinator"], r["producer_id"]);
            }
            Ok(())
        }
        TransactionsCommand::Describe { transactional_id } => {
            let find = FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(StrBytes::from_string(transactional_id.clone()));
            let found = conn.send(&find, 3).await?;
            check(
                found.error_code,
                found.error_message.as_ref(),
                &format!("finding the coordinator of {transactional_id}"),
            )?;
            let address = format!("{}:{}", found.host.as_str(), found.port);
            let mut coordinator = crate::connect::connect_to(&address, &security).await?;
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(transactional_id.clone()))]);
            let response = coordinator.send(&request, 0).await?;
            let state = response.transaction_states.first().context("DescribeTransactions answered nothing")?;
            check(state.error_code, None, &format!("describing {transactional_id}"))?;
            let partitions: Vec<String> = state
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic.0)))
                .collect();
            let value = serde_json::json!({
                "transactional_id": transactional_id,
                "coordinator": found.node_id.0,
                "state": state.transaction_state.to_string(),
                "producer_id": state.producer_id.0,
                "producer_epoch": state.producer_epoch,
                "timeout_ms": state.transaction_timeout_ms,
                "start_time_ms": state.transaction_start_time_ms,
                "partitions": partitions,
            });
            if json {
                crate::connect::print_json(&value);
                return Ok(());
            }
            println!(
                "{:<12} {:<40} {:<12} {:<14} {:<18} {:<12} {:<16} PARTITIONS",
                "COORDINATOR",
                "TRANSACTIONAL-ID",
                "PRODUCER-ID",
                "PRODUCER-EPOCH",
                "STATE",
                "TIMEOUT-MS",
                "START-TIME-MS"
            );
            println!(
                "{:<12} {transactional_id:<40} {:<12} {:<14} {:<18} {:<12} {:<16} {}",
                found.node_id.0,
                state.producer_id.0,
                state.producer_epoch,
                state.transaction_state.as_str(),
                state.transaction_timeout_ms,
                state.transaction_start_time_ms,
                partitions.join(",")
            );
            Ok(())
        }
        TransactionsCommand::Abort { topic, partition, start_offset } => {
            let metadata = crate::offsets::metadata(&mut conn, Some(&[topic.as_str()])).await?;
            let leader = crate::connect::partition_leader(&metadata, partition)
                .filter(|l| *l >= 0)
                .with_context(|| format!("{topic}-{partition} has no leader now"))?;
            let mut leader_conn = crate::connect::connect_to_node(&metadata, leader, &security).await?;
            let name = TopicName(StrBytes::from_string(topic.clone()));
            let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(name.clone())
                .with_partition_indexes(vec![partition])]);
            let response = leader_conn.send(&request, 0).await?;
            let described = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .context("DescribeProducers answered no partition")?;
            check(described.error_code, described.error_message.as_ref(), &format!("{topic}-{partition}"))?;
            let producer =
                described.active_producers.iter().find(|p| p.current_txn_start_offset == start_offset).with_context(
                    || format!("no open transaction of {topic}-{partition} starts at offset {start_offset}"),
                )?;
            let marker = WritableTxnMarker::default()
                .with_producer_id(producer.producer_id)
                .with_producer_epoch(producer.producer_epoch as i16)
                .with_transaction_result(false)
                .with_coordinator_epoch(producer.coordinator_epoch)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(name)
                    .with_partition_indexes(vec![partition])]);
            let response = leader_conn.send(&WriteTxnMarkersRequest::default().with_markers(vec![marker]), 1).await?;
            for p in response.markers.iter().flat_map(|m| m.topics.iter()).flat_map(|t| t.partitions.iter()) {
                check(p.error_code, None, &format!("aborting the transaction of {topic}-{partition}"))?;
            }
            if json {
                crate::connect::print_json(&serde_json::json!({
                    "topic": topic, "partition": partition, "start_offset": start_offset,
                    "producer_id": producer.producer_id.0, "producer_epoch": producer.producer_epoch,
                }));
            } else {
                println!(
                    "aborted the transaction of producer {} (epoch {}) starting at {topic}-{partition} offset {start_offset}",
                    producer.producer_id.0, producer.producer_epoch
                );
            }
            Ok(())
        }
    }
}
