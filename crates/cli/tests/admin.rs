//! Topic administration through a real Kafka admin client (librdkafka): growing a topic
//! with CreatePartitions, and the errors Kafka gives for bad requests.

mod support;

use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use support::*;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_a_topic_that_clients_then_use() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), "grow", 2, &[]).await;
    let admin = admin(node.bootstrap());
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    let results = admin.create_partitions([&NewPartitions::new("grow", 5)], &options).await.unwrap();
    assert_eq!(results, vec![Ok("grow".to_string())]);
    let results = admin.create_partitions([&NewPartitions::new("grow", 3)], &options).await.unwrap();
    assert_eq!(results, vec![Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))], "cannot shrink");
    let results = admin.create_partitions([&NewPartitions::new("missing", 3)], &options).await.unwrap();
    assert_eq!(results, vec![Err(("missing".to_string(), RDKafkaErrorCode::UnknownTopicOrPartition))]);

    let producer = producer(node.bootstrap(), &[]);
    let messages: Vec<Msg> = (0..10).map(|i| Msg::new(format!("k{i}"), format!("v{i}"))).collect();
    let placed = produce_all(&producer, "grow", Some(4), &messages, None).await;
    assert!(placed.iter().all(|p| p.partition == 4));
    let got = consume(node.bootstrap(), "grow", &[(4, Offset::Beginning)], 10).await;
    assert_eq!(got.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(), messages);

    // The new partitions survive a restart.
    let mut node = node;
    node.terminate();
    node.restart();
    assert_eq!(watermarks(node.bootstrap(), "grow", 4), (0, 10));
}
