//! Controller decisions as pure functions: what records a request turns into. The caller
//! supplies the image, the time and the randomness (topic ids), so these are tested directly.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::image::MetadataImage;
use crate::placement;
use crate::records::{ConfigResource, MetadataRecord};

/// Why a topic cannot be created; each maps onto a Kafka error code in the broker.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateTopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("number of partitions must be between 1 and 10000, got {0}")]
    InvalidPartitions(i32),
    #[error("replication factor {requested} is invalid with {brokers} broker(s)")]
    InvalidReplicationFactor { requested: i32, brokers: usize },
}

pub const TOPIC_NAME_MAX_CHARS: usize = 249;
/// The metadata log's own name (Kafka's `__cluster_metadata`): its folder
/// `__cluster_metadata-0` in every data directory holds the node's metadata log, so a
/// topic of that name would share it (and deleting the topic would delete the log).
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Topic names that collide with the node's own state. Every entry of a data directory
/// that has the shape of a partition folder (`<name>-<n>`) must be here.
pub const RESERVED_TOPIC_NAMES: &[&str] = &[METADATA_TOPIC];
/// Partitions one request may create: Kafka's controller caps the records of one
/// operation at 10,000, and every partition is a record (and a folder on its brokers).
pub const PARTITIONS_PER_REQUEST_MAX: i32 = 10_000;

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
    if RESERVED_TOPIC_NAMES.contains(&name) {
        return invalid("the name is reserved for the node's internal state");
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
    if topic.partitions < 1 || topic.partitions > PARTITIONS_PER_REQUEST_MAX {
        return Err(CreateTopicError::InvalidPartitions(topic.partitions));
    }
    let order = placement::placement_order(image.brokers.values().filter(|b| !b.fenced));
    let factor = topic.replication_factor;
    if factor < 1 || factor as usize > order.len() {
        return Err(CreateTopicError::InvalidReplicationFactor { requested: factor, brokers: order.len() });
    }
    let mut records = vec![MetadataRecord::Topic { name: topic.name.to_string(), topic_id }];
    for (name, value) in topic.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.name.to_string()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    // Start each topic's rotation where the topic count leaves off, so that many
    // single-partition topics do not all land their leader on the first broker.
    let offset = image.topics.len();
    let assignments = placement::assign(&order, |id| rack_of(image, id), 0, topic.partitions, factor as usize, offset);
    // `assign` returns one replica list per partition, `0..topic.partitions` in order.
    records.extend((0..topic.partitions).zip(assignments).map(|(p, replicas)| new_partition(topic_id, p, replicas)));
    Ok(records)
}

fn rack_of(image: &MetadataImage, id: i32) -> Option<String> {
    image.brokers.get(&id).and_then(|b| b.rack.clone())
}

/// A new partition: its leader is the first replica (the preferred leader) and every
/// replica is in sync, since there is nothing to copy yet.
fn new_partition(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        isr: replicas.clone(),
        leader: replicas[0],
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

/// Why partitions cannot be added.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreatePartitionsError {
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic has {current} partitions; the new count {requested} must be larger")]
    InvalidPartitions { current: usize, requested: i32 },
    #[error("replication factor {requested} is invalid with {brokers} live broker(s)")]
    InvalidReplicationFactor { requested: usize, brokers: usize },
}

/// Records that grow `topic` to `count` partitions, placed like the existing ones and with
/// the same replication factor.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    count: i32,
) -> Result<Vec<MetadataRecord>, CreatePartitionsError> {
    let existing = image.topic(topic).ok_or_else(|| CreatePartitionsError::UnknownTopic(topic.to_string()))?;
    let current = existing.partitions.len();
    let invalid = || CreatePartitionsError::InvalidPartitions { current, requested: count };
    // A count beyond `i32` could not grow to the larger `count`, itself an `i32`.
    let first = i32::try_from(current).map_err(|_| invalid())?;
    if count <= first || i64::from(count) - i64::from(first) > i64::from(PARTITIONS_PER_REQUEST_MAX) {
        return Err(invalid());
    }
    let factor = existing.partitions.first().map_or(1, |p| p.replicas.len());
    let order = placement::placement_order(image.brokers.values().filter(|b| !b.fenced));
    if factor > order.len() {
        return Err(CreatePartitionsError::InvalidReplicationFactor { requested: factor, brokers: order.len() });
    }
    let added = count - first;
    let assignments = placement::assign(&order, |id| rack_of(image, id), first, added, factor, 0);
    // `assign` returns one replica list per partition, `first..count` in order.
    Ok((first..count).zip(assignments).map(|(p, replicas)| new_partition(existing.topic_id, p, replicas)).collect())
}

/// Producer ids a broker takes from the controller at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Allocates the next block of producer ids to `broker_id`: the block is
/// `[image.next_producer_id, image.next_producer_id + PRODUCER_ID_BLOCK_SIZE)`.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
    request_id: Uuid,
) -> (std::ops::Range<i64>, MetadataRecord) {
    let start = image.next_producer_id;
    let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE).expect("producer ids do not run out in practice");
    (start..end, MetadataRecord::ProducerIds { broker_id, next_producer_id: end, request_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_brokers(n: i32) -> MetadataImage {
        let records: Vec<_> = (1..=n).map(|id| MetadataRecord::test_broker(id, 0)).collect();
        MetadataImage::default().apply(&records)
    }

    #[test]
    fn reserved_names_are_refused_whatever_the_request() {
        for name in RESERVED_TOPIC_NAMES {
            assert!(matches!(validate_topic_name(name), Err(CreateTopicError::InvalidName(_))), "{name}");
        }
        let configs = BTreeMap::new();
        let topic = NewTopic { name: METADATA_TOPIC, partitions: 1, replication_factor: 1, configs: &configs };
        let refused = create_topic(&image_with_brokers(1), &topic, Uuid::from_u128(1));
        assert!(matches!(refused, Err(CreateTopicError::InvalidName(_))));
        // Near misses are ordinary names.
        assert_eq!(validate_topic_name("__cluster_metadata_copy"), Ok(()));
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
    fn partitions_grow_with_the_same_replication_factor() {
        let image = image_with_brokers(3);
        let configs = BTreeMap::new();
        let topic = NewTopic { name: "t", partitions: 2, replication_factor: 2, configs: &configs };
        let image = image.apply(&create_topic(&image, &topic, Uuid::from_u128(1)).unwrap());
        let image = image.apply(&create_partitions(&image, "t", 5).unwrap());
        let partitions = &image.topic("t").unwrap().partitions;
        assert_eq!(partitions.len(), 5);
        assert!(partitions.iter().all(|p| p.replicas.len() == 2 && p.isr == p.replicas));
        assert!(matches!(create_partitions(&image, "t", 5), Err(CreatePartitionsError::InvalidPartitions { .. })));
        assert!(matches!(create_partitions(&image, "nope", 9), Err(CreatePartitionsError::UnknownTopic(_))));
        assert!(matches!(
            create_partitions(&image, "t", i32::MAX),
            Err(CreatePartitionsError::InvalidPartitions { .. })
        ));
    }

    #[test]
    fn fenced_brokers_get_no_new_replicas() {
        let image = image_with_brokers(3).apply(&[MetadataRecord::FenceBroker { node_id: 2, shutting_down: false }]);
        let configs = BTreeMap::new();
        let topic = NewTopic { name: "t", partitions: 6, replication_factor: 2, configs: &configs };
        let records = create_topic(&image, &topic, Uuid::from_u128(1)).unwrap();
        let image = image.apply(&records);
        assert!(image.topic("t").unwrap().partitions.iter().all(|p| !p.replicas.contains(&2)));
        let too_many = NewTopic { name: "u", partitions: 1, replication_factor: 3, configs: &configs };
        assert!(matches!(
            create_topic(&image, &too_many, Uuid::nil()),
            Err(CreateTopicError::InvalidReplicationFactor { .. })
        ));
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let image = MetadataImage::default();
        let (first, record) = allocate_producer_ids(&image, 1, Uuid::from_u128(7));
        let image = image.apply(&[record]);
        let (second, _) = allocate_producer_ids(&image, 1, Uuid::from_u128(7));
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
