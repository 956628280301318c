//! `runnel topic reassign --wait`: follows a reassignment until the controller reports it
//! done, with a progress bar of how much of the leader's log the slowest new replica holds
//! (DescribeLogDirs sizes, asked of each node), and fails after `--timeout` seconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    DescribeLogDirsRequest, ListPartitionReassignmentsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;

/// How often the reassignment is looked at.
const POLL: Duration = Duration::from_millis(500);
const BAR_STEPS: u64 = 1000;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The replicas being added, or `None` once the reassignment is no longer in progress.
async fn adding(conn: &mut Connection, topic: &str, partition: i32) -> anyhow::Result<Option<Vec<i32>>> {
    let request = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
        ListPartitionReassignmentsTopics::default().with_name(name(topic)).with_partition_indexes(vec![partition]),
    ]));
    let response = conn.send(&request, 0).await?;
    crate::connect::check(response.error_code, response.error_message.as_ref(), "listing reassignments")?;
    Ok(response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.adding_replicas.iter().map(|b| b.0).collect()))
}

/// The size of `topic`-`partition` on node `id`, if it hosts it.
async fn size_on(
    metadata: &MetadataResponse,
    security: &ClientSecurity,
    id: i32,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let mut conn = crate::connect::connect_to_node(metadata, id, security).await.ok()?;
    let request = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![partition])]));
    let response = conn.send(&request, 4).await.ok()?;
    response
        .results
        .iter()
        .flat_map(|d| d.topics.iter())
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.partition_size)
}

pub async fn wait(
    conn: &mut Connection,
    security: &ClientSecurity,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(BAR_STEPS);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent}% {msg}").expect("a valid template"),
    );
    let started = Instant::now();
    while let Some(adding) = adding(conn, topic, partition).await? {
        if started.elapsed() > timeout {
            bar.abandon();
            bail!(
                "{topic}-{partition} is still being reassigned after {timeout:?} (runnel topic reassignments shows it)"
            );
        }
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
        let metadata = conn.send(&request, 12).await?;
        let leader = crate::connect::partition_leader(&metadata, partition).context("the partition is gone")?;
        let leader_size = size_on(&metadata, security, leader, topic, partition).await.unwrap_or(0);
        let mut sizes = BTreeMap::new();
        for id in &adding {
            sizes.insert(*id, size_on(&metadata, security, *id, topic, partition).await.unwrap_or(0));
        }
        let slowest = sizes.values().copied().min().unwrap_or(leader_size);
        bar.set_position(fraction(slowest, leader_size));
        bar.set_message(format!("adding {adding:?}: {slowest} of {leader_size} bytes"));
        tokio::time::sleep(POLL).await;
    }
    bar.finish_and_clear();
    Ok(())
}

/// How far `have` is of `want`, in bar steps (full when there is nothing to copy).
fn fraction(have: i64, want: i64) -> u64 {
    if want <= 0 {
        return BAR_STEPS;
    }
    let steps = i128::from(have.max(0)) * i128::from(BAR_STEPS) / i128::from(want);
    u64::try_from(steps.min(i128::from(BAR_STEPS))).unwrap_or(BAR_STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_follows_the_slowest_copy_and_stops_full() {
        assert_eq!(fraction(0, 100), 0);
        assert_eq!(fraction(50, 100), 500);
        assert_eq!(fraction(150, 100), BAR_STEPS, "a copy past the leader's size (a roll) is full");
        assert_eq!(fraction(0, 0), BAR_STEPS, "nothing to copy");
    }
}
