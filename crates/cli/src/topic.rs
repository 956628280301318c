//! `runnel topic create|list|describe|delete`, over the Kafka protocol.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;

#[derive(Parser)]
pub struct TopicArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
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

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let mut conn =
        Connection::connect(&args.bootstrap).await.with_context(|| format!("connecting to {}", args.bootstrap))?;
    match args.command {
        TopicCommand::Create { name: topic, partitions, replication_factor, configs } => {
            let mut creatable = CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor);
            for config in configs {
                let (k, v) =
                    config.split_once('=').with_context(|| format!("--config {config}: expected KEY=VALUE"))?;
                creatable.configs.push(
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.into()))
                        .with_value(Some(StrBytes::from_string(v.into()))),
                );
            }
            let request = CreateTopicsRequest::default().with_topics(vec![creatable]).with_timeout_ms(30_000);
            let response = conn.send(&request, 7).await?;
            for t in &response.topics {
                check(t.error_code, t.error_message.as_ref(), &t.name.0)?;
                println!("created {} ({} partitions, id {})", t.name.0, t.num_partitions, t.topic_id);
            }
        }
        TopicCommand::List => {
            let response = conn.send(&MetadataRequest::default().with_topics(None), 12).await?;
            for t in &response.topics {
                println!("{}", t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?"));
            }
        }
        TopicCommand::Describe { name: topic } => {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(&topic)))]));
            let response = conn.send(&request, 12).await?;
            for t in &response.topics {
                check(t.error_code, None, &topic)?;
                println!("topic {} id {} partitions {}", topic, t.topic_id, t.partitions.len());
                for p in &t.partitions {
                    let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
                    let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
                    println!(
                        "  partition {} leader {} epoch {} replicas {:?} isr {:?}",
                        p.partition_index, p.leader_id.0, p.leader_epoch, replicas, isr
                    );
                }
            }
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
        TopicCommand::Delete { name: topic } => {
            let request = DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_name(Some(name(&topic)))])
                .with_timeout_ms(30_000);
            let response = conn.send(&request, 6).await?;
            for r in &response.responses {
                check(r.error_code, r.error_message.as_ref(), &topic)?;
                println!("deleted {topic}");
            }
        }
    }
    Ok(())
}
