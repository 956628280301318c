//! Partition directory names: `<topic>-<partition>`, as Kafka lays them out. Topics may
//! contain '-', so the partition is what follows the last '-'.

/// Parses "<topic>-<partition>"; `None` unless the topic is non-empty and the partition a
/// non-negative decimal i32.
pub fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition = partition.parse::<i32>().ok()?;
    Some((topic.to_string(), partition))
}

/// Formats the directory name of a partition.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_topics_with_dashes() {
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic".into(), 12)));
        assert_eq!(parse_partition_dir(&partition_dir_name("a-b", 0)), Some(("a-b".into(), 0)));
        assert_eq!(parse_partition_dir("__consumer_offsets-49"), Some(("__consumer_offsets".into(), 49)));
    }

    #[test]
    fn rejects_names_that_are_not_partitions() {
        for name in ["topic", "-1", "topic-", "topic-x", "topic-99999999999", "topic-+1"] {
            assert_eq!(parse_partition_dir(name), None, "{name}");
        }
    }
}
