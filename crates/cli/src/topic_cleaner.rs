//! The log cleaner's and tiered storage's state in `runnel topic describe`: each
//! partition's leader is asked with DescribeLogDirs, whose partitions carry Runnel's
//! cleaner and tiered tags (`runnel_protocol::runnel_tags`); a partition without a tag
//! (not compacted or not tiered, or not yet looked at by the cleaner) prints nothing for it.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_protocol::runnel_tags::{CleanerState, TieredState, CLEANER_STATE, TIERED_STATE};

/// One line per partition the cleaner has looked at, for `topic` in `metadata`.
pub async fn lines(
    metadata: &MetadataResponse,
    topic: &MetadataResponseTopic,
    security: &ClientSecurity,
) -> Vec<String> {
    let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &topic.partitions {
        by_leader.entry(p.leader_id.0).or_default().push(p.partition_index);
    }
    let mut states: BTreeMap<i32, CleanerState> = BTreeMap::new();
    let mut tiered: BTreeMap<i32, TieredState> = BTreeMap::new();
    for (leader, partitions) in by_leader {
        // The cleaner's state is extra: a leader that cannot be asked leaves it out.
        let Ok(mut conn) = crate::connect::connect_to_node(metadata, leader, security).await else { continue };
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
            .with_topic(TopicName(StrBytes::from_string(name.clone())))
            .with_partitions(partitions)]));
        let Ok(response) = conn.send(&request, 4).await else { continue };
        for dir in &response.results {
            for t in dir.topics.iter().filter(|t| t.name.0.as_str() == name) {
                for p in &t.partitions {
                    if let Some(state) =
                        p.unknown_tagged_fields.get(&CLEANER_STATE).and_then(|b| CleanerState::decode(b))
                    {
                        states.insert(p.partition_index, state);
                    }
                    if let Some(state) = p.unknown_tagged_fields.get(&TIERED_STATE).and_then(|b| TieredState::decode(b))
                    {
                        tiered.insert(p.partition_index, state);
                    }
                }
            }
        }
    }
    let now_ms = runnel_broker::clock::now_ms();
    let cleaner = states.into_iter().map(|(partition, state)| line(partition, &state, now_ms));
    cleaner.chain(tiered.into_iter().map(|(partition, state)| tiered_line(partition, &state))).collect()
}

fn tiered_line(partition: i32, state: &TieredState) -> String {
    let remote = if state.remote_log_start < 0 {
        "nothing remote yet".to_string()
    } else {
        format!(
            "remote offsets {}..={} in {} segments ({} bytes)",
            state.remote_log_start, state.highest_remote_offset, state.remote_segments, state.remote_bytes
        )
    };
    format!(
        "  partition {partition} tiered: local from offset {}, {remote}, {} segments ({} bytes) waiting for upload",
        state.local_log_start, state.upload_lag_segments, state.upload_lag_bytes
    )
}

fn line(partition: i32, state: &CleanerState, now_ms: i64) -> String {
    let last = if state.last_cleaned_ms < 0 {
        "not cleaned since its node started".to_string()
    } else {
        format!("last cleaned {} s ago", (now_ms - state.last_cleaned_ms).max(0) / 1000)
    };
    let uncleanable = if state.uncleanable { ", UNCLEANABLE (a pass failed: see the node's log)" } else { "" };
    format!(
        "  partition {partition} cleaner: clean below offset {} dirty ratio {:.2}, {last}{uncleanable}",
        state.first_dirty, state.dirty_ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_far_the_log_is_clean_and_how_dirty_the_rest_is() {
        let state = CleanerState { first_dirty: 500, dirty_ratio: 0.125, last_cleaned_ms: 7_000, uncleanable: false };
        assert_eq!(
            line(3, &state, 10_500),
            "  partition 3 cleaner: clean below offset 500 dirty ratio 0.12, last cleaned 3 s ago"
        );
        let failed = CleanerState { last_cleaned_ms: -1, uncleanable: true, ..state };
        let tiered = TieredState {
            local_log_start: 900,
            remote_log_start: 0,
            highest_remote_offset: 1_199,
            remote_segments: 4,
            remote_bytes: 4_000,
            upload_lag_segments: 1,
            upload_lag_bytes: 500,
        };
        assert_eq!(
            tiered_line(2, &tiered),
            "  partition 2 tiered: local from offset 900, remote offsets 0..=1199 in 4 segments (4000 bytes), 1 segments (500 bytes) waiting for upload"
        );
        assert!(line(0, &failed, 0)
            .ends_with("not cleaned since its node started, UNCLEANABLE (a pass failed: see the node's log)"));
    }
}
