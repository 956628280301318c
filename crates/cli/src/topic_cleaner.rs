//! The log cleaner's state in `runnel topic describe`: each compacted partition's leader is
//! asked with DescribeLogDirs, whose partitions carry Runnel's cleaner tag
//! (`runnel_protocol::runnel_tags`); a partition without the tag (not compacted, or not yet
//! looked at by the cleaner) prints nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_protocol::runnel_tags::{CleanerState, CLEANER_STATE};

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
                }
            }
        }
    }
    let now_ms = runnel_broker::clock::now_ms();
    states.into_iter().map(|(partition, state)| line(partition, &state, now_ms)).collect()
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
        assert!(line(0, &failed, 0)
            .ends_with("not cleaned since its node started, UNCLEANABLE (a pass failed: see the node's log)"));
    }
}
