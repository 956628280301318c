//! `runnel topic delete-records`: DeleteRecords to each partition's leader, one partition
//! at a time (the broker answers once every live replica starts at the new offset), with a
//! progress bar over the partitions when there are several.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{DeleteRecordsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Deletes the records of `topic` below `offset` (-1: the high watermark) in `partition`,
/// or in every partition; prints each partition's new start.
pub async fn run(
    conn: &mut Connection,
    security: &ClientSecurity,
    topic: &str,
    partition: Option<i32>,
    offset: i64,
) -> anyhow::Result<()> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    let metadata = conn.send(&request, 12).await?;
    let described = metadata.topics.first().context("no topic in the Metadata response")?;
    crate::connect::check(described.error_code, None, topic)?;
    let mut partitions: Vec<i32> = match partition {
        Some(p) => vec![p],
        None => described.partitions.iter().map(|p| p.partition_index).collect(),
    };
    partitions.sort_unstable();
    let bar = (partitions.len() > 1).then(|| {
        let bar = ProgressBar::new(partitions.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} partitions {msg}")
                .expect("a valid template"),
        );
        bar
    });
    let mut lines = Vec::with_capacity(partitions.len());
    for p in partitions {
        let leader =
            crate::connect::partition_leader(&metadata, p).with_context(|| format!("{topic} has no partition {p}"))?;
        let mut leader_conn = crate::connect::connect_to_node(&metadata, leader, security).await?;
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(p).with_offset(offset)])])
            .with_timeout_ms(30_000);
        let response = leader_conn.send(&request, 2).await?;
        for result in response.topics.iter().flat_map(|t| t.partitions.iter()) {
            crate::connect::check(result.error_code, None, &format!("{topic}-{}", result.partition_index))?;
            lines.push(format!("{topic}-{} now starts at offset {}", result.partition_index, result.low_watermark));
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("({topic}-{p} done)"));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
