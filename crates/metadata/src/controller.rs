//! Controller decisions as pure functions: what records a request turns into. The caller
//! supplies the image, the time and the randomness (topic ids), so these are tested directly.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::{ConfigResource, MetadataRecord};

/// Why a topic cannot be created; each maps onto a Kafka error code in the broker.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateTopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("number of partitions must be at least 1, got {0}")]
    InvalidPartitions(i32),
    #[error("replication factor {requested} is invalid with {brokers} broker(s)")]
    InvalidReplicationFactor { requested: i32, brokers: usize },
}

pub const TOPIC_NAME_MAX_CHARS: usize = 249;

/// Kafka's topic name rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), CreateTopicError> {
    let invalid = |why: &str| Err(CreateTopicError::InvalidName(format!("'{name}': {why}")));
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_MAX_CHARS {
        return invalid("longer than 249 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return invalid("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// A validated request to create one topic.
pub struct NewTopic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: &'a BTreeMap<String, String>,
}

/// Records that create `topic`: the topic, its configs, and its partitions placed on the
/// registered brokers round-robin, leaders spread by starting each partition one broker on.
pub fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, CreateTopicError> {
    validate_topic_name(topic.name)?;
    if image.topic(topic.name).is_some() {
        return Err(CreateTopicError::AlreadyExists(topic.name.to_string()));
    }
    if topic.partitions < 1 {
        return Err(CreateTopicError::InvalidPartitions(topic.partitions));
    }
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    let factor = topic.replication_factor;
    if factor < 1 || factor as usize > brokers.len() {
        return Err(CreateTopicError::InvalidReplicationFactor { requested: factor, brokers: brokers.len() });
    }
    let mut records = vec![MetadataRecord::Topic { name: topic.name.to_string(), topic_id }];
    for (name, value) in topic.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.name.to_string()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    for partition in 0..topic.partitions {
        let replicas: Vec<i32> =
            (0..factor as usize).map(|r| brokers[(partition as usize + r) % brokers.len()]).collect();
        records.push(MetadataRecord::Partition {
            topic_id,
            partition,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    Ok(records)
}

/// Producer ids a broker takes from the controller at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Allocates the next block of producer ids to `broker_id`: the block is
/// `[image.next_producer_id, image.next_producer_id + PRODUCER_ID_BLOCK_SIZE)`.
pub fn allocate_producer_ids(image: &MetadataImage, broker_id: i32) -> (std::ops::Range<i64>, MetadataRecord) {
    let start = image.next_producer_id;
    let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE).expect("producer ids do not run out in practice");
    (start..end, MetadataRecord::ProducerIds { broker_id, next_producer_id: end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_brokers(n: i32) -> MetadataImage {
        let records: Vec<_> = (1..=n)
            .map(|id| MetadataRecord::RegisterBroker { node_id: id, host: "h".into(), port: 1, rack: None })
            .collect();
        MetadataImage::default().apply(&records)
    }

    #[test]
    fn placement_spreads_leaders() {
        let image = image_with_brokers(3);
        let configs = BTreeMap::new();
        let topic = NewTopic { name: "t", partitions: 3, replication_factor: 2, configs: &configs };
        let image = image.apply(&create_topic(&image, &topic, Uuid::from_u128(1)).unwrap());
        let leaders: Vec<i32> = image.topic("t").unwrap().partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![1, 2, 3]);
        assert_eq!(image.topic("t").unwrap().partitions[2].replicas, vec![3, 1]);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let image = MetadataImage::default();
        let (first, record) = allocate_producer_ids(&image, 1);
        let image = image.apply(&[record]);
        let (second, _) = allocate_producer_ids(&image, 1);
        assert_eq!(first, 0..PRODUCER_ID_BLOCK_SIZE);
        assert_eq!(second.start, first.end);
    }

    #[test]
    fn rejects_bad_requests() {
        let image = image_with_brokers(1);
        let configs = BTreeMap::new();
        let mk =
            |name, partitions, replication_factor| NewTopic { name, partitions, replication_factor, configs: &configs };
        assert!(matches!(
            create_topic(&image, &mk("a", 1, 2), Uuid::nil()),
            Err(CreateTopicError::InvalidReplicationFactor { .. })
        ));
        assert!(matches!(
            create_topic(&image, &mk("a", 0, 1), Uuid::nil()),
            Err(CreateTopicError::InvalidPartitions(0))
        ));
        assert!(matches!(create_topic(&image, &mk("a b", 1, 1), Uuid::nil()), Err(CreateTopicError::InvalidName(_))));
        let image = image.apply(&create_topic(&image, &mk("a", 1, 1), Uuid::nil()).unwrap());
        assert!(matches!(create_topic(&image, &mk("a", 1, 1), Uuid::nil()), Err(CreateTopicError::AlreadyExists(_))));
    }
}
